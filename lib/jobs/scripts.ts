/**
 * The POSIX scripts behind detached jobs. A job lives in a directory of its
 * own under {@linkcode JOBS_DIR} in the remote user's home (0700, files
 * 0600): `cmd` (the command), `meta` (one JSON line of ours), `pid`
 * (`PID PGID START_EPOCH` once it runs), `out` and `err` (its output, whole),
 * `signal` (the last signal we sent) and `exit` (`STATUS END_EPOCH` once it
 * ended). Everything a later connection, or a restarted server, needs to find
 * the job again is in those files; nothing is kept only in this process.
 *
 * The launcher (run like any command, so `cwd` and `env` apply to it and the
 * job inherits them) starts a runner in the background and returns. The
 * runner runs the command with stdin from /dev/null and its output in the
 * files, waits for it and writes its status.
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
 * @module
 */

import { shellQuote } from "../validate.ts";

/** Where job directories are, relative to the remote home (SFTP paths are too). */
export const JOBS_DIR = ".cache/mcp-remote-ssh/jobs";

/** A job id: what the remote directory is called. Anything else found there is not ours. */
export const JOB_ID = /^j-[0-9a-f]{12}$/;

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
  command: string;
  /** The shell the command runs in: the login shell (POSIX) as ssh_execute does, else /bin/sh. */
  shell: "login" | "sh";
  /** One line (JSON) kept with the job. */
  meta: string;
  /** Finished jobs older than this many minutes are removed when a job starts. */
  keepMinutes: number;
}

const BASE = `"$HOME"/${JOBS_DIR}`;

/** Removes finished jobs whose `exit` is older than `keepMinutes` (GNU, BSD and busybox find have -mmin). */
function cleanup(keepMinutes: number): string {
  const minutes = Math.max(1, Math.round(keepMinutes));
  return `find ${BASE} -name exit -mmin +${minutes} 2>/dev/null | while IFS= read -r __f; do ` +
    `case $__f in */j-*/exit) rm -rf -- "\${__f%/exit}";; esac; done`;
}

/**
 * The runner, run as `RUNNER -c SCRIPT mcp-job DIR SHELL`. The trap makes a
 * TERM or HUP to a shared group end `wait` early rather than the runner.
 */
const RUNNER = [
  "__d=$1; __s=$2",
  "case ${__s##*/} in bash) __o=--norc;; zsh) __o=-f;; *) __o=;; esac",
  "set -m 2>/dev/null",
  "__t=0; trap '__t=1' HUP TERM INT",
  '"$__s" ${__o:+"$__o"} -c "$(cat "$__d/cmd")" </dev/null >"$__d/out" 2>"$__d/err" &',
  "__p=$!",
  // With job control the command leads its own group; without, it is in ours.
  "case $- in *m*) __g=$__p;; *) __g=; if [ -r /proc/$$/stat ]; then " +
  "read -r __k __k __k __k __g __k < /proc/$$/stat; else __g=$(ps -o pgid= -p $$ | tr -d ' '); fi;; esac",
  'printf \'%s %s %s\\n\' "$__p" "$__g" "$(date +%s)" > "$__d/pid.t" && mv -f "$__d/pid.t" "$__d/pid"',
  'while :; do __t=0; wait "$__p"; __c=$?; [ "$__t" = 1 ] || break; done',
  'printf \'%s %s\\n\' "$__c" "$(date +%s)" > "$__d/exit.t" && mv -f "$__d/exit.t" "$__d/exit"',
].join("\n");

/**
 * The launcher: creates the job's directory and files, starts the runner
 * (which writes `pid` a few milliseconds later) and prints
 * {@linkcode STARTED_TAG}. Its exit code is in {@linkcode LAUNCH_FAILED}
 * when it did not get that far.
 */
export function launchScript(o: LaunchOptions): string {
  if (!JOB_ID.test(o.id)) throw new RangeError(`Not a job id: ${o.id}`);
  const shell = o.shell === "login" ? '"${SHELL:-/bin/sh}"' : "/bin/sh";
  return [
    "umask 077",
    `mkdir -p ${BASE} && chmod 700 "$HOME"/.cache/mcp-remote-ssh ${BASE} || exit 90`,
    `__d=${BASE}/${o.id}`,
    'mkdir -- "$__d" || exit 91',
    `printf '%s' ${shellQuote(o.command)} > "$__d/cmd" && printf '%s\\n' ${
      shellQuote(o.meta)
    } > "$__d/meta" || exit 92`,
    // bash starts the runner with job control on: in a group of its own, INT and QUIT not ignored.
    `__c=${shellQuote(RUNNER)}`,
    "if __r=$(command -v bash 2>/dev/null); then " +
    `"$__r" --norc -c 'set -m; "$0" --norc -c "$1" mcp-job "$2" "$3" </dev/null >/dev/null 2>&1 &' ` +
    `"$__r" "$__c" "$__d" ${shell}; ` +
    `else /bin/sh -c "$__c" mcp-job "$__d" ${shell} </dev/null >/dev/null 2>&1 & fi`,
    // Old jobs go after the start, in the background: the start does not wait for them.
    `( ${cleanup(o.keepMinutes)} ) </dev/null >/dev/null 2>&1 &`,
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
  /** Whether its process group still has members (only asked while it has no status). */
  alive: boolean;
  stdoutBytes: number;
  stderrBytes: number;
  /** The meta line, unparsed. */
  meta: string;
}

/**
 * Lists every job directory (after removing old finished ones): one line
 * each, tab-separated: id, pid line, exit line, signal, alive, out bytes,
 * err bytes, meta.
 */
export function listScript(keepMinutes: number): string {
  return [
    `[ -d ${BASE} ] || exit 0`,
    cleanup(keepMinutes),
    `for __d in ${BASE}/j-*; do`,
    '  [ -f "$__d/meta" ] || continue',
    "  __p=; __e=; __s=; __a=0",
    '  [ -r "$__d/pid" ] && read -r __p < "$__d/pid"',
    '  [ -r "$__d/exit" ] && read -r __e < "$__d/exit"',
    '  [ -r "$__d/signal" ] && read -r __s < "$__d/signal"',
    '  if [ -z "$__e" ] && [ -n "$__p" ]; then set -- $__p; ' +
    "{ kill -s 0 -- -$2 2>/dev/null || kill -s 0 -$2 2>/dev/null; } && __a=1; fi",
    '  __o=$(wc -c < "$__d/out" 2>/dev/null) || __o=0; __r=$(wc -c < "$__d/err" 2>/dev/null) || __r=0',
    '  printf \'%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t\' "${__d##*/}" "$__p" "$__e" "$__s" $__a $__o $__r',
    '  head -n 1 "$__d/meta"',
    "done",
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

/** The signals an agent may send a job. */
export type JobSignal = "INT" | "TERM" | "KILL" | "HUP";

/** Sends `signal` to the job's process group, noting it; exit 4 when it already ended, 6 when the group is gone. */
export function signalScript(id: string, pgid: number, signal: JobSignal): string {
  return [
    `__d=${dirOf(id)}`,
    '[ -f "$__d/exit" ] && exit 4',
    `printf '%s\\n' ${signal} > "$__d/signal"`,
    `kill -s ${signal} -- -${group(pgid)} 2>/dev/null || kill -s ${signal} -${group(pgid)} 2>/dev/null || exit 6`,
  ].join("\n");
}

/**
 * TERM, then (if the group is still there after `graceSeconds`) KILL, then
 * waits until it is gone: `killScript`'s exit codes, which it ends with.
 */
export function cancelScript(id: string, pgid: number, graceSeconds: number, killScript: string): string {
  const g = group(pgid);
  const tries = Math.max(1, Math.round(graceSeconds * 20));
  return [
    `__d=${dirOf(id)}`,
    '[ -f "$__d/exit" ] && exit 0',
    `printf 'TERM\\n' > "$__d/signal"`,
    `kill -s TERM -- -${g} 2>/dev/null || kill -s TERM -${g} 2>/dev/null || exit 0`,
    `__i=0; while { kill -s 0 -- -${g} 2>/dev/null || kill -s 0 -${g} 2>/dev/null; } && [ $__i -lt ${tries} ]; ` +
    "do __i=$((__i+1)); sleep 0.05 2>/dev/null || sleep 1; done",
    '[ -f "$__d/exit" ] && exit 0',
    `printf 'KILL\\n' > "$__d/signal"`,
    killScript,
  ].join("\n");
}

/** Removes the job's directory; exit 4 when it is still running. */
export function removeScript(id: string, pgid: number | null): string {
  const alive = pgid === null
    ? "false"
    : `{ kill -s 0 -- -${group(pgid)} 2>/dev/null || kill -s 0 -${group(pgid)} 2>/dev/null; }`;
  return [
    `__d=${dirOf(id)}`,
    `if [ ! -f "$__d/exit" ] && ${alive}; then exit 4; fi`,
    'rm -rf -- "$__d"',
  ].join("\n");
}

function dirOf(id: string): string {
  if (!JOB_ID.test(id)) throw new RangeError(`Not a job id: ${id}`);
  return `${BASE}/${id}`;
}

function group(pgid: number): number {
  if (!Number.isSafeInteger(pgid) || pgid < 2) throw new RangeError(`Refusing to signal process group ${pgid}`);
  return pgid;
}
