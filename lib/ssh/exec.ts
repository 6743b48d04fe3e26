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
import type { ExecChannel, SshConnection } from "./connection.ts";
import { signalChannel } from "../ssh2/mod.ts";
import { lastLine, OutputCapture } from "./output.ts";
import { shellQuote } from "../validate.ts";
import { type Delivery, type GroupState, killScript, MarkerScan, newNonce, wrapCommand } from "./wrapper.ts";

/** Options of {@linkcode execCommand}. */
export interface ExecOptions {
  /** Shell command line: run by the login shell when it is POSIX-family, else by /bin/sh (see ./wrapper.ts). */
  command: string;
  /**
   * How the wrapper reaches a POSIX shell: `direct` only when the login shell is known to be one.
   * @default {"hop"}
   */
  delivery?: Delivery;
  /** The server is known to give each command's shell its own process group (see ./wrapper.ts). */
  ownGroup?: boolean;
  /** Directory to run in. */
  cwd?: string;
  /** Variables exported before the command (names already validated). */
  env?: Record<string, string>;
  /** Bytes fed to stdin; stdin is closed afterwards, or at once when absent. */
  stdin?: string | Uint8Array;
  /**
   * Holds `stdin` back until the wrapper's start marker arrived (a sudo password): on an account
   * whose server runs something else (a forced command), it never leaves this process.
   */
  stdinAfterStart?: boolean;
  /** Wall-clock limit; on expiry the remote process group is killed. */
  timeoutMs: number;
  /** Cap per stream, in bytes; head and tail are kept. */
  maxOutputBytes: number;
  /** Cancels the command (MCP cancellation); the remote side is killed. */
  signal?: AbortSignal;
  /** Every byte of the command's output as it arrives (after the wrapper's markers are taken out). */
  onOutput?: (stream: "stdout" | "stderr", chunk: Uint8Array) => void;
  /** Called once with a way to look at the output so far, for progress reports while the command runs. */
  onStart?: (peek: () => ExecProgress) => void;
}

/** Where a running command's output stands. */
export interface ExecProgress {
  stdoutBytes: number;
  stderrBytes: number;
  /** The last non-empty line of output (stdout, else stderr), at most 100 characters. */
  lastLine: string;
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
  /** On a timeout: whether the remote process group is known to be gone. */
  killConfirmed?: boolean;
  /** On a timeout without that confirmation: why not. */
  killNote?: string;
  /** What login files printed before the command started (stdout and stderr), or "". */
  loginOutput: string;
  /** True when the reply lacked this call's start marker: the server may have run something else. */
  markerMissing: boolean;
  /** The process-group state the wrapper reported (see ./wrapper.ts), or null without a marker. */
  group: GroupState | null;
  /** False when the timeout came before the command was sent (it never ran). */
  started?: boolean;
  truncated: boolean;
  stdoutBytes: number;
  stderrBytes: number;
  durationMs: number;
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
  const nonce = newNonce();
  const wrapped = wrapCommand({
    command: options.command,
    cwd: options.cwd,
    env: options.env,
    nonce,
    delivery: options.delivery ?? "hop",
    ownGroup: options.ownGroup,
  });
  const delivery = wrapped.delivery;
  const stdout = new OutputCapture(options.maxOutputBytes);
  const stderr = new OutputCapture(options.maxOutputBytes);
  const outMark = new MarkerScan(nonce);
  const errMark = new MarkerScan(nonce);
  options.onStart?.(() => ({
    stdoutBytes: stdout.totalBytes,
    stderrBytes: stderr.totalBytes,
    lastLine: glimpse(stdout) || glimpse(stderr),
  }));
  // What the command wrote, to the capture and to whoever keeps all of it.
  const toStdout = (chunk: Uint8Array) => {
    stdout.push(chunk);
    if (chunk.length > 0) options.onOutput?.("stdout", chunk);
  };
  const toStderr = (chunk: Uint8Array) => {
    stderr.push(chunk);
    if (chunk.length > 0) options.onOutput?.("stderr", chunk);
  };
  const flush = () => {
    toStdout(outMark.end());
    toStderr(errMark.end());
  };
  const result = (status: { code: number | null; signal: string | null }, timedOut: boolean): ExecResult => {
    flush();
    const report = outMark.report();
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
      loginOutput: outMark.missing ? "" : decodeNoise(outMark.noise, errMark.noise),
      // A call that timed out with no output may simply not have got that far (its kill note
      // says so); output without the marker, which comes first, is something else's.
      markerMissing: outMark.missing && (!timedOut || outMark.received),
      group: report?.kind === "started" ? report.group : null,
    };
  };

  let opened;
  const aliveBefore = connection.alive;
  let sent = false;
  try {
    opened = await connection.exec(wrapped.commandLine, {
      signal: stop,
      onSent: () => (sent = true),
      onRefused: () => (sent = false), // a refused open ran nothing; a retry sends again
      // Best effort: a late channel that cannot be killed is closed by its own end.
      onLate: (late) => void killLate(connection, late, nonce, wrapped.stdinPrefix, delivery).catch(() => {}),
    });
  } catch (error) {
    // Given up while the channel was opening: the late channel gets a KILL
    // and is closed when it arrives, but whether the command ran is unknown.
    if (options.signal?.aborted) throw cancelledError(!sent);
    if (deadline.aborted) {
      return { ...result({ code: null, signal: null }, true), killConfirmed: !sent, started: sent };
    }
    // The channel open and the exec request are one step seen from here: a
    // connection that died during it may have delivered the request, so the
    // command may have run. Only a connection already gone, or a server that
    // refused the channel while staying up, proves that nothing ran.
    if (error instanceof SshMcpError && aliveBefore && !connection.alive) throw outcomeUnknown(error);
    throw error;
  }
  const { channel, status, exited, closed } = opened;
  let held = options.stdinAfterStart === true;
  const release = () => {
    if (!held || !outMark.settled) return;
    held = false;
    writeStdin(channel, "", outMark.report()?.kind === "started" ? options.stdin : undefined);
  };
  channel.on("data", (chunk: Buffer) => {
    toStdout(outMark.take(chunk));
    release();
  });
  channel.once("end", () => {
    toStdout(outMark.end());
    release();
  });
  channel.stderr.on("data", (chunk: Buffer) => toStderr(errMark.take(chunk)));
  if (held) channel.write(wrapped.stdinPrefix);
  else writeStdin(channel, wrapped.stdinPrefix, options.stdin);

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
    const kill = await killRemote(connection, channel, outMark, delivery);
    // Output that arrived before the kill is kept; wait briefly for the close.
    await Promise.race([closed, delay(2000)]);
    if (options.signal?.aborted) throw cancelledError(kill.confirmed, kill.note);
    if (!kill.confirmed && !connection.alive && status.code === null && status.signal === null) {
      // The command may still be running, or may have finished: nobody can tell now.
      throw outcomeUnknown(lostError(connection, "after the command timed out, before its kill was confirmed"));
    }
    // A status that did arrive is kept: with `cmd &` holding stdout open the
    // shell has exited, but the call still ran into its timeout.
    return { ...result(status, true), killConfirmed: kill.confirmed, killNote: kill.note };
  }
  if (status.code === null && status.signal === null && !connection.alive) {
    throw outcomeUnknown(lostError(connection, "while the command ran"));
  }
  const done = result(status, false);
  if (outMark.report()?.kind === "cwd") {
    throw new SshMcpError("CWD_FAILED", `Cannot run in ${options.cwd}: ${done.stderr.trim() || "cd failed"}`, {
      hint: "The command did not run. Check the directory exists and is readable (ssh_stat_remote)",
    });
  }
  return done;
}

/** Login-file output as text (capped), control characters other than tab and newline shown as escapes. */
export function decodeNoise(out: Uint8Array, err: Uint8Array): string {
  const text = (new TextDecoder().decode(out) + new TextDecoder().decode(err))
    // deno-lint-ignore no-control-regex
    .replace(/[\x00-\x08\x0b-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
  return text.length > NOISE_LIMIT ? text.slice(0, NOISE_LIMIT) + "…" : text;
}

const NOISE_LIMIT = 2000;

function lostError(connection: SshConnection, when: string): SshMcpError {
  const why = connection.closeReason?.message ?? "connection closed";
  return new SshMcpError("CONNECTION_LOST", `Connection was lost ${when} (${why}); its outcome is unknown`, {
    hint: "Call ssh_connect again for a new session",
    cause: connection.closeReason ?? undefined,
  });
}

function cancelledError(killed = true, note?: string): SshMcpError {
  return new SshMcpError(
    "CANCELLED",
    killed
      ? "Command was cancelled; the remote process was killed (or never started)"
      : `Command was cancelled; its kill was not confirmed (${note ?? "it may have started"})`,
  );
}

function writeStdin(channel: ClientChannel, prefix: string, stdin: string | Uint8Array | undefined): void {
  // Closing stdin makes `cat` and `read` return at once instead of hanging.
  if (stdin !== undefined && stdin.length > 0) {
    if (prefix.length > 0) channel.write(prefix);
    channel.end(typeof stdin === "string" ? stdin : Buffer.from(stdin));
  } else if (prefix.length === 0) {
    // eof() sends EOF without finishing the Writable side; ssh2's destroy()
    // calls end() again later, which on a finished stream builds an error
    // (stack trace included) on every command.
    channel.eof();
  } else {
    // eof() does not queue behind writes: sent at once, it would overtake a
    // prefix still waiting for window (Dropbear opens with 24 KiB), and the
    // server would cut the script short.
    channel.write(prefix, () => channel.eof());
  }
}

/**
 * Ends a command whose channel opened after its call gave up: the wrapper's
 * marker line (its first output) names the process group to kill, as for a
 * timeout. Without it, the KILL to the session still ends the shell. Both
 * streams are read to their end so the close, and the slot, come back.
 */
async function killLate(
  connection: SshConnection,
  late: ExecChannel,
  nonce: string,
  stdinPrefix: string,
  delivery: Delivery,
): Promise<void> {
  const mark = new MarkerScan(nonce);
  let onMark!: () => void;
  const seen = new Promise<void>((resolve) => (onMark = resolve));
  late.channel.on("data", (chunk: Buffer) => {
    mark.take(chunk);
    if (mark.settled) onMark();
  });
  late.channel.stderr.resume();
  writeStdin(late.channel, stdinPrefix, undefined);
  await Promise.race([seen, late.exited, delay(KILL_DEADLINE_MS)]);
  if (late.status.code !== null || late.status.signal !== null) {
    late.channel.close(); // it ran to its end already (e.g. `true`): nothing left to kill
    return;
  }
  await killRemote(connection, late.channel, mark, delivery);
}

/** Whether a kill is known to have ended the command, and if not, why not. */
interface KillOutcome {
  confirmed: boolean;
  note?: string;
}

/**
 * Kills the command's process group and waits until the server says it is
 * gone; only then is the kill reported as done.
 */
async function killRemote(
  connection: SshConnection,
  channel: ClientChannel,
  mark: MarkerScan,
  delivery: Delivery,
): Promise<KillOutcome> {
  signalChannel(channel, "KILL"); // OpenSSH >= 7.9 kills the session's shell on request
  channel.close();
  const report = mark.report();
  if (report?.kind !== "started") {
    return { confirmed: false, note: "its start marker never arrived, so its process is unknown" };
  }
  if (!connection.alive) return { confirmed: false, note: "the connection was lost" };
  // `s`: setsid made the command a session (and group) leader under the reported PID.
  const group = report.group === "n" ? "n" : "g";
  // Always /bin/sh: the kill script's own syntax must not depend on the login shell.
  const script = `/bin/sh -c ${shellQuote(killScript(report.pid, group, KILL_WAIT_SECONDS))}`;
  const code = await runQuiet(connection, script, delivery);
  if (code === 0 && group === "n") {
    return {
      confirmed: false,
      note: "its shell was killed, but the server gave it no process group of its own and has no setsid: " +
        "programs it started may still run",
    };
  }
  if (code === 0) return { confirmed: true };
  if (code === 3) {
    return {
      confirmed: false,
      note: "processes of another user (sudo) remain in its group; sudo's own time limit ends them",
    };
  }
  if (code === 1) return { confirmed: false, note: `its processes were still there ${KILL_WAIT_SECONDS} s after KILL` };
  return { confirmed: false, note: "the kill could not be run or checked in time" };
}

/** Runs a script of ours (no output wanted) through the wrapper; its exit code, or null. */
async function runQuiet(connection: SshConnection, script: string, delivery: Delivery): Promise<number | null> {
  const nonce = newNonce();
  const wrapped = wrapCommand({ command: script, nonce, delivery });
  try {
    const run = await connection.exec(wrapped.commandLine, {
      signal: AbortSignal.timeout(KILL_DEADLINE_MS),
      urgent: true,
    });
    const mark = new MarkerScan(nonce);
    run.channel.on("data", (chunk: Buffer) => mark.take(chunk));
    run.channel.stderr.resume();
    writeStdin(run.channel, wrapped.stdinPrefix, undefined);
    const done = await Promise.race([run.exited.then(() => true), delay(KILL_DEADLINE_MS).then(() => false)]);
    if (!done) run.channel.close();
    // Without our marker the exit code is not our script's.
    return done && mark.report()?.kind === "started" ? run.status.code : null;
  } catch {
    // Bounded: the connection died or is too busy within the deadline.
    return null;
  }
}

const KILL_WAIT_SECONDS = 3;
const KILL_DEADLINE_MS = 6000;

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => {
    // An unreferenced timer: a pending grace period never keeps the process alive.
    Deno.unrefTimer(setTimeout(resolve, ms));
  });
}

// The last line of what `capture` saw (a character cut at the start of the 512 bytes does not matter).
function glimpse(capture: OutputCapture): string {
  return lastLine(new TextDecoder().decode(capture.recent(512)));
}
