/**
 * The POSIX scripts behind detached jobs. A job lives in a directory of its
 * own under {@linkcode JOBS_DIR} in the remote user's home (0700, files
 * 0600): `cmd` (the command, run as a script), `env` (the caller's
 * variables), `meta` (one JSON line of ours), `pid` (`PID PGID START RUNNER
 * BOOT` once it runs), `out` and `err` (its output, whole), `signal` (the
 * last signal we sent) and `exit` (`STATUS END` once it ended). Everything a
 * later connection, or a restarted server, needs to find the job again is
 * in those files; nothing is kept only in this process.
 *
 * The launcher (run with the call's `cwd`, which the job inherits) writes
 * the files (the command from stdin: an argument is capped at 128 KiB),
 * starts a runner in the background and returns. The runner runs the
 * command with stdin from /dev/null and its output in the files, waits for
 * it and writes its status.
 *
 * Signals: a shell without job control starts a background command with
 * SIGINT and SIGQUIT ignored, and nothing can undo that for the programs it
 * runs. So the runner is bash where there is one: `set -m` gives the command
 * a process group of its own (not the runner's, which must outlive a KILL to
 * write the status) with default dispositions. Without bash the command
 * shares the runner's group: TERM and HUP reach both (the runner traps them
 * and goes on waiting), INT does not reach the command, and a KILL takes the
 * runner too, so the status is unknown and the job reads as killed.
 *
 * Identity: a process group id outlives its job (a reboot, a runner killed
 * before it wrote the status, PIDs reused). Before any signal, and for
 * "still running", {@linkcode MINE} checks the group is still this job's:
 * same boot, and a live member whose environment carries the job's mark
 * (`MCP_REMOTE_SSH_JOB`, which the runner exports); without /proc, the runner
 * itself must still be there running it.
 *
 * @module
 */

import { killScript } from "../ssh/wrapper.ts";
import { shellQuote } from "../validate.ts";

/** Where job directories are, relative to the remote home (SFTP paths are too). */
export const JOBS_DIR = ".cache/mcp-remote-ssh/jobs";

/** A job id: what the remote directory is called. Anything else found there is not ours. */
export const JOB_ID = /^j-[0-9a-f]{12}$/;

/** The variable every process of a job inherits, naming it. */
export const JOB_MARK = "MCP_REMOTE_SSH_JOB";

/** Exit codes of the launcher, for what went wrong before the job ran. */
export const LAUNCH_FAILED = {
  90: "the jobs directory could not be created",
  91: "the job's directory could not be created",
  92: "the job's files could not be written",
} as const satisfies Record<number, string>;

/** The line a launcher prints once the runner was started. */
export const STARTED_TAG = "mcp-job-started";

/** What {@linkcode launchScript} needs. */
export interface LaunchOptions {
  id: string;
  /** The shell the command runs in: the login shell (POSIX) as ssh_execute does, else /bin/sh. */
  shell: "login" | "sh";
  /** Variables exported for the command (names already validated). */
  env?: Record<string, string>;
  /** One line (JSON) kept with the job. */
  meta: string;
  /** Finished (or lost) jobs older than this many minutes are removed when a job starts. */
  keepMinutes: number;
}

const BASE = `"$HOME"/${JOBS_DIR}`;

/**
 * `__mine`: reads the job's `pid` file in `$__d` (into `__p __g __t __r __b`)
 * and succeeds when group `$__g` is still this job's, or its runner `$__r` is
 * still there to write `exit` (see the module doc). Where there is /proc,
 * only live processes carrying the job's mark count: PID 1 may reap late.
 */
const MINE = [
  "__mine() {",
  '  __p=; __g=; __r=; __b=; read -r __p __g __t __r __b < "$__d/pid" 2>/dev/null || return 1',
  '  case $__g in ""|*[!0-9]*|0|1) return 1;; esac',
  "  __nb=-; [ -r /proc/sys/kernel/random/boot_id ] && read -r __nb < /proc/sys/kernel/random/boot_id",
  '  [ "$__b" = "$__nb" ] || [ "$__b" = - ] || return 1',
  "  if [ -r /proc/self/stat ]; then",
  "    for __f in /proc/[0-9]*/stat; do",
  '      read -r __l 2>/dev/null < "$__f" || continue; __l=${__l##*) }; set -- $__l',
  // The group's members, or the runner itself: it outlives the command's group by the moment it takes to
  // write `exit`, and a job in that moment has ended, not been lost.
  '      [ "$1" != Z ] && { [ "$3" = "$__g" ] || [ "${__f%/stat}" = "/proc/$__r" ]; } || continue',
  `      tr '\\0' '\\n' < "\${__f%/stat}/environ" 2>/dev/null | grep -qx "${JOB_MARK}=\${__d##*/}" && return 0`,
  "    done",
  "    return 1",
  "  fi",
  '  case $(ps -o args= -p "$__r" 2>/dev/null) in *"${__d##*/}"*) return 0;; esac',
  "  return 1",
  "}",
].join("\n");

/**
 * Removes jobs that ended (their `exit`), never started (no `pid`) or were
 * lost (no `exit`, group gone) more than `keepMinutes` ago. A glob over our
 * own names, symlinks skipped: nothing but a job directory can be removed.
 */
function cleanup(keepMinutes: number): string {
  const minutes = Math.max(1, Math.round(keepMinutes));
  const old = (path: string) => `[ -n "$(find "${path}" -prune -mmin +${minutes} 2>/dev/null)" ]`;
  return [
    `for __d in ${BASE}/j-*; do`,
    '  [ -d "$__d" ] && [ ! -L "$__d" ] || continue',
    "  case ${__d##*/} in j-[0-9a-f]*) ;; *) continue;; esac",
    `  if [ -f "$__d/exit" ]; then ${old("$__d/exit")} || continue`,
    `  elif [ -f "$__d/pid" ]; then ${old("$__d/pid")} && ! __mine || continue`,
    `  else ${old("$__d")} || continue; fi`,
    '  rm -rf -- "$__d"',
    "done",
  ].join("\n");
}

/**
 * The runner, run as `RUNNER -c SCRIPT mcp-job DIR SHELL`. The trap makes a
 * TERM or HUP to a shared group end `wait` early rather than the runner; it
 * waits again while the command is there (a zombie still answers `kill -0`).
 * `set +m` once the command runs: with job control on, `wait` would return
 * when the command is merely stopped.
 */
const RUNNER = [
  "__d=$1; __s=$2",
  "case ${__s##*/} in bash) __o=--norc;; zsh) __o=-f;; *) __o=;; esac",
  '[ -f "$__d/env" ] && . "$__d/env"',
  `${JOB_MARK}=\${__d##*/}; export ${JOB_MARK}`,
  "set -m 2>/dev/null",
  "__t=0; trap '__t=1' HUP TERM INT",
  '"$__s" ${__o:+"$__o"} "$__d/cmd" </dev/null >"$__d/out" 2>"$__d/err" &',
  "__p=$!",
  // With job control the command leads its own group; without, it is in ours.
  "case $- in *m*) __g=$__p; set +m;; *) __g=; if [ -r /proc/$$/stat ]; then " +
  "read -r __k __k __k __k __g __k < /proc/$$/stat; else __g=$(ps -o pgid= -p $$ | tr -d ' '); fi;; esac",
  "__b=-; [ -r /proc/sys/kernel/random/boot_id ] && read -r __b < /proc/sys/kernel/random/boot_id",
  'printf \'%s %s %s %s %s\\n\' "$__p" "$__g" "$(date +%s)" "$$" "$__b" > "$__d/pid.t" && mv -f "$__d/pid.t" "$__d/pid"',
  'while :; do __t=0; wait "$__p"; __c=$?; [ "$__t" = 1 ] && kill -0 "$__p" 2>/dev/null || break; done',
  'printf \'%s %s\\n\' "$__c" "$(date +%s)" > "$__d/exit.t" && mv -f "$__d/exit.t" "$__d/exit"',
].join("\n");

/**
 * The launcher: creates the job's directory and files (the command is its
 * stdin), starts the runner (which writes `pid` a few milliseconds later),
 * removes old jobs in the background and prints {@linkcode STARTED_TAG}.
 * Its exit code is in {@linkcode LAUNCH_FAILED} when it did not get that far.
 */
export function launchScript(o: LaunchOptions): string {
  if (!JOB_ID.test(o.id)) throw new RangeError(`Not a job id: ${o.id}`);
  const shell = o.shell === "login" ? '"${SHELL:-/bin/sh}"' : "/bin/sh";
  const env = Object.entries(o.env ?? {}).map(([name, value]) => `export ${name}=${shellQuote(value)}\n`).join("");
  return [
    "umask 077",
    `mkdir -p ${BASE} && chmod 700 "$HOME"/.cache/mcp-remote-ssh ${BASE} || exit 90`,
    `__d=${BASE}/${o.id}`,
    'mkdir -- "$__d" || exit 91',
    `cat > "$__d/cmd" && printf '%s' ${shellQuote(env)} > "$__d/env" && ` +
    `printf '%s\\n' ${shellQuote(o.meta)} > "$__d/meta" || exit 92`,
    // bash starts the runner with job control on: in a group of its own, INT and QUIT not ignored.
    `__c=${shellQuote(RUNNER)}`,
    "if __r=$(command -v bash 2>/dev/null); then " +
    `"$__r" --norc -c 'set -m; "$0" --norc -c "$1" mcp-job "$2" "$3" </dev/null >/dev/null 2>&1 &' ` +
    `"$__r" "$__c" "$__d" ${shell}; ` +
    `else /bin/sh -c "$__c" mcp-job "$__d" ${shell} </dev/null >/dev/null 2>&1 & fi`,
    // Old jobs go after the start, in the background: the start does not wait for them.
    `( ${MINE}\n${cleanup(o.keepMinutes)} ) </dev/null >/dev/null 2>&1 &`,
    `printf '${STARTED_TAG}\\n'`,
  ].join("\n");
}

/** Whether the launcher got as far as starting the runner. */
export function launched(stdout: string): boolean {
  return new RegExp(`^${STARTED_TAG}$`, "m").test(stdout);
}

/** One job as {@linkcode listScript} reports it. */
export interface ListedJob {
  id: string;
  pid: number | null;
  pgid: number | null;
  startEpoch: number | null;
  /** Exit status as the runner's shell saw it (128+n for a signal), or null while none was written. */
  status: number | null;
  endEpoch: number | null;
  /** The last signal we sent, e.g. `TERM`. */
  signal: string | null;
  /** Whether it still runs: its group is there and still its own (only asked while it has no status). */
  alive: boolean;
  stdoutBytes: number;
  stderrBytes: number;
  /** The meta line, unparsed. */
  meta: string;
}

/**
 * Lists every job directory (after removing old finished ones, unless
 * `keepMinutes` is null): one line
 * each, tab-separated: id, pid line, exit line, signal, alive, out bytes,
 * err bytes, meta.
 */
export function listScript(keepMinutes: number | null): string {
  return [
    `[ -d ${BASE} ] || exit 0`,
    MINE,
    // null: list only (a read-only host's policy: nothing is removed there).
    keepMinutes === null ? ":" : cleanup(keepMinutes),
    `for __d in ${BASE}/j-*; do`,
    '  [ -d "$__d" ] && [ ! -L "$__d" ] && [ -f "$__d/meta" ] || continue',
    "  __pl=; __e=; __s=; __a=0",
    '  [ -r "$__d/pid" ] && read -r __pl < "$__d/pid"',
    '  [ -r "$__d/exit" ] && read -r __e < "$__d/exit"',
    '  [ -r "$__d/signal" ] && read -r __s < "$__d/signal"',
    '  if [ -z "$__e" ] && __mine; then __a=1; fi',
    '  __o=$(wc -c < "$__d/out" 2>/dev/null) || __o=0; __z=$(wc -c < "$__d/err" 2>/dev/null) || __z=0',
    '  printf \'%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t\' "${__d##*/}" "$__pl" "$__e" "$__s" $__a $__o $__z',
    '  head -n 1 "$__d/meta"',
    "done",
    "exit 0",
  ].join("\n");
}

/** Parses {@linkcode listScript}'s output; lines that are not a job of ours are skipped. */
export function parseList(stdout: string): ListedJob[] {
  const jobs: ListedJob[] = [];
  for (const line of stdout.split("\n")) {
    const f = line.split("\t");
    if (f.length < 8 || !JOB_ID.test(f[0])) continue;
    const nums = (s: string) => s.trim() === "" ? [] : s.trim().split(/\s+/).map(Number);
    const [pid, pgid, start] = nums(f[1]);
    const [status, end] = nums(f[2]);
    const int = (n: number | undefined) => (n !== undefined && Number.isSafeInteger(n) ? n : null);
    jobs.push({
      id: f[0],
      pid: int(pid),
      pgid: int(pgid) !== null && pgid >= 2 ? pgid : null,
      startEpoch: int(start),
      status: int(status),
      endEpoch: int(end),
      signal: /^[A-Z]{2,6}$/.test(f[3]) ? f[3] : null,
      alive: f[4] === "1",
      stdoutBytes: int(Number(f[5])) ?? 0,
      stderrBytes: int(Number(f[6])) ?? 0,
      meta: f.slice(7).join("\t"),
    });
  }
  return jobs;
}

/** The signals an agent may send a job, and their numbers (for a status of 128+n). */
export const JOB_SIGNALS = { HUP: 1, INT: 2, KILL: 9, TERM: 15 } as const;

/** The signals an agent may send a job. */
export type JobSignal = keyof typeof JOB_SIGNALS;

/** Whether the job still runs: exit 0 yes, 1 no (ended, lost, or its group is no longer its own). */
export function aliveScript(id: string): string {
  return [`__d=${dirOf(id)}`, MINE, '[ -f "$__d/exit" ] && exit 1', "__mine"].join("\n");
}

/**
 * Sends `signal` to the job's process group, noting it; exit 6 when there is
 * nothing of the job left to signal (ended and gone, or its group is
 * someone else's now).
 */
export function signalScript(id: string, signal: JobSignal): string {
  return [
    `__d=${dirOf(id)}`,
    MINE,
    "__mine || exit 6",
    `printf '%s\\n' ${signal} > "$__d/signal"`,
    `kill -s ${signal} -- -$__g 2>/dev/null || kill -s ${signal} -$__g 2>/dev/null || exit 6`,
  ].join("\n");
}

/**
 * TERM, then KILL when anything of the job is still there after
 * `graceSeconds` (its command may have ended while children that ignore
 * TERM live on), then waits until the group is gone: exit 0 gone (or nothing
 * was left), else killScript's codes (1 still there, 3 another user's).
 */
export function cancelScript(id: string, graceSeconds: number): string {
  const tries = Math.max(1, Math.round(graceSeconds * 20));
  return [
    `__d=${dirOf(id)}`,
    MINE,
    "__mine || exit 0",
    `printf 'TERM\\n' > "$__d/signal"`,
    "kill -s TERM -- -$__g 2>/dev/null || kill -s TERM -$__g 2>/dev/null",
    `__i=0; while __mine && [ $__i -lt ${tries} ]; do __i=$((__i+1)); sleep 0.05 2>/dev/null || sleep 1; done`,
    "__mine || exit 0",
    `printf 'KILL\\n' > "$__d/signal"`,
    killScript("$__g", "g", 4),
  ].join("\n");
}

/** Removes the job's directory; exit 4 when it is still running. */
export function removeScript(id: string): string {
  return [
    `__d=${dirOf(id)}`,
    MINE,
    'if [ ! -f "$__d/exit" ] && __mine; then exit 4; fi',
    'rm -rf -- "$__d"',
  ].join("\n");
}

function dirOf(id: string): string {
  if (!JOB_ID.test(id)) throw new RangeError(`Not a job id: ${id}`);
  return `${BASE}/${id}`;
}
