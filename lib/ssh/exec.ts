/**
 * One-shot remote commands with real exit codes, separate byte-capped
 * stdout/stderr, a wall-clock timeout that kills the remote process group,
 * and stdin closed unless given.
 *
 * A command that exits while a child it started still holds stdout or
 * stderr (`nohup server &` without redirection) does not wait for that
 * child: shortly after the exit status the call returns, and the still-open
 * channel is handed over as a {@linkcode BackgroundChannel}. The child is
 * never killed because of that; whoever takes the channel decides.
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
import {
  type Delivery,
  type GroupState,
  killScript,
  MarkerScan,
  newNonce,
  spareLine,
  wrapCommand,
  type Wrapped,
} from "./wrapper.ts";

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
  /** Wall-clock limit; on expiry the remote process group is killed (not once handed over as `background`). */
  timeoutMs: number;
  /** Cap per stream, in bytes; head and tail are kept. */
  maxOutputBytes: number;
  /** Cancels the command (MCP cancellation); the remote side is killed (not once handed over as `background`). */
  signal?: AbortSignal;
  /**
   * Every byte of the command's output as it arrives (after the wrapper's markers are taken out), also
   * after the call returned with `background`, until that channel closes.
   */
  onOutput?: (stream: "stdout" | "stderr", chunk: Uint8Array) => void;
  /** Called once with a way to look at the output so far, for progress reports while the command runs. */
  onStart?: (peek: () => ExecProgress) => void;
  /**
   * Once the exit status (or exit signal) has arrived, how long to wait for
   * stdout and stderr to end before the channel is handed over as
   * {@linkcode ExecResult.background}. Output still streaming in extends it
   * (at most threefold): an exit status can overtake a window of output.
   * @default {1000}
   */
  backgroundGraceMs?: number;
  /**
   * Called once the channel is open with the control a `background` result
   * carries (signal, kill, close), for a caller that keeps the command running
   * as a job on this connection. The control stays valid after the call.
   */
  onChannel?: (control: BackgroundChannel) => void;
  /**
   * Whether a channel a background child holds open is handed over as
   * {@linkcode ExecResult.background} (the caller then owns it). Otherwise it
   * is closed once the grace is over and the child left alone: scripts of
   * ours must not hold a slot for as long as a login file's child lives.
   */
  handOver?: boolean;
  /**
   * Runs the command in a shell the connection started ahead for it, when it has one
   * (./connection.ts `startSpare`), and has one started for the next command once this one is
   * done. Only for a server known to run our script: a shell started ahead runs the login files
   * (and a forced command would run) before any command is asked for.
   * @default {false}
   */
  spare?: boolean;
}

/**
 * A command's channel that stayed open after its exit status arrived: a
 * child it started in the background still holds stdout or stderr. It is
 * read on (every chunk goes to {@linkcode ExecOptions.onOutput}) until it
 * closes; no timeout or cancel of the call reaches it any more.
 */
export interface BackgroundChannel {
  /** Resolves once the channel is closed (both streams ended, closed by us, or the connection ended). */
  readonly closed: Promise<void>;
  /** True until `closed` resolved. */
  readonly open: boolean;
  /**
   * Sends a signal to the command's whole process group (from the wrapper's
   * start marker), through a small /bin/sh script as a timeout's kill does.
   * @returns true when kill(1) succeeded; false when the group is gone, the
   * connection is lost, or the command had no process group of its own (its
   * shell, the only PID known, has exited: nothing is sent).
   */
  signal(name: BackgroundSignal): Promise<boolean>;
  /** KILLs the group and waits until it is gone, then closes the channel (as a timeout does). */
  kill(): Promise<KillOutcome>;
  /** Stops reading: closes the channel; the remote processes are left alone. */
  close(): void;
}

/** The signals {@linkcode BackgroundChannel.signal} sends. */
export type BackgroundSignal = "INT" | "TERM" | "KILL" | "HUP";

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
  /**
   * Set when the exit status arrived but stdout or stderr stayed open past
   * the grace (a background child holds it): `stdout` and `stderr` are what
   * came so far, and later output goes to `onOutput` only.
   */
  background?: BackgroundChannel;
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
  // A rerun (see `rerun`) reports its own progress through the one onStart the caller got.
  let current: (() => ExecProgress) | undefined;
  const onStart = options.onStart;
  const once = onStart === undefined ? undefined : (peek: () => ExecProgress) => {
    if (current === undefined) onStart(() => (current ?? peek)());
    current = peek;
  };
  try {
    return await runUntil(connection, { ...options, onStart: once }, expiry.signal, started);
  } finally {
    clearTimeout(timer);
    expiry.abort(); // releases every listener still waiting on the deadline
    if (options.spare === true) connection.startSpare(spareLine(options.delivery ?? "hop"));
  }
}

/**
 * The biggest script sent to a shell started ahead: it reads its line one byte per read(2) (it
 * must not take the command's stdin), so a bigger one is quicker through an exec request.
 */
const SPARE_MAX_BYTES = 16 * 1024;

async function runUntil(
  connection: SshConnection,
  options: ExecOptions,
  deadline: AbortSignal,
  started: number,
): Promise<ExecResult> {
  const stop = options.signal ? AbortSignal.any([deadline, options.signal]) : deadline;
  const nonce = newNonce();
  const wrapOptions = {
    command: options.command,
    cwd: options.cwd,
    env: options.env,
    nonce,
    delivery: options.delivery ?? "hop",
    ownGroup: options.ownGroup,
  };
  // A shell started ahead, when there is one: it runs the same script, read from its stdin. Not
  // with stdin of the command's own behind the script: a login shell whose `read` reads a pipe in
  // blocks (ksh93 may) would take some of it. (A sudo password is sent only once the script ran.)
  const ownStdin = options.stdin !== undefined && options.stdin.length > 0 && options.stdinAfterStart !== true;
  const forSpare = options.spare === true && options.onChannel === undefined && !ownStdin
    ? wrapCommand({ ...wrapOptions, spare: true })
    : null;
  let viaSpare = false;
  let spare: ExecChannel | null = null;
  if (forSpare !== null && new TextEncoder().encode(forSpare.stdinPrefix).length <= SPARE_MAX_BYTES) {
    try {
      spare = await connection.takeSpare(forSpare.commandLine, stop);
    } catch (error) {
      // Nothing was written to it: the command never ran.
      if (options.signal?.aborted) throw cancelledError(true);
      if (deadline.aborted) {
        return {
          ...noResult(Math.round(performance.now() - started)),
          timedOut: true,
          killConfirmed: true,
          started: false,
        };
      }
      throw error;
    }
    viaSpare = spare !== null;
  }
  const wrapped: Wrapped = spare !== null && forSpare !== null ? forSpare : wrapCommand(wrapOptions);
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
  // What the command wrote, to the capture and to whoever keeps all of it;
  // once the channel is handed over, to the latter only.
  let handedOver = false;
  let lastOutput = 0;
  const toStdout = (chunk: Uint8Array) => {
    if (chunk.length === 0) return;
    lastOutput = performance.now();
    if (!handedOver) stdout.push(chunk);
    options.onOutput?.("stdout", chunk);
  };
  const toStderr = (chunk: Uint8Array) => {
    if (chunk.length === 0) return;
    lastOutput = performance.now();
    if (!handedOver) stderr.push(chunk);
    options.onOutput?.("stderr", chunk);
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

  let opened: ExecChannel;
  const aliveBefore = connection.alive;
  let sent = viaSpare;
  try {
    opened = spare ?? await connection.exec(wrapped.commandLine, {
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
  const control = options.onChannel === undefined ? null : new Background(connection, opened, outMark, delivery);
  if (control !== null) options.onChannel!(control);
  const grace = options.backgroundGraceMs ?? BACKGROUND_GRACE_MS;
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
  // A shell started ahead that ended before it read the script (killed while idle, the moment
  // it was taken) printed neither marker. Missing markers alone prove nothing: a login file may
  // send all output to /dev/null, or print more than MarkerScan looks through, while the command
  // runs. Until the status is in, what MarkerScan holds is kept back (a rerun drops it).
  const spareUnread = () =>
    viaSpare && outMark.line === null && errMark.line === null && !outMark.overflowed && !errMark.overflowed;
  // Only a shell that ended by a signal, or with no exit status at all, and printed no marker within
  // the limit is taken to have run nothing: a command that ran to its end has an exit status.
  const spareDied = () => spareUnread() && (status.signal !== null || status.code === null);
  channel.once("end", () => {
    if (!spareUnread()) toStdout(outMark.end());
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
  // The status is in but a stream is still open: a background child holds
  // it. Output still pouring in is more likely the tail of a big output
  // (the status can overtake a window's worth), so that waits a little more.
  let decided = false;
  let graceTimer: ReturnType<typeof setTimeout> | undefined;
  const lingering = new Promise<"background">((resolve) => {
    void exited.then(() => {
      if (decided || (status.code === null && status.signal === null)) return; // closed without a status
      const since = performance.now();
      const check = () => {
        const now = performance.now();
        if (now - lastOutput < QUIET_MS && now - since < grace * STREAMING_GRACE) {
          graceTimer = setTimeout(check, QUIET_MS);
        } else resolve("background");
      };
      graceTimer = setTimeout(check, grace);
    });
  });
  const outcome = await Promise.race([
    Promise.race([finished, closed]).then(() => "done" as const),
    stopped,
    lingering,
  ]);
  decided = true;
  clearTimeout(graceTimer);
  stop.removeEventListener("abort", onStop);
  if (outcome === "background" && spareUnread()) {
    // A spare that read nothing, its streams held by a login file's child: no job of the caller's.
    channel.close();
    if (spareDied() && connection.alive) return await rerun(connection, options, deadline, started);
    return result(status, false);
  }
  if (outcome === "background") {
    const kept = result(status, false);
    handedOver = true;
    const background = control ?? new Background(connection, opened, outMark, delivery);
    if (outMark.report()?.kind === "cwd") {
      // Nothing of the caller's ran; whatever holds the streams is a login file's.
      background.close();
      throw cwdError(options.cwd, kept.stderr);
    }
    if (options.handOver !== true) {
      background.close();
      return kept;
    }
    return { ...kept, background };
  }
  if (outcome === "stopped") {
    const kill = await killRemote(connection, channel, outMark, delivery);
    // Output that arrived before the kill is kept; wait briefly for the close.
    await settleWithin(closed, CLOSE_WAIT_MS);
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
  if (spareDied() && connection.alive) return await rerun(connection, options, deadline, started);
  const done = result(status, false);
  if (outMark.report()?.kind === "cwd") throw cwdError(options.cwd, done.stderr);
  return done;
}

/** How long after the exit status the streams may take to end before the channel is handed over. */
const BACKGROUND_GRACE_MS = 1000;
/** Output within this long counts as still streaming in (see the grace above). */
const QUIET_MS = 250;
/**
 * How many graces output still streaming in may extend the wait: the tail of
 * a big output on a slow link or a loaded host is not a background child.
 */
const STREAMING_GRACE = 10;

/**
 * Runs the command again in a fresh channel, after a spare shell that provably ran nothing of it.
 * Progress (onStart) then follows the new attempt.
 */
function rerun(
  connection: SshConnection,
  options: ExecOptions,
  deadline: AbortSignal,
  started: number,
): Promise<ExecResult> {
  return runUntil(connection, { ...options, spare: false }, deadline, started);
}

/** A result with nothing run to its end: a call that never sent its command, or a job just started. */
export function noResult(durationMs: number): ExecResult {
  return {
    stdout: "",
    stderr: "",
    exitCode: null,
    signal: null,
    timedOut: false,
    truncated: false,
    stdoutBytes: 0,
    stderrBytes: 0,
    durationMs,
    loginOutput: "",
    markerMissing: false,
    group: null,
  };
}

function cwdError(cwd: string | undefined, stderr: string): SshMcpError {
  return new SshMcpError("CWD_FAILED", `Cannot run in ${cwd}: ${stderr.trim() || "cd failed"}`, {
    hint: "The command did not run. Check the directory exists and is readable (ssh_stat_remote)",
  });
}

/**
 * The channel of a command that exited while a background child kept a
 * stream open. Its data listeners stay on (so the output goes on to
 * `onOutput`, and ssh2's close, which frees the slot, can come).
 */
class Background implements BackgroundChannel {
  readonly closed: Promise<void>;
  #open = true;
  #connection: SshConnection;
  #channel: ClientChannel;
  #mark: MarkerScan;
  #delivery: Delivery;
  #status: ExecChannel["status"];

  constructor(connection: SshConnection, opened: ExecChannel, mark: MarkerScan, delivery: Delivery) {
    this.#connection = connection;
    this.#status = opened.status;
    this.#channel = opened.channel;
    this.#mark = mark;
    this.#delivery = delivery;
    // ssh2 closes every channel when the connection ends, so this covers that too.
    this.closed = opened.closed.then(() => {
      this.#open = false;
    });
  }

  get open(): boolean {
    return this.#open;
  }

  async signal(name: BackgroundSignal): Promise<boolean> {
    if (!BACKGROUND_SIGNALS.has(name)) throw new RangeError(`Unsupported signal ${JSON.stringify(name)}`);
    const report = this.#mark.report();
    // Without a group only the shell's PID is known, and that shell has exited
    // (its status is in): the PID may be someone else's by now.
    if (report?.kind !== "started" || report.group === "n" || !this.#connection.alive) return false;
    return await runScript(this.#connection, signalScript(report.pid, name), this.#delivery) === 0;
  }

  async kill(): Promise<KillOutcome> {
    const exited = this.#status.code !== null || this.#status.signal !== null;
    const outcome = await killRemote(this.#connection, this.#channel, this.#mark, this.#delivery, exited);
    await settleWithin(this.closed, CLOSE_WAIT_MS);
    return outcome;
  }

  close(): void {
    this.#channel.close();
  }
}

const BACKGROUND_SIGNALS = new Set<string>(["INT", "TERM", "KILL", "HUP"]);

/**
 * A /bin/sh script that sends `name` to process group `pgid`; exit 0 when
 * kill(1) succeeded. Both forms, as in killScript (./wrapper.ts): dash needs
 * `--` before a negative PID and busybox refuses it. Where there is /proc, a
 * group left with zombies only (PID 1 may reap late) counts as gone, as in
 * killScript: kill(1) would succeed on them.
 */
function signalScript(pgid: number, name: BackgroundSignal): string {
  if (!Number.isSafeInteger(pgid) || pgid < 2) throw new RangeError(`Refusing to signal process group ${pgid}`);
  return [
    "if [ -r /proc/self/stat ]; then __a=; for __f in /proc/[0-9]*/stat; do " +
    `read -r __l 2>/dev/null < "$__f" || continue; __l=\${__l##*) }; set -- $__l; ` +
    `[ "$1" != Z ] && [ "$3" = ${pgid} ] && { __a=1; break; }; done; [ -n "$__a" ] || exit 1; fi`,
    `kill -s ${name} -- -${pgid} 2>/dev/null || kill -s ${name} -${pgid} 2>/dev/null`,
  ].join("; ");
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
export interface KillOutcome {
  confirmed: boolean;
  note?: string;
}

/**
 * Kills the command's process group and waits until the server says it is
 * gone; only then is the kill reported as done. `shellExited`: its exit
 * status is in, so without a process group there is nothing left to name.
 */
async function killRemote(
  connection: SshConnection,
  channel: ClientChannel,
  mark: MarkerScan,
  delivery: Delivery,
  shellExited = false,
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
  if (group === "n" && shellExited) {
    return {
      confirmed: false,
      note: "the server gave it no process group of its own and has no setsid, and its shell has exited: " +
        "programs it started may still run",
    };
  }
  const code = await runScript(connection, killScript(report.pid, group, KILL_WAIT_SECONDS), delivery);
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

/** Runs a POSIX script of ours with /bin/sh (its syntax must not depend on the login shell); its exit code, or null. */
function runScript(connection: SshConnection, script: string, delivery: Delivery): Promise<number | null> {
  return runQuiet(connection, `/bin/sh -c ${shellQuote(script)}`, delivery);
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
/** How long a kill waits for the channel's close (output that arrived before it is kept). */
const CLOSE_WAIT_MS = 2000;

/** Waits for `promise`, or `ms` at most; the timer goes with it, so nothing lingers. */
async function settleWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([promise, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

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
