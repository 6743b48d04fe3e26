/**
 * One-shot remote commands with real exit codes, separate byte-capped
 * stdout/stderr, a wall-clock timeout that kills the remote process group,
 * and stdin closed unless given.
 *
 * @module
 */

import type { ClientChannel } from "../ssh2/mod.ts";
import { Buffer } from "node:buffer";
import { outcomeUnknown, SshMcpError } from "../errors.ts";
import { shellQuote } from "../validate.ts";
import type { ExecChannel, SshConnection } from "./connection.ts";
import { signalChannel } from "../ssh2/mod.ts";
import { OutputCapture } from "./output.ts";

/** Options of {@linkcode execCommand}. */
export interface ExecOptions {
  /** Shell command line, run by the user's login shell (POSIX sh assumed for cwd/env). */
  command: string;
  /** Directory to run in. */
  cwd?: string;
  /** Variables exported before the command (names already validated). */
  env?: Record<string, string>;
  /** Bytes fed to stdin; stdin is closed afterwards, or at once when absent. */
  stdin?: string | Uint8Array;
  /** Wall-clock limit; on expiry the remote process group is killed. */
  timeoutMs: number;
  /** Cap per stream, in bytes; head and tail are kept. */
  maxOutputBytes: number;
  /** Cancels the command (MCP cancellation); the remote side is killed. */
  signal?: AbortSignal;
}

/** What a finished (or timed-out) command produced. */
export interface ExecResult {
  stdout: string;
  stderr: string;
  /** Exit status, or null when the process died by a signal or the channel was cut. */
  exitCode: number | null;
  /** Signal name as ssh2 reports it (e.g. `SIGKILL`) when the process died by a signal. */
  signal: string | null;
  timedOut: boolean;
  /** On a timeout: whether the kill of the remote process group is known to have run. */
  killConfirmed?: boolean;
  /** False when the timeout came before the command was sent (it never ran). */
  started?: boolean;
  truncated: boolean;
  stdoutBytes: number;
  stderrBytes: number;
  durationMs: number;
}

// The wrapper's first stdout line carries the shell's PID, which sshd made a
// session and process-group leader (setsid). Knowing it lets a timeout kill
// the whole group, not just the shell, so `sleep 600` does not outlive us.
const PID_MARK = "\x01MCPPID:";

/** Builds the remote command line from structured options; every value is quoted. */
export function buildCommandLine(options: Pick<ExecOptions, "command" | "cwd" | "env">): string {
  const parts = [`printf '${PID_MARK.replace("\x01", "\\001")}%s\\n' "$$"`];
  for (const [name, value] of Object.entries(options.env ?? {})) {
    parts.push(`export ${name}=${shellQuote(value)}`);
  }
  if (options.cwd !== undefined) parts.push(`cd -- ${shellQuote(options.cwd)} || exit 1`);
  // The user's command goes last and alone on its line so a trailing comment
  // or here-document in it cannot swallow our part.
  return `${parts.join("; ")}\n${options.command}`;
}

/**
 * Wraps a command for sudo. The password, if any, is read by `sudo -S` from
 * stdin, never from the command line; the command itself gets /dev/null as
 * stdin so it cannot read the password if sudo did not ask for it.
 * Without a password, `sudo -n` fails at once instead of waiting for one.
 *
 * The login user cannot signal the root processes sudo starts, so the root
 * side bounds itself: coreutils `timeout` (where present) kills the
 * command's whole process group when `timeoutSeconds` have passed.
 */
export function buildSudoCommand(command: string, options: { withPassword: boolean; timeoutSeconds: number }): string {
  const seconds = Math.max(1, Math.ceil(options.timeoutSeconds));
  const script = 'exec </dev/null; if command -v timeout >/dev/null 2>&1; then exec timeout -s KILL "$1" sh -c "$2"; ' +
    'else exec sh -c "$2"; fi';
  const sudo = options.withPassword ? "sudo -S -k -p ''" : "sudo -n";
  return `${sudo} -- sh -c ${shellQuote(script)} sh ${seconds} ${shellQuote(command)}`;
}

/** Runs one command on a connection and waits for it (or its timeout). */
export async function execCommand(connection: SshConnection, options: ExecOptions): Promise<ExecResult> {
  const started = performance.now();
  // One wall-clock deadline for the whole call: waiting for a channel slot
  // and for the server to open the channel count against it too. Not
  // AbortSignal.timeout(): its timer (and everything listening to it, output
  // buffers included) would live on for the full timeout after we return.
  const expiry = new AbortController();
  const timer = setTimeout(() => expiry.abort(new Error("timeout")), options.timeoutMs);
  try {
    return await runUntil(connection, options, expiry.signal, started);
  } finally {
    clearTimeout(timer);
    expiry.abort(); // releases every listener still waiting on the deadline
  }
}

async function runUntil(
  connection: SshConnection,
  options: ExecOptions,
  deadline: AbortSignal,
  started: number,
): Promise<ExecResult> {
  const stop = options.signal ? AbortSignal.any([deadline, options.signal]) : deadline;
  const stdout = new OutputCapture(options.maxOutputBytes);
  const stderr = new OutputCapture(options.maxOutputBytes);
  const result = (status: { code: number | null; signal: string | null }, timedOut: boolean): ExecResult => {
    const out = stdout.finish();
    const err = stderr.finish();
    return {
      stdout: out.text,
      stderr: err.text,
      exitCode: status.code,
      signal: status.signal,
      timedOut,
      truncated: out.truncated || err.truncated,
      stdoutBytes: out.totalBytes,
      stderrBytes: err.totalBytes,
      durationMs: Math.round(performance.now() - started),
    };
  };

  let opened;
  const aliveBefore = connection.alive;
  let sent = false;
  try {
    opened = await connection.exec(buildCommandLine(options), {
      signal: stop,
      onSent: () => (sent = true),
      onRefused: () => (sent = false), // a refused open ran nothing; a retry sends again
      // Best effort: a late channel that cannot be killed is closed by its own end.
      onLate: (late) => void killLate(connection, late).catch(() => {}),
    });
  } catch (error) {
    // Given up while the channel was opening: the late channel gets a KILL
    // and is closed when it arrives, but whether the command ran is unknown.
    if (options.signal?.aborted) throw cancelledError(!sent);
    if (deadline.aborted) return { ...result({ code: null, signal: null }, true), killConfirmed: !sent, started: sent };
    // The channel open and the exec request are one step seen from here: a
    // connection that died during it may have delivered the request, so the
    // command may have run. Only a connection already gone, or a server that
    // refused the channel while staying up, proves that nothing ran.
    if (error instanceof SshMcpError && aliveBefore && !connection.alive) throw outcomeUnknown(error);
    throw error;
  }
  const { channel, status, exited, closed } = opened;
  const pid = new PidPrefix();
  channel.on("data", (chunk: Buffer) => {
    const rest = pid.take(chunk);
    if (rest.length > 0) stdout.push(rest);
  });
  channel.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
  writeStdin(channel, options.stdin);

  // Done when the status and both streams' ends are in: the close handshake
  // that follows costs a round trip the caller need not wait for.
  const finished = Promise.all([
    exited,
    new Promise((r) => channel.once("end", r)),
    new Promise((r) => channel.stderr.once("end", r)),
  ]);
  let onStop!: () => void;
  const stopped = new Promise<"stopped">((resolve) => {
    onStop = () => resolve("stopped");
    if (stop.aborted) onStop();
    stop.addEventListener("abort", onStop, { once: true });
  });
  const outcome = await Promise.race([Promise.race([finished, closed]).then(() => "done" as const), stopped]);
  stop.removeEventListener("abort", onStop);
  if (outcome === "stopped") {
    const killed = await killRemote(connection, channel, pid.value);
    // Output that arrived before the kill is kept; wait briefly for the close.
    await Promise.race([closed, delay(2000)]);
    if (options.signal?.aborted) throw cancelledError(killed);
    if (!killed && !connection.alive && status.code === null && status.signal === null) {
      // The command may still be running, or may have finished: nobody can tell now.
      throw outcomeUnknown(lostError(connection, "after the command timed out, before its kill was confirmed"));
    }
    // A status that did arrive is kept: with `cmd &` holding stdout open the
    // shell has exited, but the call still ran into its timeout.
    return { ...result(status, true), killConfirmed: killed };
  }
  if (status.code === null && status.signal === null && !connection.alive) {
    throw outcomeUnknown(lostError(connection, "while the command ran"));
  }
  return result(status, false);
}

function lostError(connection: SshConnection, when: string): SshMcpError {
  const why = connection.closeReason?.message ?? "connection closed";
  return new SshMcpError("CONNECTION_LOST", `Connection was lost ${when} (${why}); its outcome is unknown`, {
    hint: "Call ssh_connect again for a new session",
    cause: connection.closeReason ?? undefined,
  });
}

function cancelledError(killed = true): SshMcpError {
  return new SshMcpError(
    "CANCELLED",
    killed
      ? "Command was cancelled; the remote process was killed (or never started)"
      : "Command was cancelled while its channel was opening; it may have started, and its kill was not confirmed",
  );
}

function writeStdin(channel: ClientChannel, stdin: string | Uint8Array | undefined): void {
  // Closing stdin makes `cat` and `read` return at once instead of hanging.
  if (stdin !== undefined && stdin.length > 0) {
    channel.end(typeof stdin === "string" ? stdin : Buffer.from(stdin));
  } else {
    // eof() sends EOF without finishing the Writable side; ssh2's destroy()
    // calls end() again later, which on a finished stream builds an error
    // (stack trace included) on every command.
    channel.eof();
  }
}

/**
 * Ends a command whose channel opened after its call gave up: the wrapper's
 * PID line (its first output) names the process group to kill, as for a
 * timeout. Without it, the KILL to the session still ends the shell. Both
 * streams are read to their end so the close, and the slot, come back.
 */
async function killLate(connection: SshConnection, late: ExecChannel): Promise<void> {
  const pid = new PidPrefix();
  let onPid!: () => void;
  const seen = new Promise<void>((resolve) => (onPid = resolve));
  late.channel.on("data", (chunk: Buffer) => {
    pid.take(chunk);
    if (pid.value !== null) onPid();
  });
  late.channel.stderr.resume();
  late.channel.eof();
  await Promise.race([seen, late.exited, delay(KILL_DEADLINE_MS)]);
  if (late.status.code !== null || late.status.signal !== null) {
    late.channel.close(); // it ran to its end already (e.g. `true`): nothing left to kill
    return;
  }
  await killRemote(connection, late.channel, pid.value);
}

/** Kills the command's process group; true once the kill is known to have run. */
async function killRemote(connection: SshConnection, channel: ClientChannel, pid: number | null): Promise<boolean> {
  signalChannel(channel, "KILL"); // OpenSSH >= 7.9 kills the session's shell on request
  channel.close();
  if (pid === null || !connection.alive) return false;
  // The shell was a session and group leader (sshd calls setsid): the group
  // holds everything it started that did not detach on purpose.
  try {
    const killer = await connection.exec(`kill -KILL -- -${pid} 2>/dev/null; kill -KILL ${pid} 2>/dev/null; true`, {
      signal: AbortSignal.timeout(KILL_DEADLINE_MS),
      urgent: true,
    });
    killer.channel.resume();
    killer.channel.stderr.resume();
    killer.channel.eof();
    const done = await Promise.race([killer.exited.then(() => true), delay(KILL_DEADLINE_MS).then(() => false)]);
    return done && killer.status.code === 0;
  } catch {
    // Bounded: the connection died or is too busy to kill within the
    // deadline; its processes lose their channel either way, but whether
    // they stopped is not known.
    return false;
  }
}

const KILL_DEADLINE_MS = 5000;

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => {
    // An unreferenced timer: a pending grace period never keeps the process alive.
    Deno.unrefTimer(setTimeout(resolve, ms));
  });
}

/** Strips the wrapper's PID line from the start of stdout and remembers the PID. */
export class PidPrefix {
  #pending: Uint8Array | null = new Uint8Array(0);
  /** The PID once seen, else null. */
  value: number | null = null;

  /** Returns the bytes of `chunk` that belong to the user's stdout. */
  take(chunk: Uint8Array): Uint8Array {
    if (this.#pending === null) return chunk;
    const joined = new Uint8Array(this.#pending.length + chunk.length);
    joined.set(this.#pending);
    joined.set(chunk, this.#pending.length);
    const nl = joined.indexOf(10);
    if (nl < 0) {
      // A PID line is short; anything longer is not ours.
      if (joined.length > 64 || !startsLikeMark(joined)) {
        this.#pending = null;
        return joined;
      }
      this.#pending = joined;
      return new Uint8Array(0);
    }
    this.#pending = null;
    const line = new TextDecoder().decode(joined.subarray(0, nl));
    const digits = line.startsWith(PID_MARK) ? line.slice(PID_MARK.length) : "";
    // PID 0 or 1 would make `kill -- -PID` hit far more than our command.
    if (!/^\d{1,10}$/.test(digits) || Number(digits) < 2) return joined;
    this.value = Number(digits);
    return joined.subarray(nl + 1);
  }
}

function startsLikeMark(bytes: Uint8Array): boolean {
  const mark = new TextEncoder().encode(PID_MARK);
  const n = Math.min(bytes.length, mark.length);
  for (let i = 0; i < n; i++) if (bytes[i] !== mark[i]) return false;
  return true;
}
