/**
 * A reader for OpenSSH client configuration (`~/.ssh/config`, ssh_config(5))
 * that resolves a host alias the way `ssh -G` does (checked against OpenSSH
 * 9.2) and says which file and line each value came from. It never runs
 * anything: lines that would run a program or load code are refused when
 * they apply to the host being resolved.
 *
 * @example
 * ```ts
 * const config = await loadSshConfig([`${home}/.ssh/config`], { home, localUser: "me", localHost: "laptop" });
 * const host = config.resolve("db1"); // { hostName, user, port, identityFiles, proxyJump, applied, ... }
 * ```
 *
 * @module
 */

import { SshConfigError } from "./errors.ts";
import { includeBase, linkIncludes, linkIncludesSync, readConfigFile } from "./load.ts";
import { type ConfigFile, parseText } from "./parse.ts";
import { SshConfig, type SshConfigContext } from "./resolve.ts";

export { SshConfigError, type SshConfigErrorKind } from "./errors.ts";
export type { JumpHop } from "./jump.ts";
export type { ConfigLine } from "./parse.ts";
export {
  type AppliedLine,
  type ResolvedHost,
  type ResolveOptions,
  SshConfig,
  type SshConfigContext,
} from "./resolve.ts";

/**
 * Reads config files in order (missing ones skipped), following Include.
 *
 * @param files Paths, e.g. `[~/.ssh/config]` expanded; later files are read after earlier ones, as ssh
 *   reads the user's file before `/etc/ssh/ssh_config`.
 * @param ctx The local account: home dir, user name, host name, uid.
 * @returns The config, ready to {@linkcode SshConfig.resolve} any alias.
 * @throws SshConfigError on a syntax error, a bad owner or mode, an Include loop
 */
export async function loadSshConfig(files: string[], ctx: SshConfigContext): Promise<SshConfig> {
  const roots: ConfigFile[] = [];
  const seen: string[] = [];
  const read = (path: string) => readConfigFile(path, ctx);
  for (const path of files) {
    const cf = await read(path);
    if (cf === undefined) continue;
    seen.push(path);
    await linkIncludes(cf, 0, read, seen);
    roots.push(cf);
  }
  return new SshConfig(roots, seen, ctx);
}

/**
 * Parses config text without touching the disk (tests, embedded configs).
 *
 * @param text The config.
 * @param file The name to report in errors and provenance.
 * @param ctx The local account.
 * @param readInclude Returns the files an Include path pattern (absolute, `~` expanded) names, in
 *   order, as `{ file, text }`; without it an Include line is an error.
 */
export function parseSshConfig(
  text: string,
  file: string,
  ctx: SshConfigContext,
  readInclude?: (pattern: string) => { file: string; text: string }[],
): SshConfig {
  const base = includeBase(ctx.home);
  const cf = parseText(text, file, base);
  const seen = [file];
  linkIncludesSync(cf, 0, (pattern) => {
    if (readInclude === undefined) {
      throw new SshConfigError("unsupported", { file, line: 0 }, `Include of ${pattern} needs a reader here`);
    }
    return readInclude(pattern).map((f) => parseText(f.text, f.file, base));
  }, seen);
  return new SshConfig([cf], seen, ctx);
}
