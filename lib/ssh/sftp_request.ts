/**
 * One SFTP request under the rules every file tool relies on: a coded error
 * for each SFTP status, a failure (never a hang) when the connection ends,
 * and a deadline per channel, past which a stuck channel is given up so the
 * rest of the session keeps working.
 *
 * @module
 */

import type { SFTPWrapper } from "../ssh2/mod.ts";
import { outcomeUnknown, SshMcpError } from "../errors.ts";

/** Maps an ssh2 SFTP failure (its numeric status in `code`) to a coded error. */
export function sftpError(error: unknown, path: string, action: string): SshMcpError {
  if (error instanceof SshMcpError) return error;
  const code = (error as { code?: unknown })?.code;
  switch (code) {
    case 2:
      return new SshMcpError("SFTP_NO_SUCH_FILE", `Cannot ${action} ${path}: no such file or directory`, {
        hint: "Check the path (ssh_list_remote_dir shows what exists)",
        cause: error,
      });
    case 3:
      return new SshMcpError("SFTP_PERMISSION_DENIED", `Cannot ${action} ${path}: permission denied`, {
        hint: "The remote user lacks permission; use a path it owns, or ssh_sudo_execute",
        cause: error,
      });
    default:
      return new SshMcpError("SFTP_FAILURE", `Cannot ${action} ${path}: the server reported a failure`, {
        hint: "The disk may be full, the path may be a directory, or the name may be invalid",
        cause: error,
      });
  }
}

/**
 * Actions of {@linkcode call} that change nothing on the server. Any other
 * request that was sent when the connection ended may have taken effect
 * (an append, a rename, a removal): its failure must not invite a blind retry.
 */
const READS: ReadonlySet<string> = new Set(["close", "list", "open", "read", "read link", "stat", "statvfs"]);

/** What a request that may have changed the server says when the connection ended before its answer. */
const CHANGE_OUTCOME_UNKNOWN = "The change may have been made: check the remote path before trying again";

/**
 * Makes every request on `sftp` fail once `end` rejects (the connection is
 * gone): ssh2 leaves requests in flight on a dead connection unanswered,
 * and a file tool would wait forever.
 *
 * The requests are failed through the channel's own list of pending ones,
 * not by racing each against `end`: that promise stays pending as long as
 * the connection lives, and every race left a reaction on it holding the
 * request's result (Stats, data, errors) until the connection closed (heap
 * 23 -> 49 MiB over 10,000 fuzz calls).
 */
export function failRequestsWhen(sftp: SFTPWrapper, end: Promise<never>): void {
  const watch = watchOf(sftp);
  end.catch((reason: unknown) => {
    watch.lost = { reason };
    clearTimeout(watch.timer);
    watch.timer = undefined;
    for (const p of watch.pending) p.fail(lostError(reason, p.action));
    watch.pending.clear();
  });
}

/** What a request gets when the connection ended before its answer. */
function lostError(reason: unknown, action: string): SshMcpError {
  const lost = reason instanceof SshMcpError
    ? reason
    : new SshMcpError("CONNECTION_LOST", "The connection closed", { cause: reason });
  // A request that may have changed the server must not invite a blind retry.
  return READS.has(action) ? lost : outcomeUnknown(lost, CHANGE_OUTCOME_UNKNOWN);
}

/**
 * How long a request may wait on a silent channel when nobody set it with
 * {@linkcode setRequestDeadline}.
 */
export const DEFAULT_REQUEST_DEADLINE_MS = 60_000;

/** A request sent and not yet answered. */
interface Pending {
  action: string;
  path: string;
  /** Ends the request with `error` (its late answer, if any, is then ignored). */
  fail(error: SshMcpError): void;
}

/**
 * The requests in flight on one SFTP channel and when it last answered.
 * OpenSSH's sftp-server handles requests one at a time, in order: a channel
 * that answers nothing for the whole deadline while requests wait is stuck
 * (an open that blocks on a FIFO swapped in after our stat, a hung file
 * system), while a slow link still answers something now and then, so a
 * long transfer never trips it.
 */
interface Watch {
  pending: Set<Pending>;
  deadlineMs: number;
  /** When the channel last answered, or when a request was sent to an idle one. */
  quietSince: number;
  timer: number | undefined;
  /** Set once the channel was abandoned: nothing more is sent on it. */
  abandoned: boolean;
  /** Set once the connection ended: why. */
  lost?: { reason: unknown };
}

const watches = new WeakMap<SFTPWrapper, Watch>();

function watchOf(sftp: SFTPWrapper): Watch {
  let watch = watches.get(sftp);
  if (watch === undefined) {
    watch = {
      pending: new Set(),
      deadlineMs: DEFAULT_REQUEST_DEADLINE_MS,
      quietSince: 0,
      timer: undefined,
      abandoned: false,
    };
    watches.set(sftp, watch);
  }
  return watch;
}

/**
 * Sets how long a request on `sftp` may wait while the channel answers
 * nothing at all; past that the channel is abandoned (see {@linkcode request}).
 */
export function setRequestDeadline(sftp: SFTPWrapper, ms: number): void {
  watchOf(sftp).deadlineMs = ms;
}

/**
 * Whether `sftp` was abandoned as stuck: nothing more is sent on it, and the
 * connection opens a new channel for the next call.
 */
export function isAbandoned(sftp: SFTPWrapper): boolean {
  return watches.get(sftp)?.abandoned ?? false;
}

function arm(sftp: SFTPWrapper, watch: Watch): void {
  if (watch.timer !== undefined) return;
  const wait = Math.max(0, watch.quietSince + watch.deadlineMs - performance.now());
  const timer = Number(setTimeout(() => {
    watch.timer = undefined;
    if (watch.pending.size === 0 || watch.abandoned) return;
    if (performance.now() - watch.quietSince >= watch.deadlineMs) return abandon(sftp, watch);
    arm(sftp, watch);
  }, wait));
  // Never the reason the process stays up.
  Deno.unrefTimer(timer);
  watch.timer = timer;
}

/**
 * Gives up a stuck channel: the oldest request fails with `SFTP_TIMEOUT`,
 * every other one in flight with `SFTP_CHANNEL_RESET` (a change that may
 * have been made is not called retryable), and the channel is closed so the
 * connection opens a fresh one for the next call. OpenSSH refuses `signal`
 * requests on subsystem channels, so the remote sftp-server cannot be told
 * to stop; it goes when its blocked call returns and it sees the channel closed.
 */
function abandon(sftp: SFTPWrapper, watch: Watch): void {
  watch.abandoned = true;
  clearTimeout(watch.timer);
  watch.timer = undefined;
  const seconds = Math.round(watch.deadlineMs / 100) / 10;
  const reset = "The SFTP channel was reset; the next file call opens a new one";
  let first = true;
  for (const p of watch.pending) {
    if (first) {
      first = false;
      const stuck = new SshMcpError(
        "SFTP_TIMEOUT",
        `Cannot ${p.action} ${p.path}: the server answered nothing for ${seconds} s`,
        {
          hint: `${reset}. The path may be a FIFO or device swapped in, or on a hung file system: check it with ` +
            "ssh_execute before trying again",
        },
      );
      p.fail(READS.has(p.action) ? stuck : outcomeUnknown(stuck, CHANGE_OUTCOME_UNKNOWN));
    } else p.fail(resetError(p.action, p.path));
  }
  watch.pending.clear();
  try {
    sftp.end();
  } catch {
    // The connection is already gone: its own end fails what is left.
  }
}

function resetError(action: string, path: string): SshMcpError {
  const error = new SshMcpError(
    "SFTP_CHANNEL_RESET",
    `Cannot ${action} ${path}: the SFTP channel was reset because another request on it got no answer`,
    { hint: "Try again: the next file call opens a new SFTP channel" },
  );
  return READS.has(action) ? error : outcomeUnknown(error, CHANGE_OUTCOME_UNKNOWN);
}

/**
 * Sends one SFTP request, callback style (transfers pipeline many, and a
 * promise each costs throughput), under the channel's deadline: `done` is
 * called exactly once, with the answer, or with a coded error if the channel
 * is abandoned first. `send` gets the callback to hand to ssh2.
 */
export function request<T>(
  sftp: SFTPWrapper,
  what: { path: string; action: string },
  send: (cb: (err: Error | undefined | null, value: T) => void) => void,
  done: (err: SshMcpError | null, value?: T) => void,
): void {
  const watch = watchOf(sftp);
  if (watch.lost !== undefined) return done(lostError(watch.lost.reason, what.action));
  if (watch.abandoned) return done(resetError(what.action, what.path));
  let settled = false;
  const pending: Pending = {
    ...what,
    fail: (error) => {
      if (settled) return;
      settled = true;
      done(error);
    },
  };
  if (watch.pending.size === 0) watch.quietSince = performance.now();
  watch.pending.add(pending);
  arm(sftp, watch);
  const answered = (err: Error | undefined | null, value: T) => {
    if (settled) return;
    settled = true;
    watch.pending.delete(pending);
    watch.quietSince = performance.now();
    if (watch.pending.size === 0 && watch.timer !== undefined) {
      clearTimeout(watch.timer);
      watch.timer = undefined;
    }
    if (err) done(sftpError(err, what.path, what.action));
    else done(null, value);
  };
  try {
    send(answered);
  } catch (error) {
    // ssh2 throws synchronously for what it cannot even send (e.g. an
    // extension the server lacks): still an SFTP error, not a local one.
    answered(error as Error, undefined as T);
  }
}

/**
 * One SFTP request as a promise, failing with a coded error: when the
 * server refuses it, when the connection ends, when the channel is
 * abandoned as stuck, or at once when `signal` aborts (with its reason; the
 * request is then left to the channel's deadline).
 */
export function call<T>(
  sftp: SFTPWrapper,
  path: string,
  action: string,
  fn: (cb: (err: Error | undefined | null, value: T) => void) => void,
  signal?: AbortSignal,
): Promise<T> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  let off = () => {};
  const request_ = new Promise<T>((resolve, reject) => {
    if (signal !== undefined) {
      const onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      off = () => signal.removeEventListener("abort", onAbort);
    }
    request<T>(sftp, { path, action }, fn, (err, value) => (err ? reject(err) : resolve(value as T)));
  });
  return request_.finally(() => off());
}
