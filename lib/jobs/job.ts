/**
 * Jobs: commands that run past the tool call that started them. Two kinds
 * behind one interface:
 *
 * - {@linkcode DetachedJob}: runs on the remote host on its own (see
 *   ./scripts.ts), its output and status in files there. It survives the
 *   connection and this server; a later session finds it again.
 * - {@linkcode BoundJob}: lives on an SSH channel of this connection, its
 *   output kept here (under the output budget). For servers without a POSIX
 *   shell, `detached_jobs: false`, and commands whose background child kept
 *   ssh_execute's channel open. It ends with the connection.
 *
 * @module
 */

import type { SFTPWrapper } from "../ssh2/mod.ts";
import { SshMcpError } from "../errors.ts";
import type { KeptOutput, OutputStore, StreamName, StreamRead } from "../output_store.ts";
import type { SshConnection } from "../ssh/connection.ts";
import { execCommand, type ExecResult } from "../ssh/exec.ts";
import * as sftp from "../ssh/sftp.ts";
import type { RemoteInfo } from "../ssh/remote.ts";
import { shellQuote } from "../validate.ts";
import {
  aliveScript,
  cancelScript,
  JOB_SIGNALS,
  JOBS_DIR,
  type JobSignal,
  removeScript,
  signalScript,
} from "./scripts.ts";

/** Where a job stands: `lost` when it ended without a status anyone could see. */
export type JobState = "running" | "exited" | "killed" | "lost";

/** A job's state as a list or wait reports it. */
export interface JobStatus {
  state: JobState;
  /** The command's exit status, once it exited (or what its shell reported for a signal we did not send). */
  exitCode: number | null;
  /** The signal that ended it, e.g. `TERM`, when it was killed by one we sent. */
  signal: string | null;
  stdoutBytes: number;
  stderrBytes: number;
  /** Run time so far, or in all once it ended; null when unknown. */
  durationMs: number | null;
}

/** What cancel achieved. */
export interface CancelOutcome {
  confirmed: boolean;
  note?: string;
}

/** A job, whichever kind. */
export interface Job {
  readonly id: string;
  readonly command: string;
  readonly startedAt: Date;
  /** True for a job that runs on the remote host on its own. */
  readonly detached: boolean;
  /** What an agent should know about this job's kind (connection-bound and why), or undefined. */
  readonly note?: string;
  /** Bytes of each stream that waits have returned: the next wait starts there. */
  readonly cursor: Record<StreamName, number>;
  /** Its state; `liveness` also checks a job without a status is still there (a round trip more). */
  status(options?: { liveness?: boolean; signal?: AbortSignal }): Promise<JobStatus>;
  /** `stream` from `offset`, at most `maxBytes`. */
  read(stream: StreamName, offset: number, maxBytes: number, signal?: AbortSignal): Promise<StreamRead>;
  /** Sends a signal to its whole process group; false when it had already ended. */
  send(name: JobSignal): Promise<boolean>;
  /** TERM, then KILL after a grace, until its process group is gone. */
  cancel(): Promise<CancelOutcome>;
  /** Removes what is kept of a job that ended (its files, or its output here). */
  remove(): Promise<void>;
  /** Forgets it here (a session closing): a detached job runs on, a bound one loses its channel. */
  close(): void;
}

/** What a detached job needs from its session. */
export interface DetachedContext {
  connection: SshConnection;
  remote: RemoteInfo;
  /** The session's SFTP channel, with its request deadline set. */
  sftp: (signal?: AbortSignal) => Promise<SFTPWrapper>;
}

/** What is known of a detached job when it is made (started now, or found in its directory). */
export interface DetachedFacts {
  id: string;
  command: string;
  startedAt: Date;
  pgid: number | null;
  /** The remote clock at start, in epoch seconds (durations of jobs found later use the remote clock only). */
  startEpoch: number | null;
}

/** What a job's files say, for {@linkcode detachedStatus}. */
export interface DetachedFiles {
  /** The `exit` file (`STATUS END_EPOCH`), or null while there is none. */
  exit: string | null;
  /** The `signal` file: the last signal we sent. */
  signal: string | null;
  /** Whether its process group has members, when that was asked. */
  alive: boolean | null;
  stdoutBytes: number;
  stderrBytes: number;
  startEpoch: number | null;
  startedAt: Date;
}

/**
 * A detached job's state from its files. With no status written and its
 * group gone, it was KILLed with its runner (no bash) or it is lost (the
 * host rebooted, someone killed the runner). A status of 128+n after we
 * sent signal n is that signal; any other status is an exit code.
 */
export function detachedStatus(f: DetachedFiles): JobStatus {
  const bytes = { stdoutBytes: f.stdoutBytes, stderrBytes: f.stderrBytes };
  if (f.exit === null) {
    if (f.alive !== false) {
      const durationMs = Math.max(0, Date.now() - f.startedAt.getTime());
      return { state: "running", exitCode: null, signal: null, ...bytes, durationMs };
    }
    const killed = f.signal === "KILL";
    return {
      state: killed ? "killed" : "lost",
      exitCode: null,
      signal: killed ? "KILL" : null,
      ...bytes,
      durationMs: null,
    };
  }
  const [code, endEpoch] = f.exit.split(/\s+/).map(Number);
  // 128+n after we sent signal n: that signal; any other status is the command's own.
  const bySignal = f.signal !== null && code - 128 === JOB_SIGNALS[f.signal as JobSignal] ? f.signal : null;
  // The remote clock's whole seconds at both ends: this process may not have seen either.
  const durationMs = f.startEpoch !== null && Number.isSafeInteger(endEpoch)
    ? Math.max(0, endEpoch - f.startEpoch) * 1000
    : null;
  return {
    state: bySignal === null ? "exited" : "killed",
    exitCode: bySignal === null && Number.isSafeInteger(code) ? code : null,
    signal: bySignal,
    ...bytes,
    durationMs,
  };
}

/** Runs one of our scripts in /bin/sh (its syntax must not depend on the login shell). */
export function runScript(
  context: Pick<DetachedContext, "connection" | "remote">,
  script: string,
  options: { timeoutMs?: number; cwd?: string; stdin?: string; signal?: AbortSignal } = {},
): Promise<ExecResult> {
  return execCommand(context.connection, {
    delivery: context.remote.delivery,
    ownGroup: context.remote.processGroup === "own",
    command: `/bin/sh -c ${shellQuote(script)}`,
    cwd: options.cwd,
    stdin: options.stdin,
    timeoutMs: options.timeoutMs ?? SCRIPT_TIMEOUT_MS,
    maxOutputBytes: 8 * 1024 * 1024,
    signal: options.signal,
  });
}

const SCRIPT_TIMEOUT_MS = 20_000;

/** A job running on the remote host on its own. */
export class DetachedJob implements Job {
  readonly id: string;
  readonly command: string;
  readonly startedAt: Date;
  readonly detached = true;
  readonly cursor: Record<StreamName, number> = { stdout: 0, stderr: 0 };
  #context: DetachedContext;
  #pgid: number | null;
  #startEpoch: number | null;

  constructor(context: DetachedContext, facts: DetachedFacts) {
    this.#context = context;
    this.id = facts.id;
    this.command = facts.command;
    this.startedAt = facts.startedAt;
    this.#pgid = facts.pgid;
    this.#startEpoch = facts.startEpoch;
  }

  #path(file: string): string {
    return `${JOBS_DIR}/${this.id}/${file}`;
  }

  async status(options: { liveness?: boolean; signal?: AbortSignal } = {}): Promise<JobStatus> {
    const signal = options.signal;
    const sf = await this.#context.sftp(signal);
    const size = (file: string) =>
      sftp.stat(sf, this.#path(file), false, signal).then((s) => s.size, (e) => missing(e, 0));
    const sizes = () => Promise.all([size("out"), size("err")]);
    // The status first, the sizes after it: once `exit` is there, the output is complete.
    let [exit, sent, meta] = await Promise.all([
      this.#text(sf, "exit", signal),
      this.#text(sf, "signal", signal),
      sftp.stat(sf, this.#path("meta"), false, signal).then(() => true, (e) => missing(e, false)),
    ]);
    if (!meta) throw this.#gone();
    let [stdoutBytes, stderrBytes] = await sizes();
    let alive: boolean | null = null;
    if (exit === null && options.liveness) {
      alive = await this.#alive(sf, signal);
      if (!alive) {
        // It may have ended between the two looks.
        exit = await this.#text(sf, "exit", signal);
        if (exit !== null) [stdoutBytes, stderrBytes] = await sizes();
        sent = await this.#text(sf, "signal", signal);
      }
    }
    return detachedStatus({
      exit,
      signal: sent,
      alive,
      stdoutBytes,
      stderrBytes,
      startEpoch: this.#startEpoch,
      startedAt: this.startedAt,
    });
  }

  #text(sf: SFTPWrapper, file: string, signal?: AbortSignal): Promise<string | null> {
    return sftp.readRange(sf, this.#path(file), { offset: 0, length: 256, signal })
      .then((r) => new TextDecoder().decode(r.data).trim(), (e) => missing(e, null));
  }

  /**
   * The job's process group, from its `pid` file (the runner writes it a few
   * milliseconds after the start); null while there is none. `waitMs` waits
   * that long for it.
   */
  async #group(sf: SFTPWrapper, waitMs = 0, signal?: AbortSignal): Promise<number | null> {
    const until = performance.now() + waitMs;
    while (this.#pgid === null) {
      const line = await this.#text(sf, "pid", signal);
      const [pid, pgid, start] = (line ?? "").split(/\s+/).map(Number);
      if (Number.isSafeInteger(pgid) && pgid >= 2 && Number.isSafeInteger(pid)) {
        this.#pgid = pgid;
        if (Number.isSafeInteger(start)) this.#startEpoch = start;
        break;
      }
      if (performance.now() >= until) return null;
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.#pgid;
  }

  // Whether the job still runs (its group there and still its own); one that has not written its PID
  // yet counts as running for its first seconds (a start is that slow on a loaded host), then as lost.
  async #alive(sf: SFTPWrapper, signal?: AbortSignal): Promise<boolean> {
    const g = await this.#group(sf, 0, signal);
    if (g === null) return Date.now() - this.startedAt.getTime() < START_GRACE_MS;
    return (await runScript(this.#context, aliveScript(this.id))).exitCode === 0;
  }

  async read(stream: StreamName, offset: number, maxBytes: number, signal?: AbortSignal): Promise<StreamRead> {
    const sf = await this.#context.sftp(signal);
    const path = this.#path(stream === "stdout" ? "out" : "err");
    try {
      const r = await sftp.readRange(sf, path, { offset, length: maxBytes, signal });
      return { bytes: r.data, offset: Math.min(offset, r.size), totalBytes: r.size, droppedBytes: 0 };
    } catch (error) {
      if (!(error instanceof SshMcpError && error.code === "SFTP_NO_SUCH_FILE")) throw error;
      // Not written yet (the runner creates it when the command starts), or the job is gone.
      const meta = await sftp.stat(sf, this.#path("meta"), false, signal).then(() => true, (e) => missing(e, false));
      if (!meta) throw this.#gone();
      return { bytes: new Uint8Array(0), offset: 0, totalBytes: 0, droppedBytes: 0 };
    }
  }

  async send(name: JobSignal): Promise<boolean> {
    await this.#started();
    const r = await runScript(this.#context, signalScript(this.id, name));
    if (r.exitCode === 0) return true;
    if (r.exitCode === 6) return false;
    throw scriptFailed(`send ${name} to job ${this.id}`, r);
  }

  async cancel(): Promise<CancelOutcome> {
    await this.#started();
    const r = await runScript(this.#context, cancelScript(this.id, CANCEL_GRACE_SECONDS));
    if (r.exitCode === 0) return { confirmed: true };
    if (r.exitCode === 3) return { confirmed: false, note: "processes of another user remain in its group" };
    if (r.exitCode === 1) return { confirmed: false, note: "its processes were still there 4 s after KILL" };
    return { confirmed: false, note: `the kill could not be run or checked (${brief(r)})` };
  }

  async remove(): Promise<void> {
    await this.#started();
    const r = await runScript(this.#context, removeScript(this.id));
    if (r.exitCode === 4) {
      throw new SshMcpError("JOB_RUNNING", `Job ${this.id} is still running; it was not removed`);
    }
    if (r.exitCode !== 0) throw scriptFailed(`remove job ${this.id}`, r);
  }

  // A job started moments ago may not have written its PID yet: waits for it (a job found ended, or
  // old, is not waited for), so that a signal or a remove right after the start sees the job.
  async #started(): Promise<void> {
    if (this.#pgid !== null || Date.now() - this.startedAt.getTime() >= START_GRACE_MS) return;
    const sf = await this.#context.sftp();
    if (await this.#text(sf, "exit") !== null) return;
    if (await this.#group(sf, START_GRACE_MS - (Date.now() - this.startedAt.getTime())) !== null) return;
    const exists = await sftp.stat(sf, this.#path("meta")).then(() => true, (e) => missing(e, false));
    if (!exists) throw this.#gone();
  }

  close(): void {
    // Nothing held here: the job runs on, and a later session finds it again.
  }

  #gone(): SshMcpError {
    return new SshMcpError("JOB_NOT_FOUND", `Job ${this.id} is no longer on the host (its files were removed)`, {
      hint: "ssh_job action=list lists the jobs there are",
    });
  }
}

/** How long a job may take to write its PID before it counts as lost. */
const START_GRACE_MS = 10_000;

/** Seconds between TERM and KILL when a job is cancelled. */
export const CANCEL_GRACE_SECONDS = 3;

/** How a bound job's processes are reached. */
export interface BoundControl {
  /** Resolves once the channel closed (output complete). */
  readonly closed: Promise<void>;
  /** The exit status, once it arrived. */
  exit(): { code: number | null; signal: string | null } | null;
  /** Sends a signal to the process group; false when nothing was reached. */
  signal(name: JobSignal): Promise<boolean>;
  /** KILLs the group and waits until it is gone, then closes the channel. */
  kill(): Promise<CancelOutcome>;
  /** Closes the channel. */
  close(): void;
}

/** A job on a channel of this connection, its output kept here. */
export class BoundJob implements Job {
  readonly id: string;
  readonly command: string;
  readonly startedAt: Date;
  readonly detached = false;
  readonly note: string;
  readonly cursor: Record<StreamName, number> = { stdout: 0, stderr: 0 };
  #kept: KeptOutput;
  #store: OutputStore;
  #control: BoundControl;
  #connection: SshConnection;
  #endedAt: number | null = null;
  #open = true;
  #endsWith: "exit" | "close";
  #sent: string | null = null;

  constructor(options: {
    id: string;
    command: string;
    note: string;
    kept: KeptOutput;
    store: OutputStore;
    control: BoundControl;
    connection: SshConnection;
    /** What ends it: its command's exit status, or (a handed-over background child) the channel's close. */
    endsWith: "exit" | "close";
  }) {
    this.#endsWith = options.endsWith;
    this.id = options.id;
    this.command = options.command;
    this.note = options.note;
    this.startedAt = new Date();
    this.#kept = options.kept;
    this.#store = options.store;
    this.#control = options.control;
    this.#connection = options.connection;
    void options.control.closed.then(() => {
      this.#open = false;
      this.#kept.running = false;
      this.#endedAt = Date.now();
    });
  }

  status(): Promise<JobStatus> {
    const exit = this.#control.exit();
    const { stdout, stderr } = this.#kept.streams;
    const base = {
      stdoutBytes: stdout.total,
      stderrBytes: stderr.total,
      durationMs: (this.#endedAt ?? Date.now()) - this.startedAt.getTime(),
    };
    // A handed-over job is the background child: it runs while it holds the channel. Any other
    // ends with its command's status (a child of it may still add output, as in a detached job).
    const runs = this.#open && (this.#endsWith === "close" || exit === null);
    if (runs) return Promise.resolve({ state: "running", exitCode: exit?.code ?? null, signal: null, ...base });
    if (exit === null) {
      const killed = this.#sent !== null && this.#connection.alive;
      return Promise.resolve({
        state: killed ? "killed" : "lost",
        exitCode: null,
        signal: killed ? this.#sent : null,
        ...base,
      });
    }
    const signal = exit.signal?.replace(/^SIG/, "") ?? null;
    const bySignal = signal ?? (this.#sent !== null && exit.code !== null && exit.code > 128 ? this.#sent : null);
    return Promise.resolve({
      state: bySignal === null ? "exited" : "killed",
      exitCode: bySignal === null ? exit.code : null,
      signal: bySignal,
      ...base,
    });
  }

  read(stream: StreamName, offset: number, maxBytes: number): Promise<StreamRead> {
    return Promise.resolve(this.#kept.read(stream, offset, maxBytes));
  }

  async send(name: JobSignal): Promise<boolean> {
    if (!this.#open) return false;
    this.#sent = name;
    return await this.#control.signal(name);
  }

  async cancel(): Promise<CancelOutcome> {
    if (!this.#open) return { confirmed: true };
    this.#sent = "TERM";
    await this.#control.signal("TERM");
    const gone = await Promise.race([
      this.#control.closed.then(() => true),
      new Promise<false>((r) => Deno.unrefTimer(setTimeout(() => r(false), CANCEL_GRACE_SECONDS * 1000))),
    ]);
    if (gone) return { confirmed: true };
    this.#sent = "KILL";
    return await this.#control.kill();
  }

  remove(): Promise<void> {
    // A handed-over child is let go: its channel closes (the slot comes back), the process is left
    // alone, and its output is no longer kept (it gets EPIPE on its next write).
    if (this.#open && this.#endsWith === "close") this.#control.close();
    else if (this.#open) {
      throw new SshMcpError("JOB_RUNNING", `Job ${this.id} is still running; it was not removed`);
    }
    this.#store.drop(this.#kept.id);
    return Promise.resolve();
  }

  close(): void {
    this.#control.close();
    this.#store.drop(this.#kept.id);
  }
}

function missing<T>(error: unknown, value: T): T {
  if (error instanceof SshMcpError && error.code === "SFTP_NO_SUCH_FILE") return value;
  throw error;
}

function brief(r: ExecResult): string {
  if (r.timedOut) return "timed out";
  return `exit ${r.exitCode ?? r.signal}${r.stderr.trim() ? `: ${r.stderr.trim().slice(0, 200)}` : ""}`;
}

function scriptFailed(what: string, r: ExecResult): SshMcpError {
  return new SshMcpError("JOB_FAILED", `Could not ${what} (${brief(r)})`);
}
