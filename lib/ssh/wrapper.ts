/**
 * The small POSIX script every remote command runs in: it reports the
 * shell's PID and process-group state behind a per-call random marker,
 * applies `cwd` and `env`, gives the command a process group of its own
 * where the server did not, and then runs the command.
 *
 * An SSH server hands an exec request to the user's login shell, which may
 * not be POSIX (fish rejects `$$`, csh has no `export` and skips the rest of
 * a failing line). Two ways of delivery cover that:
 *
 * - `direct`: the login shell is known to be POSIX-family (bash, dash, zsh,
 *   ksh, ash...): the script is the exec request itself, as `ssh host cmd`
 *   would send it, and the command runs in that shell.
 * - `hop`: any other or unknown login shell gets {@linkcode HOP_LINE}, one
 *   line that sh, bash, zsh, fish, tcsh/csh and busybox parse alike (a
 *   single-quoted string free of `'`, `\`, `!` and newlines). It starts
 *   `/bin/sh`, which reads the script as the first line of stdin with the
 *   `read` builtin (shells read their own script from a pipe in blocks, but
 *   `read` stops at the newline, so the command's stdin starts right after
 *   it) and runs the command there.
 *
 * Login files may print before any of this (an `echo` in `.bashrc`): the
 * markers tell that noise from the command's output (see
 * {@linkcode MarkerScan}), and their absence tells that the server ran
 * something else (a forced command, a restricted shell).
 *
 * @module
 */

import { randomHex, truncateUtf8 } from "../random.ts";
import { shellQuote } from "../validate.ts";

/** How the script reaches a POSIX shell on the remote side. */
export type Delivery = "direct" | "hop";

/** The exec request of the `hop` delivery; the script follows on stdin. */
export const HOP_LINE = `exec /bin/sh -c 'IFS= read -r __mcp; eval "$__mcp"'`;

/**
 * Whether the command's process group can be killed: `g` the shell leads its
 * own group (sshd made it a session leader), `s` it does not but `setsid`
 * gives the command one (Dropbear), `n` neither: a kill reaches the shell only.
 */
export type GroupState = "g" | "s" | "n";

/** Login shells that run POSIX sh syntax, by file name. */
const POSIX_SHELLS = new Set([
  "sh",
  "bash",
  "dash",
  "ash",
  "ksh",
  "ksh93",
  "mksh",
  "lksh",
  "pdksh",
  "oksh",
  "loksh",
  "yash",
  "posh",
  "zsh",
]);

/** True when a login shell (a path, as in `$SHELL`) takes POSIX sh syntax and may run the script directly. */
export function isPosixShell(path: string): boolean {
  return POSIX_SHELLS.has(path.slice(path.lastIndexOf("/") + 1));
}

/** A fresh per-call marker nonce: output that did not come from our script cannot carry it. */
export function newNonce(): string {
  return randomHex(10);
}

/** What to run and how. */
export interface WrapOptions {
  command: string;
  cwd?: string;
  /** Variables exported before the command (names already validated). */
  env?: Record<string, string>;
  nonce: string;
  delivery: Delivery;
  /**
   * True when the server is known to make each command's shell a process-group leader (the
   * probe saw it, as on every OpenSSH): the script then skips finding out, which costs a read
   * of /proc per command.
   */
  ownGroup?: boolean;
  /**
   * The script goes to a shell started ahead of the call with {@linkcode spareLine}: one line on
   * stdin, run in place by the shell that reads it (the login shell for `direct`, /bin/sh for `hop`).
   */
  spare?: boolean;
}

/** The exec request to send, and the bytes to write to stdin before the command's own. */
export interface Wrapped {
  commandLine: string;
  stdinPrefix: string;
  /** The delivery used: a `direct` script too big for one request goes `hop`. */
  delivery: Delivery;
}

/**
 * The biggest script sent `direct`. sshd passes it to the shell as one
 * argument (Linux caps one at 128 KiB) and drops the connection over an
 * exec request above 256 KiB; on stdin there is no such limit.
 */
export const DIRECT_MAX_BYTES = 96 * 1024;

/** Builds the exec request (and, for `hop`, its stdin prefix) for one command. */
export function wrapCommand(options: WrapOptions): Wrapped {
  if (options.spare) {
    const script = buildScript(options, true, true);
    return { commandLine: spareLine(options.delivery), stdinPrefix: script + "\n", delivery: options.delivery };
  }
  if (options.delivery === "direct") {
    const script = buildScript(options, false);
    if (new TextEncoder().encode(script).length <= DIRECT_MAX_BYTES) {
      return { commandLine: script, stdinPrefix: "", delivery: "direct" };
    }
  }
  return { commandLine: HOP_LINE, stdinPrefix: buildScript(options, true) + "\n", delivery: "hop" };
}

/**
 * The exec request of a shell started before its command is known (see ../ssh/connection.ts
 * `startSpare`): it waits for one line on stdin and runs it in place, as {@linkcode HOP_LINE} does; for
 * `direct`, in the login shell itself, so the command runs where a `direct` request would run it.
 * EOF before a line ends it having run nothing. A `read` cut short by a timeout (bash and ksh take
 * `TMOUT` as one, status > 128) with nothing read reads again: an idle shell must not end on its
 * own. One cut in the middle of a line exits having run nothing: the rest of that line, read on its
 * own, would run without its start (the stderr marker, the `cd`). One line free of `'`, `\`, `!`
 * and newlines, like HOP_LINE, so that any login shell parses the `hop` form.
 */
export function spareLine(delivery: Delivery): string {
  const wait = 'until IFS= read -r __mcp; do [ $? -gt 128 ] && [ -z "$__mcp" ] || exit 0; done; eval "$__mcp"';
  return delivery === "direct" ? wait : `exec /bin/sh -c '${wait}'`;
}

/** Bytes of the command per exec argument: Linux caps one argument at 128 KiB. */
export const ARG_PART_BYTES = 64 * 1024;

/** The script a shell gets when the command arrives as several arguments: it joins and runs them. */
const JOIN_AND_RUN = '__mcp_c=; for __mcp_p in "$@"; do __mcp_c=$__mcp_c$__mcp_p; done; set --; eval "$__mcp_c"';

/**
 * The `cd` operand for `cwd`, quoted. `~` and `~/…` mean the home, as in
 * the file tools: the `~` alone is left unquoted so the shell expands it (to
 * `$HOME`, which sshd and Dropbear set to the account's home; with it unset,
 * bash and zsh ask the password database and dash leaves `~` as it is, so
 * the `cd` fails), and everything after the `/` stays quoted, so nothing in
 * it is expanded. `~user` is not expanded (quoted, it names a directory
 * called so), as the file tools refuse it.
 */
function cwdWord(cwd: string, quote: (v: string) => string): string {
  if (cwd === "~") return "~";
  if (cwd.startsWith("~/")) return cwd.length === 2 ? "~/" : `~/${quote(cwd.slice(2))}`;
  // `cd -- -` is still `cd "$OLDPWD"`: a directory named `-` is `./-`.
  return quote(cwd === "-" ? "./-" : cwd);
}

function buildScript(options: WrapOptions, hop: boolean, spare = false): string {
  // Which shell runs the command: a POSIX login shell always (delivery
  // `direct` was asked for, even when the size sent it `hop`), else /bin/sh.
  const loginPosix = options.delivery === "direct";
  // In place (eval) when the script already runs in that shell (a shell
  // started ahead reads it in the right one); else exec it.
  const inPlace = spare || !hop || !loginPosix;
  const values = [options.command, options.cwd ?? "", ...Object.values(options.env ?? {})];
  // The hop script is one line: newlines in values are spliced in from a
  // variable. The shell's default IFS is space, tab, newline, so its tail is
  // a newline without starting a process; the check covers an odd shell.
  const quote = hop ? (v: string) => v.split("\n").map(shellQuote).join('"$__mcp_n"') : shellQuote;
  const mark = `\\001MCP${options.nonce}`;
  const parts: string[] = [];
  if (hop && values.some((v) => v.includes("\n"))) {
    parts.push(`__mcp_n=\${IFS#??}`, `[ \${#__mcp_n} -eq 1 ] || { __mcp_n=$(printf '\\nx'); __mcp_n=\${__mcp_n%x}; }`);
  }
  // stderr's marker first: what login files wrote to stderr comes before it.
  parts.push(`printf '${mark}\\n' >&2`);
  if (options.cwd !== undefined) {
    parts.push(`cd -- ${cwdWord(options.cwd, quote)} || { printf '${mark}:cwd\\n'; exit 1; }`);
  }
  // The command travels in pieces: exec'd, each piece is one argument.
  const pieces = splitUtf8(options.command, ARG_PART_BYTES);
  const joined = `"${pieces.map((_, i) => `$__mcp_c${i}`).join("")}"`;
  const run = pieces.length === 1
    ? '-c "$__mcp_c0"'
    : `-c ${shellQuote(JOIN_AND_RUN)} "$__mcp_s" ${pieces.map((_, i) => `"$__mcp_c${i}"`).join(" ")}`;
  // bash's exec lowers SHLVL, so a new bash under sshd or Dropbear would read .bashrc
  // again, and print its noise after the marker: --norc (and zsh -f) keep it out.
  const shell = hop && !loginPosix
    ? "__mcp_s=/bin/sh; __mcp_o="
    : "__mcp_s=$SHELL; case ${SHELL##*/} in bash) __mcp_o=--norc;; zsh) __mcp_o=-f;; *) __mcp_o=;; esac";
  // Exported last, right before the command, and every expansion after them
  // quoted: an `IFS`, `PATH` or `SHELL` of the caller's must not change how
  // the script itself works.
  const tail = [
    ...Object.entries(options.env ?? {}).map(([name, value]) => `export ${name}=${quote(value)}`),
    ...pieces.map((piece, i) => `__mcp_c${i}=${quote(piece)}`),
  ];
  const finish = inPlace ? `eval ${joined}` : `exec "$__mcp_s" \${__mcp_o:+"$__mcp_o"} ${run}`;
  if (options.ownGroup) {
    parts.push(`printf '${mark}:%s:g\\n' $$`, ...(inPlace ? [] : [shell]), ...tail, finish);
    return parts.join("; ");
  }
  // Is the shell the leader of its process group? /proc where there is one;
  // elsewhere (macOS, BSD: OpenSSH, which always makes it one) ps answers.
  parts.push(
    "__mcp_g=",
    "if [ -r /proc/$$/stat ]; then read -r __mcp_k __mcp_k __mcp_k __mcp_k __mcp_g __mcp_k < /proc/$$/stat; " +
      "else __mcp_g=$(ps -o pgid= -p $$ 2>/dev/null | tr -d ' '); fi",
    'if [ "$__mcp_g" = $$ ]; then __mcp_k=g; elif __mcp_x=$(command -v setsid 2>/dev/null); then __mcp_k=s; ' +
      "else __mcp_k=n; fi",
    `printf '${mark}:%s:%s\\n' $$ $__mcp_k`,
    shell,
    ...tail,
    // setsid does not fork when the caller leads no group: the PID stays the one reported.
    `if [ "$__mcp_k" = s ]; then exec "$__mcp_x" "$__mcp_s" \${__mcp_o:+"$__mcp_o"} ${run}; fi`,
    finish,
  );
  return parts.join("; ");
}

/** `text` cut into pieces of at most `max` UTF-8 bytes, never inside a character. */
function splitUtf8(text: string, max: number): string[] {
  const pieces: string[] = [];
  let rest = text;
  do {
    const piece = truncateUtf8(rest, max);
    pieces.push(piece);
    rest = rest.slice(piece.length);
  } while (rest !== "");
  return pieces;
}

/** A shell variable holding a PID, for scripts that read it on the remote side: `$__g`. */
export type ShellVariable = `$__${string}`;

/**
 * A POSIX script (for /bin/sh) that kills a command's process group (or,
 * with no group of its own, its shell) and waits until it is gone. Exit
 * status: 0 gone, 1 still there after `waitSeconds`, 3 what is left runs as
 * another user (sudo's root processes, which the login user may not signal:
 * their own `timeout` ends them at the same deadline, so it waits for that).
 * dash needs `--` before a negative PID and busybox refuses it: both forms.
 */
export function killScript(pid: number | ShellVariable, group: GroupState, waitSeconds = 4): string {
  // A variable is the caller's to check (a script that read the PID on the remote side).
  if (typeof pid === "number" && (!Number.isSafeInteger(pid) || pid < 2)) {
    throw new RangeError(`Refusing to kill PID ${pid}`);
  }
  const target = group === "n" ? `${pid}` : `-${pid}`;
  const send = (signal: string, err = "2>/dev/null") =>
    `{ kill -s ${signal} -- ${target} ${err} || kill -s ${signal} ${target} ${err}; }`;
  const tries = Math.max(1, Math.round(waitSeconds * 20));
  // Where there is /proc, alive means a member that is not a zombie: signal
  // 0 reaches zombies too, and where PID 1 reaps late (or never, in some
  // containers) they stay in the group after everything has died.
  const live = group === "n"
    ? `read -r __l 2>/dev/null < /proc/${pid}/stat || return 1; __l=\${__l##*) }; set -- $__l; [ "$1" != Z ]`
    : `for __f in /proc/[0-9]*/stat; do read -r __l 2>/dev/null < "$__f" || continue; __l=\${__l##*) }; ` +
      `set -- $__l; [ "$1" != Z ] && [ "$3" = ${pid} ] && return 0; done; return 1`;
  return [
    send("KILL"),
    `kill -s KILL ${pid} 2>/dev/null`,
    // o=3: signal 0 fails for want of permission: another user's processes.
    `__alive() { o=1; ${send("0")} || o=3; if [ -r /proc/self/stat ]; then ${live}; return; fi; ` +
    `[ $o = 1 ] && return 0; e=$(LC_ALL=C; export LC_ALL; ${send("0", "2>&1")}); ` +
    `case $e in *ermitted*|*owner*) return 0;; esac; return 1; }`,
    `i=0; while __alive; do i=$((i+1)); [ $i -ge ${tries} ] && exit $o; sleep 0.05 2>/dev/null || sleep 1; done`,
    "exit 0",
  ].join("; ");
}

/** Bytes of login-file output looked through for the marker before giving up on it. */
export const MARKER_SEARCH_LIMIT = 64 * 1024;

/** What the marker line on stdout said. */
export type MarkerReport =
  | { kind: "started"; pid: number; group: GroupState }
  | { kind: "cwd" };

/**
 * Finds a marker line at the start of a stream, within
 * {@linkcode MARKER_SEARCH_LIMIT} bytes. Bytes before it are login-file
 * output (kept apart); bytes after it are the command's. Until the marker
 * is seen nothing is passed on: the script prints it before the command runs.
 */
export class MarkerScan {
  #mark: Uint8Array;
  #pending: Uint8Array | null = new Uint8Array(0);
  /** Output before the marker (login files), once the marker was found. */
  noise: Uint8Array = new Uint8Array(0);
  /** The rest of the marker line (after `MCP<nonce>`), once found. */
  line: string | null = null;
  /** True once the stream ended or outgrew the limit without the marker. */
  missing = false;
  /**
   * True when the search gave up at {@linkcode MARKER_SEARCH_LIMIT}: the marker may still have
   * come after it, so the missing marker proves nothing about whether the command ran.
   */
  overflowed = false;
  /** True once any byte arrived. */
  received = false;

  /** `nonce` from {@linkcode newNonce}. */
  constructor(nonce: string) {
    this.#mark = new TextEncoder().encode(`\x01MCP${nonce}`);
  }

  /** Whether the search is over (found or given up). */
  get settled(): boolean {
    return this.#pending === null;
  }

  /** Takes a chunk; returns the bytes that belong to the command's output. */
  take(chunk: Uint8Array): Uint8Array {
    if (chunk.length > 0) this.received = true;
    if (this.#pending === null) return chunk;
    const joined = concat(this.#pending, chunk);
    const at = indexOf(joined, this.#mark);
    const nl = at < 0 ? -1 : joined.indexOf(10, at + this.#mark.length);
    if (nl >= 0) {
      this.#pending = null;
      this.noise = joined.slice(0, at);
      this.line = new TextDecoder().decode(joined.subarray(at + this.#mark.length, nl));
      return joined.subarray(nl + 1);
    }
    this.#pending = joined;
    if (joined.length <= MARKER_SEARCH_LIMIT) return new Uint8Array(0);
    this.overflowed = true;
    return this.end();
  }

  /** Gives up the search (the stream ended): what was held back is the command's output after all. */
  end(): Uint8Array {
    const held = this.#pending;
    if (held === null) return new Uint8Array(0);
    this.#pending = null;
    this.missing = true;
    return held;
  }

  /** The stdout marker line's meaning, or null when absent or malformed. */
  report(): MarkerReport | null {
    if (this.line === null) return null;
    if (this.line === ":cwd") return { kind: "cwd" };
    const m = /^:(\d{1,10}):([gsn])$/.exec(this.line);
    // PID 0 or 1 would make a group kill hit far more than our command.
    if (m === null || Number(m[1]) < 2) return null;
    return { kind: "started", pid: Number(m[1]), group: m[2] as GroupState };
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a);
  joined.set(b, a.length);
  return joined;
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  const first = needle[0];
  for (
    let i = haystack.indexOf(first);
    i >= 0 && i + needle.length <= haystack.length;
    i = haystack.indexOf(first, i + 1)
  ) {
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
}
