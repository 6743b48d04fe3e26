/**
 * One ssh_config file's text turned into entries, with every value checked
 * as OpenSSH checks it while reading (bad values are errors even in blocks
 * that do not apply to the host, as with `ssh -G`). Which lines apply is
 * decided later, per host, in resolve.ts.
 *
 * @module
 */

import { SshConfigError } from "./errors.ts";
import { type Keyword, KEYWORDS } from "./keywords.ts";
import { lexLine } from "./lex.ts";
import { type JumpHop, parsePort, parseProxyJump } from "./jump.ts";

/** A line of a config file: where it is and what it says. */
export interface ConfigLine {
  /** The file, as opened. */
  file: string;
  /** 1-based line number. */
  line: number;
  /** The line as written (without its line break). */
  text: string;
}

/** A criterion of a `Match` line. */
export interface Criterion {
  negate: boolean;
  /** `unsupported`: a criterion this reader cannot decide (canonical, final, tagged, localnetwork), named in `arg`. */
  attr: "all" | "host" | "originalhost" | "user" | "localuser" | "exec" | "unsupported";
  arg: string;
}

/** A parsed value of a keyword this reader acts on. */
export type Value = string | number | boolean | string[] | JumpHop[] | "none";

/** One meaningful line. */
export type Entry =
  | { type: "host"; at: ConfigLine; patterns: string[] }
  | { type: "match"; at: ConfigLine; criteria: Criterion[] }
  | { type: "include"; at: ConfigLine; paths: string[]; files: ConfigFile[] }
  | { type: "unknown"; at: ConfigLine; keyword: string }
  | { type: "option"; at: ConfigLine; kw: Keyword; args: string[]; rest: string; value: Value };

/** A file and its entries (Include entries filled in by the loader). */
export interface ConfigFile {
  file: string;
  entries: Entry[];
}

/** Longest line OpenSSH's old fixed buffer took, and the largest file we read. */
export const MAX_LINE_BYTES = 4096;
/** Largest config file read, in bytes. */
export const MAX_FILE_BYTES = 1024 * 1024;

const SINGLE_ARG = new Set([
  "hostname",
  "user",
  "port",
  "identityfile",
  "identitiesonly",
  "identityagent",
  "connecttimeout",
  "serveraliveinterval",
  "serveralivecountmax",
  "hostkeyalias",
  "stricthostkeychecking",
  "preferredauthentications",
  "passwordauthentication",
  "kbdinteractiveauthentication",
  "ignoreunknown",
  "permitlocalcommand",
  "proxyusefdpass",
  "securitykeyprovider",
  "pkcs11provider",
]);
const FLAGS = new Set([
  "identitiesonly",
  "passwordauthentication",
  "kbdinteractiveauthentication",
  "permitlocalcommand",
  "proxyusefdpass",
]);
const TIMES = new Set(["connecttimeout", "serveraliveinterval"]);
const STRICT: Record<string, string> = {
  yes: "yes",
  true: "yes",
  no: "no",
  false: "no",
  off: "off",
  ask: "ask",
  "accept-new": "accept-new",
};
const MATCH_ATTRS = new Set(["all", "host", "originalhost", "user", "localuser", "exec"]);
const MATCH_UNSUPPORTED = new Set(["canonical", "final", "tagged", "localnetwork"]);

/**
 * Parses one file's text. Include lines keep their expanded paths; the caller reads them.
 *
 * @param text The file's content.
 * @param file Its path, for errors and provenance.
 * @param includeBase Expands an Include argument to an absolute path pattern.
 * @throws SshConfigError on the first invalid line
 */
export function parseText(
  text: string,
  file: string,
  includeBase: (arg: string, at: ConfigLine) => string,
): ConfigFile {
  if (new TextEncoder().encode(text).length > MAX_FILE_BYTES) {
    throw new SshConfigError("invalid", { file, line: 0 }, `file is larger than ${MAX_FILE_BYTES} bytes`);
  }
  const entries: Entry[] = [];
  const lines = text.split("\n");
  for (let n = 0; n < lines.length; n++) {
    const raw = lines[n];
    const at: ConfigLine = { file, line: n + 1, text: raw.replace(/\r$/, "") };
    if (new TextEncoder().encode(raw).length > MAX_LINE_BYTES) {
      throw new SshConfigError("invalid", at, `line is longer than ${MAX_LINE_BYTES} bytes`);
    }
    if (raw.includes("\0")) throw new SshConfigError("invalid", at, "line contains a NUL byte");
    const lexed = lexLine(raw);
    if (lexed === null) continue;
    if (typeof lexed === "string") throw new SshConfigError("invalid", at, lexed);
    const entry = parseEntry(lexed.keyword, lexed.args, lexed.rest, at, includeBase);
    entries.push(entry);
  }
  return { file, entries };
}

function parseEntry(
  keyword: string,
  args: string[],
  rest: string,
  at: ConfigLine,
  includeBase: (arg: string, at: ConfigLine) => string,
): Entry {
  const kw = KEYWORDS.get(keyword);
  if (kw === undefined) return { type: "unknown", at, keyword };
  const bad = (reason: string) => new SshConfigError("invalid", at, reason);
  if (args.length === 0 && kw.kind !== "obsolete") throw bad(`missing argument for ${kw.name}`);
  switch (kw.kind) {
    case "host":
      if (args.some((a) => a === "")) throw bad("Host has an empty pattern");
      return { type: "host", at, patterns: args };
    case "match":
      return { type: "match", at, criteria: parseMatch(args, at) };
    case "include":
      return { type: "include", at, paths: args.map((a) => includeBase(a, at)), files: [] };
    case "ignored":
    case "ignoredMulti":
    case "obsolete":
      return { type: "option", at, kw, args, rest, value: rest };
  }
  const id = kw.id;
  if (SINGLE_ARG.has(id) && args.length > 1) throw bad(`${kw.name} has extra arguments at end of line`);
  if (args.some((a) => a === "")) throw bad(`${kw.name} has an empty argument`);
  let value: Value;
  const arg = args[0];
  if (FLAGS.has(id)) {
    const v = arg.toLowerCase();
    if (v === "yes" || v === "true") value = true;
    else if (v === "no" || v === "false") value = false;
    else throw bad(`${kw.name} takes yes or no, not "${arg}"`);
  } else if (TIMES.has(id)) {
    const s = parseTime(arg);
    if (s === null) throw bad(`${kw.name} has an invalid time value "${arg}"`);
    value = s;
  } else if (id === "port") {
    const p = parsePort(arg);
    if (p === null) throw bad(`bad port "${arg}"`);
    value = p;
  } else if (id === "serveralivecountmax") {
    if (!/^[0-9]{1,9}$/.test(arg)) throw bad(`${kw.name} takes a number, not "${arg}"`);
    value = Number(arg);
  } else if (id === "stricthostkeychecking") {
    const v = STRICT[arg.toLowerCase()];
    if (v === undefined) throw bad(`${kw.name} takes yes, no, ask, accept-new or off, not "${arg}"`);
    value = v;
  } else if (id === "proxyjump") {
    const hops = parseProxyJump(rest);
    if (typeof hops === "string" && hops !== "none") throw bad(hops);
    value = hops;
  } else if (id === "proxycommand" || id === "localcommand" || id === "knownhostscommand") {
    value = rest; // OpenSSH takes the raw rest of the line for commands
  } else if (id === "userknownhostsfile" || id === "globalknownhostsfile") {
    value = args;
  } else if (id === "identityagent" && arg.startsWith("$") && !arg.startsWith("${")) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(arg.slice(1))) throw bad(`invalid environment name ${arg}`);
    value = arg;
  } else {
    value = arg;
  }
  return { type: "option", at, kw, args, rest, value };
}

function parseMatch(args: string[], at: ConfigLine): Criterion[] {
  const criteria: Criterion[] = [];
  for (let i = 0; i < args.length; i++) {
    const negate = args[i].startsWith("!");
    const attr = (negate ? args[i].slice(1) : args[i]).toLowerCase();
    if (attr === "all") {
      // As match_cfg_line: `all` may follow one other criterion but nothing may follow it.
      if (criteria.length > 1 || i + 1 < args.length) {
        throw new SshConfigError("invalid", at, `'${args[i]}' cannot be combined with other Match attributes`);
      }
      criteria.push({ negate, attr: "all", arg: "" });
      continue;
    }
    if (MATCH_UNSUPPORTED.has(attr)) {
      // Refused when a host reaches it (as Match exec), so one such block does not break every other host.
      const takesArg = attr === "tagged" || attr === "localnetwork";
      if (takesArg && (args[++i] ?? "") === "") {
        throw new SshConfigError("invalid", at, `missing Match criteria for ${attr}`);
      }
      criteria.push({ negate, attr: "unsupported", arg: attr });
      continue;
    }
    if (!MATCH_ATTRS.has(attr)) throw new SshConfigError("invalid", at, `unsupported Match attribute ${attr}`);
    const arg = args[++i];
    if (arg === undefined || arg === "") throw new SshConfigError("invalid", at, `missing Match criteria for ${attr}`);
    criteria.push({ negate, attr: attr as Criterion["attr"], arg });
  }
  if (criteria.length === 0) throw new SshConfigError("invalid", at, "one or more attributes required for Match");
  return criteria;
}

/** OpenSSH's convtime: `90`, `1m30s`, `2h`; units s m h d w, case-insensitive. Null if invalid. */
export function parseTime(s: string): number | null {
  if (!/^([0-9]+[smhdwSMHDW]?)+$/.test(s)) return null;
  const mult: Record<string, number> = { "": 1, s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
  let total = 0;
  for (const m of s.matchAll(/([0-9]+)([smhdwSMHDW]?)/g)) total += Number(m[1]) * mult[m[2].toLowerCase()];
  return total > 2 ** 31 - 1 ? null : total;
}
