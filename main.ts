/**
 * mcp-remote-ssh: an MCP server that gives AI agents SSH sessions, commands
 * and files on remote hosts.
 *
 * Wiring only: flags -> config -> server -> transport.
 *
 * @module
 */

import { HELP, parseFlags, VERSION } from "./lib/cli.ts";
import { type ConfigFile, parseConfigFile, resolveConfig } from "./lib/config.ts";
import { createLogger } from "./lib/log.ts";
import { resolveRoots } from "./lib/local_paths.ts";
import { createServer } from "./lib/server.ts";
import { serveStdio } from "./lib/transport/stdio.ts";

export { createServer } from "./lib/server.ts";

async function main(argv: string[]): Promise<number> {
  let flags;
  try {
    flags = parseFlags(argv);
  } catch (error) {
    console.error(`mcp-remote-ssh: ${error instanceof Error ? error.message : String(error)}\nTry --help`);
    return 2;
  }
  if (flags.help) {
    console.log(HELP);
    return 0;
  }
  if (flags.version) {
    console.log(`mcp-remote-ssh ${VERSION}`);
    return 0;
  }
  let config;
  try {
    let file: ConfigFile = {};
    if (flags.config !== undefined) file = parseConfigFile(await Deno.readTextFile(flags.config), flags.config);
    config = resolveConfig(flags, file, {
      home: Deno.env.get("HOME") ?? Deno.env.get("USERPROFILE"),
      sshAuthSock: Deno.env.get("SSH_AUTH_SOCK"),
    });
  } catch (error) {
    console.error(`mcp-remote-ssh: ${error instanceof Error ? error.message : String(error)}`);
    return 2;
  }
  try {
    // Roots become real paths once, here: every transfer compares against them.
    const roots = config.localRoots.length > 0 ? config.localRoots : ["."];
    config.localRoots = await resolveRoots(roots, Deno.cwd());
  } catch (error) {
    console.error(`mcp-remote-ssh: local root: ${error instanceof Error ? error.message : String(error)}`);
    return 2;
  }
  const logger = createLogger(config.logLevel);
  const created = createServer(config, logger);
  await serveStdio(created, logger);
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
