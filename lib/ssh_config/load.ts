/**
 * Reading config files from disk like OpenSSH's read_config_file: only
 * regular files, refused when group/world-writable or owned by someone other
 * than the user or root ("Bad owner or permissions"), missing files skipped,
 * and `Include` globs expanded (sorted as glob(3) sorts, hidden files only
 * for patterns that start with a dot) up to 16 levels deep.
 *
 * @module
 */

import { SshConfigError } from "./errors.ts";
import { type ConfigFile, type ConfigLine, MAX_FILE_BYTES, parseText } from "./parse.ts";
import { expandTilde } from "./tokens.ts";

/** OpenSSH's READCONF_MAX_DEPTH. */
export const MAX_INCLUDE_DEPTH = 16;
/**
 * Most files read for one load. OpenSSH has no such cap, but two files that
 * glob-include each other would be read 2^16 times before the depth limit.
 */
export const MAX_INCLUDED_FILES = 1000;

function tooMany(at: ConfigLine): SshConfigError {
  return new SshConfigError("invalid", at, `Include reads more than ${MAX_INCLUDED_FILES} files (an Include loop?)`);
}

/** What the loader needs of the local account. */
export interface LoadContext {
  home: string;
  uid?: number;
}

/** Turns an Include argument into an absolute path pattern: `~` is home, relative is under `~/.ssh/`. */
export function includeBase(home: string): (arg: string, at: ConfigLine) => string {
  return (arg, at) => {
    if (arg.startsWith("~")) return expandTilde(arg, home, at, "Include");
    if (arg.startsWith("/")) return arg;
    return `${home.replace(/\/+$/, "")}/.ssh/${arg}`;
  };
}

/**
 * Reads and parses one file.
 * @returns undefined when it does not exist (or is a directory, which OpenSSH reads as empty)
 */
export async function readConfigFile(path: string, ctx: LoadContext): Promise<ConfigFile | undefined> {
  const whole = { file: path, line: 0 };
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw new SshConfigError("invalid", whole, `cannot read: ${(e as Error).message}`, e);
  }
  if (info.isDirectory) return undefined;
  // Opening a FIFO would block until a writer comes: refuse before open.
  if (!info.isFile) throw new SshConfigError("invalid", whole, "not a regular file");
  let bytes: Uint8Array;
  try {
    using f = await Deno.open(path, { read: true });
    const opened = await f.stat();
    checkOwner(opened, path, ctx);
    if (!opened.isFile) throw new SshConfigError("invalid", whole, "not a regular file");
    bytes = await readBounded(f, MAX_FILE_BYTES + 1);
  } catch (e) {
    if (e instanceof SshConfigError) throw e;
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw new SshConfigError("invalid", whole, `cannot read: ${(e as Error).message}`, e);
  }
  if (bytes.length > MAX_FILE_BYTES) {
    throw new SshConfigError("invalid", whole, `file is larger than ${MAX_FILE_BYTES} bytes`);
  }
  return parseText(new TextDecoder().decode(bytes), path, includeBase(ctx.home));
}

/** OpenSSH's SSHCONF_CHECKPERM test. */
export function checkOwner(info: Deno.FileInfo, path: string, ctx: LoadContext): void {
  const badMode = info.mode !== null && (info.mode & 0o022) !== 0;
  const badOwner = ctx.uid !== undefined && info.uid !== null && info.uid !== 0 && info.uid !== ctx.uid;
  if (badMode || badOwner) {
    throw new SshConfigError(
      "invalid",
      { file: path, line: 0 },
      `bad owner or permissions (${badMode ? "group or world writable" : `owned by uid ${info.uid}`})`,
    );
  }
}

async function readBounded(f: Deno.FsFile, max: number): Promise<Uint8Array> {
  const out = new Uint8Array(max);
  let n = 0;
  while (n < max) {
    const got = await f.read(out.subarray(n));
    if (got === null) break;
    n += got;
  }
  return out.subarray(0, n);
}

/** OpenSSH's limit on nested Include: past it, the file is refused (as ssh does), not read on. */
function checkDepth(at: ConstructorParameters<typeof SshConfigError>[1], depth: number): void {
  if (depth + 1 > MAX_INCLUDE_DEPTH) {
    throw new SshConfigError("invalid", at, `too many recursive configuration includes (over ${MAX_INCLUDE_DEPTH})`);
  }
}

/** Fills the Include entries of `cf` (and their includes), reading files with `read`. */
export async function linkIncludes(
  cf: ConfigFile,
  depth: number,
  read: (path: string) => Promise<ConfigFile | undefined>,
  seen: string[],
): Promise<void> {
  for (const e of cf.entries) {
    if (e.type !== "include") continue;
    checkDepth(e.at, depth);
    for (const pattern of e.paths) {
      for (const path of await glob(pattern)) {
        const child = await read(path);
        if (child === undefined) continue;
        if (seen.length >= MAX_INCLUDED_FILES) throw tooMany(e.at);
        seen.push(path);
        await linkIncludes(child, depth + 1, read, seen);
        e.files.push(child);
      }
    }
  }
}

/** Same as {@linkcode linkIncludes}, with a caller-supplied synchronous reader (tests, embedded configs). */
export function linkIncludesSync(
  cf: ConfigFile,
  depth: number,
  read: (pattern: string) => ConfigFile[],
  seen: string[],
): void {
  for (const e of cf.entries) {
    if (e.type !== "include") continue;
    checkDepth(e.at, depth);
    for (const pattern of e.paths) {
      for (const child of read(pattern)) {
        if (seen.length >= MAX_INCLUDED_FILES) throw tooMany(e.at);
        seen.push(child.file);
        linkIncludesSync(child, depth + 1, read, seen);
        e.files.push(child);
      }
    }
  }
}

const GLOB_CHARS = /[*?[]/;

/** glob(3) for absolute patterns: sorted matches; none when nothing matches. */
export async function glob(pattern: string): Promise<string[]> {
  const parts = pattern.split("/").filter((p, i) => p !== "" || i === 0);
  let bases = [parts[0] === "" ? "/" : parts[0]];
  for (const part of parts.slice(1)) {
    const next: string[] = [];
    for (const base of bases) {
      const join = (name: string) => (base.endsWith("/") ? base + name : `${base}/${name}`);
      if (!GLOB_CHARS.test(part)) {
        next.push(join(part));
        continue;
      }
      const re = globRegExp(part);
      const names: string[] = [];
      try {
        for await (const d of Deno.readDir(base)) {
          if (d.name.startsWith(".") && !part.startsWith(".")) continue;
          if (re.test(d.name)) names.push(d.name);
        }
      } catch (e) {
        if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) continue;
        throw e;
      }
      names.sort(byteOrder);
      next.push(...names.map(join));
    }
    bases = next;
  }
  return bases;
}

function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** One path segment's glob pattern (`*`, `?`, `[...]` with `!`/`^` negation) as an anchored RegExp. */
export function globRegExp(part: string): RegExp {
  let re = "";
  for (let i = 0; i < part.length; i++) {
    const c = part[i];
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const close = part.indexOf("]", i + 2);
      if (close < 0) {
        re += "\\[";
        continue;
      }
      let body = part.slice(i + 1, close);
      const neg = body.startsWith("!") || body.startsWith("^");
      if (neg) body = body.slice(1);
      re += `[${neg ? "^" : ""}${body.replace(/[\\\]^]/g, "\\$&")}]`;
      i = close;
    } else re += c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`, "s");
}
