/**
 * From the parsed command line to the configuration a server runs with: the
 * config file read, the local roots made real paths, the working directory
 * checked as the last-resort root. main.ts does this at start-up; in-process
 * test servers (tests/fixtures/in_process.ts) do the same with their own
 * environment and directory, so both run on one configuration path.
 *
 * @module
 */

import type { CliFlags } from "./cli.ts";
import { type Config, type ConfigEnv, type ConfigFile, readConfigFile, resolveConfig } from "./config.ts";
import { resolveRoots } from "./local_paths.ts";
import { workingDirRoot } from "./roots.ts";

/**
 * The environment the configuration depends on (home, agent socket, local user, host name and
 * uid), read through `variable`: the process's environment in main.ts, a test server's own in
 * tests/fixtures/in_process.ts.
 */
export function configEnvFrom(variable: (name: string) => string | undefined): ConfigEnv {
  return {
    home: variable("HOME") ?? variable("USERPROFILE"),
    sshAuthSock: variable("SSH_AUTH_SOCK"),
    localUser: variable("USER") ?? variable("LOGNAME") ?? variable("USERNAME"),
    localHost: Deno.hostname(),
    localUid: Deno.uid() ?? undefined,
  };
}

/** A configuration the server cannot start with; the message is what to print after the program's name. */
export class StartupError extends Error {
  override name = "StartupError";
}

/**
 * The configuration of a server started with `flags`.
 *
 * @param flags The parsed command line.
 * @param env Home, agent socket, local user, host name and uid.
 * @param cwd The directory relative roots and the working-directory root are taken from.
 * @throws {StartupError} An unreadable or invalid config file, bad flags, a local root that cannot be resolved.
 */
export async function startupConfig(flags: CliFlags, env: ConfigEnv, cwd: string): Promise<Config> {
  let config: Config;
  try {
    let file: ConfigFile = {};
    if (flags.config !== undefined) file = await readConfigFile(flags.config);
    config = resolveConfig(flags, file, env);
  } catch (error) {
    throw new StartupError(messageOf(error), { cause: error });
  }
  try {
    // Roots become real paths once, here: every transfer compares against them.
    config.localRoots = await resolveRoots(config.localRoots, cwd);
  } catch (error) {
    throw new StartupError(`local root: ${messageOf(error)}`, { cause: error });
  }
  // The working directory is only the last resort, and never / or the home directory; with
  // --no-working-dir (a client that starts the server wherever it likes: the desktop bundle) never.
  if (flags.noWorkingDir) {
    config.workingDir = { refused: "the working directory is not used (--no-working-dir)" };
  } else if (!config.localFilesOff && config.localRoots.length === 0) {
    config.workingDir = await workingDirRoot(cwd, config.home);
  }
  return config;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
