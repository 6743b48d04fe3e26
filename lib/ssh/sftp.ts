/**
 * Remote file operations over one SFTP session: stat, ranged and pipelined
 * reads, atomic writes (temp file in the same directory, then rename), and
 * the small operations (mkdir -p, remove, rename, chmod), with SFTP status
 * codes mapped to stable errors.
 *
 * @module
 */

import type { FileEntryWithStats, SFTPWrapper, Stats } from "../ssh2/mod.ts";
import { Buffer } from "node:buffer";
import { posix } from "node:path";
import { outcomeUnknown, SshMcpError } from "../errors.ts";
import { tempName } from "../random.ts";

/** Bytes per SFTP read or write request. */
export const CHUNK = 32 * 1024; // the packet size OpenSSH's sftp-server reads and writes
/** SFTP requests outstanding at once. */
export const IN_FLIGHT = 64; // requests outstanding at once, as sftp(1) pipelines

/** What `stat` reports. */
export interface RemoteStat {
  path: string;
  type: "file" | "directory" | "symlink" | "other";
  /** What an "other" is. */
  special?: SpecialKind;
  size: number;
  /** Permission bits, e.g. 0o644. */
  mode: number;
  mtime: string;
  uid: number;
  gid: number;
}

/** The kinds of file that are neither regular files, directories nor symlinks. */
export type SpecialKind = "FIFO" | "socket" | "character device" | "block device" | "special file";

// S_IFMT and its values: the same on every Unix the SFTP v3 mode comes from.
const S_IFMT = 0o170000;
const SPECIAL: ReadonlyMap<number, SpecialKind> = new Map([
  [0o010000, "FIFO"],
  [0o020000, "character device"],
  [0o060000, "block device"],
  [0o140000, "socket"],
]);

/**
 * Refuses anything but a regular file before it is opened: opening a FIFO
 * blocks the server's sftp-server (and every request queued behind it) until
 * a writer comes, and reading a device such as /dev/zero never ends.
 * Directories keep their own code, `IS_A_DIRECTORY`.
 */
export function requireRegularFile(st: RemoteStat, action: string): void {
  if (st.type === "file") return;
  if (st.type === "directory") {
    throw new SshMcpError("IS_A_DIRECTORY", `Cannot ${action} ${st.path}: it is a directory`, {
      hint: "Use ssh_list_remote_dir for directories, or recursive=true to transfer one",
    });
  }
  throw notRegular(st.path, action, st.special ?? "special file");
}

function notRegular(path: string, action: string, kind: string): SshMcpError {
  return new SshMcpError("NOT_A_REGULAR_FILE", `Cannot ${action} ${path}: it is a ${kind}, not a regular file`, {
    hint: action === "read" || action === "download"
      ? "Only regular files are read over SFTP; use ssh_execute for FIFOs and devices (e.g. head -c 1024 on it)"
      : "Writing would replace it with a regular file rather than write into it: remove it first " +
        "(ssh_remove_remote) if that is what you want, or write into it with ssh_execute",
  });
}

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

const ended = new WeakMap<SFTPWrapper, Promise<never>>();

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
 */
export function failRequestsWhen(sftp: SFTPWrapper, end: Promise<never>): void {
  end.catch(() => {}); // observed here; each request re-raises it
  ended.set(sftp, end);
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
  const settled = request_.finally(() => off());
  const end = ended.get(sftp);
  if (end === undefined) return settled;
  if (READS.has(action)) return Promise.race([settled, end]);
  return Promise.race([
    settled,
    end.catch((lost: unknown) => {
      throw lost instanceof SshMcpError ? outcomeUnknown(lost, CHANGE_OUTCOME_UNKNOWN) : lost;
    }),
  ]);
}

function describe(path: string, s: Stats): RemoteStat {
  const type = s.isFile() ? "file" : s.isDirectory() ? "directory" : s.isSymbolicLink() ? "symlink" : "other";
  return {
    path,
    type,
    ...(type === "other" ? { special: SPECIAL.get(s.mode & S_IFMT) ?? "special file" } : {}),
    size: s.size,
    mode: s.mode & 0o7777,
    mtime: new Date(s.mtime * 1000).toISOString(),
    uid: s.uid,
    gid: s.gid,
  };
}

/** Stats a path (symlinks followed unless `lstat`); `signal` stops waiting for the answer. */
export async function stat(sftp: SFTPWrapper, path: string, lstat = false, signal?: AbortSignal): Promise<RemoteStat> {
  const s = await call<Stats>(
    sftp,
    path,
    "stat",
    (cb) => (lstat ? sftp.lstat(path, cb) : sftp.stat(path, cb)),
    signal,
  );
  return describe(path, s);
}

/**
 * Reads `length` bytes at `offset` (clamped to the file), many requests in
 * flight. Anything but a regular file is refused before it is opened.
 */
export async function readRange(
  sftp: SFTPWrapper,
  path: string,
  range: { offset: number; length: number; signal?: AbortSignal },
): Promise<{ data: Uint8Array; size: number }> {
  const signal = range.signal;
  requireRegularFile(await stat(sftp, path, false, signal), "read");
  const handle = await call<Buffer>(sftp, path, "open", (cb) => sftp.open(path, "r", cb), signal);
  try {
    const info = await call<Stats>(sftp, path, "stat", (cb) => sftp.fstat(handle, cb), signal);
    // What was opened, if the path changed since the stat (one that blocks is the deadline's case).
    requireRegularFile(describe(path, info), "read");
    const start = Math.min(range.offset, info.size);
    const end = Math.min(info.size, start + range.length);
    const data = new Uint8Array(end - start);
    let next = start;
    let got = end - start;
    const worker = async () => {
      while (next < end) {
        const pos = next;
        const len = Math.min(CHUNK, end - pos);
        next += len;
        const buf = Buffer.alloc(len);
        const n = await call<number>(sftp, path, "read", (cb) => sftp.read(handle, buf, 0, len, pos, cb), signal);
        data.set(buf.subarray(0, n), pos - start);
        if (n < len) got = Math.min(got, pos - start + n); // file shrank while we read
      }
    };
    await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, Math.ceil((end - start) / CHUNK)) }, worker));
    return { data: data.subarray(0, got), size: info.size };
  } finally {
    await call<void>(sftp, path, "close", (cb) => sftp.close(handle, cb)).catch(() => {});
  }
}

/** Options of {@linkcode writeFile}. */
export interface WriteOptions {
  /** create: refuse an existing file; overwrite: replace it; append: add to its end (not atomic). */
  how: "create" | "overwrite" | "append";
  /** Permission bits for a new file. */
  mode?: number;
  /** Stops waiting for answers (the call fails with the signal's reason). */
  signal?: AbortSignal;
}

/**
 * Writes a file. create and overwrite write a temporary file next to the
 * target and rename it into place, so readers never see a partial file and
 * a failed write leaves the old one intact; create uses SFTP's plain rename,
 * which never replaces an existing file, so it cannot clobber one that
 * appeared meanwhile. An existing target that is not a regular file (a FIFO,
 * a socket, a device) is refused in every mode: appending would block on a
 * FIFO or write to a device, and replacing would swap it for a regular file,
 * which is not what writing to it means.
 */
export async function writeFile(sftp: SFTPWrapper, path: string, data: Uint8Array, options: WriteOptions) {
  const signal = options.signal;
  const existing = await stat(sftp, path, false, signal).catch((e: SshMcpError) => {
    if (e.code === "SFTP_NO_SUCH_FILE") return null;
    throw e;
  });
  if (existing?.type === "other") throw notRegular(path, "write", existing.special ?? "special file");
  if (existing?.type === "directory") {
    throw new SshMcpError("IS_A_DIRECTORY", `Cannot write ${path}: it is a directory`);
  }
  if (options.how === "append") {
    const handle = await call<Buffer>(
      sftp,
      path,
      "open",
      (cb) => sftp.open(path, "a", { mode: options.mode ?? 0o644 }, cb),
      signal,
    );
    try {
      const info = await call<Stats>(sftp, path, "stat", (cb) => sftp.fstat(handle, cb), signal);
      if (!info.isFile()) throw notRegular(path, "write", describe(path, info).special ?? "special file");
      await writeAll(sftp, handle, path, data, info.size, signal);
    } finally {
      await call<void>(sftp, path, "close", (cb) => sftp.close(handle, cb)).catch(() => {});
    }
    return;
  }
  if (existing !== null && options.how === "create") {
    throw new SshMcpError("FILE_EXISTS", `${path} already exists`, {
      hint: 'Pass mode "overwrite" to replace it, or "append" to add to it',
    });
  }
  const temp = posix.join(posix.dirname(path), tempName(posix.basename(path)));
  const mode = options.mode ?? existing?.mode ?? 0o644;
  const handle = await call<Buffer>(
    sftp,
    temp,
    "create",
    (cb) => sftp.open(temp, "wx", { mode: 0o600 }, cb),
    signal,
  );
  try {
    await writeAll(sftp, handle, temp, data, 0, signal);
    // Set after writing: a mode without write permission would refuse our own writes.
    await call<void>(sftp, temp, "chmod", (cb) => sftp.fchmod(handle, mode, cb), signal);
  } catch (error) {
    await call<void>(sftp, temp, "close", (cb) => sftp.close(handle, cb)).catch(() => {});
    await call<void>(sftp, temp, "remove", (cb) => sftp.unlink(temp, cb)).catch(() => {});
    throw error;
  }
  await call<void>(sftp, temp, "close", (cb) => sftp.close(handle, cb), signal);
  try {
    if (options.how === "create") {
      await call<void>(sftp, path, "create", (cb) => sftp.rename(temp, path, cb), signal);
    } else await call<void>(sftp, path, "replace", (cb) => sftp.ext_openssh_rename(temp, path, cb), signal);
  } catch (error) {
    await call<void>(sftp, temp, "remove", (cb) => sftp.unlink(temp, cb)).catch(() => {});
    const raced = options.how === "create" && (await stat(sftp, path).then(() => true, () => false));
    if (raced) throw new SshMcpError("FILE_EXISTS", `${path} appeared while it was being written`, { cause: error });
    throw error;
  }
}

async function writeAll(
  sftp: SFTPWrapper,
  handle: Buffer,
  path: string,
  data: Uint8Array,
  at: number,
  signal?: AbortSignal,
) {
  let next = 0;
  const worker = async () => {
    while (next < data.length) {
      const pos = next;
      const len = Math.min(CHUNK, data.length - pos);
      next += len;
      await call<void>(
        sftp,
        path,
        "write",
        (cb) => sftp.write(handle, Buffer.from(data.buffer, data.byteOffset + pos, len), 0, len, at + pos, cb),
        signal,
      );
    }
  };
  await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, Math.ceil(data.length / CHUNK)) }, worker));
}

/** One directory entry as listed. */
export interface ListEntry extends RemoteStat {
  name: string;
  /** Where a symlink points. */
  target?: string;
  depth: number;
}

/** Lists a directory, optionally recursing to `depth`, sorted by path; stops after `max` entries. */
export async function listDir(
  sftp: SFTPWrapper,
  path: string,
  options: { depth: number; max: number },
): Promise<{ entries: ListEntry[]; truncated: boolean }> {
  const root = await stat(sftp, path);
  if (root.type !== "directory") {
    throw new SshMcpError("NOT_A_DIRECTORY", `${path} is not a directory`, {
      hint: "Use ssh_stat_remote or ssh_read_remote_file for files",
    });
  }
  const entries: ListEntry[] = [];
  let truncated = false;
  const walk = async (dir: string, depth: number) => {
    const list = await call<FileEntryWithStats[]>(sftp, dir, "list", (cb) => sftp.readdir(dir, cb));
    list.sort((a, b) => (a.filename < b.filename ? -1 : a.filename > b.filename ? 1 : 0));
    for (const item of list) {
      if (entries.length >= options.max) {
        truncated = true;
        return;
      }
      const full = posix.join(dir, item.filename);
      const entry: ListEntry = { ...describe(full, item.attrs as Stats), name: item.filename, depth };
      if (entry.type === "symlink") {
        entry.target = await call<string>(sftp, full, "read link", (cb) => sftp.readlink(full, cb)).catch(() =>
          undefined
        );
      }
      entries.push(entry);
      if (entry.type === "directory" && depth < options.depth) await walk(full, depth + 1);
    }
  };
  await walk(path, 0);
  return { entries, truncated };
}

/** Creates a directory, and its missing parents when `parents`. */
export async function mkdir(sftp: SFTPWrapper, path: string, options: { parents: boolean; mode?: number }) {
  const make = (p: string) =>
    call<void>(sftp, p, "create directory", (cb) => sftp.mkdir(p, { mode: options.mode ?? 0o755 }, cb));
  if (!options.parents) return await make(path);
  const parts = posix.normalize(path).split("/");
  let current = path.startsWith("/") ? "/" : "";
  for (const part of parts.filter((x) => x !== "")) {
    current = current === "" ? part : posix.join(current, part);
    const existing = await stat(sftp, current).catch(() => null);
    if (existing === null) await make(current);
    else if (existing.type !== "directory") {
      throw new SshMcpError("NOT_A_DIRECTORY", `Cannot create ${path}: ${current} is not a directory`);
    }
  }
}

/** Removes a file or symlink; a directory only when empty, or with everything in it when `recursive`. */
export async function remove(sftp: SFTPWrapper, path: string, options: { recursive: boolean }): Promise<number> {
  const info = await stat(sftp, path, true);
  if (info.type !== "directory") {
    await call<void>(sftp, path, "remove", (cb) => sftp.unlink(path, cb));
    return 1;
  }
  let count = 0;
  if (options.recursive) {
    const list = await call<FileEntryWithStats[]>(sftp, path, "list", (cb) => sftp.readdir(path, cb));
    for (const item of list) count += await remove(sftp, posix.join(path, item.filename), options);
  }
  await call<void>(sftp, path, "remove directory", (cb) => sftp.rmdir(path, cb));
  return count + 1;
}

/** Renames (moves) a path; refuses to replace an existing target unless `overwrite`. */
export async function rename(sftp: SFTPWrapper, from: string, to: string, options: { overwrite: boolean }) {
  if (options.overwrite) return await call<void>(sftp, to, "rename to", (cb) => sftp.ext_openssh_rename(from, to, cb));
  const exists = await stat(sftp, to, true).then(() => true, () => false);
  if (exists) {
    throw new SshMcpError("FILE_EXISTS", `${to} already exists`, { hint: "Pass overwrite=true to replace it" });
  }
  await call<void>(sftp, from, "rename", (cb) => sftp.rename(from, to, cb));
}

/** Changes permission bits. */
export async function chmod(sftp: SFTPWrapper, path: string, mode: number) {
  await call<void>(sftp, path, "chmod", (cb) => sftp.chmod(path, mode, cb));
}
