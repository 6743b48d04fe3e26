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
  size: number;
  /** Permission bits, e.g. 0o644. */
  mode: number;
  mtime: string;
  uid: number;
  gid: number;
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

/** What fails the requests of one SFTP session when its connection ends. */
interface EndWatch {
  /** Set once the connection ended: why. */
  lost?: { reason: unknown };
  /** Fails one pending request; each removes itself when its answer comes. */
  pending: Set<(reason: unknown) => void>;
}

const ended = new WeakMap<SFTPWrapper, EndWatch>();

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
  const watch: EndWatch = { pending: new Set() };
  end.catch((reason: unknown) => {
    watch.lost = { reason };
    for (const fail of watch.pending) fail(reason);
    watch.pending.clear();
  });
  ended.set(sftp, watch);
}

/**
 * One SFTP request as a promise, failing with a coded error (or when the connection ends).
 *
 * Not `Promise.race` with the connection's end: that promise stays pending as long as the
 * connection lives, and every race would leave a reaction on it holding the request's result
 * (its Stats, its data, its error) until the connection closes.
 */
export function call<T>(
  sftp: SFTPWrapper,
  path: string,
  action: string,
  fn: (cb: (err: Error | undefined | null, value: T) => void) => void,
): Promise<T> {
  const watch = ended.get(sftp);
  return new Promise<T>((resolve, reject) => {
    let answered = false;
    const onEnd = (lost: unknown) => {
      // A request that may have changed the server must not invite a blind retry.
      reject(READS.has(action) || !(lost instanceof SshMcpError) ? lost : outcomeUnknown(lost, CHANGE_OUTCOME_UNKNOWN));
    };
    const answer = () => {
      answered = true;
      watch?.pending.delete(onEnd);
    };
    try {
      fn((err, value) => {
        answer();
        if (err) reject(sftpError(err, path, action));
        else resolve(value);
      });
    } catch (error) {
      answer();
      // ssh2 throws synchronously for what it cannot even send (e.g. an
      // extension the server lacks): still an SFTP error, not a local one.
      reject(sftpError(error, path, action));
    }
    if (watch === undefined || answered) return;
    if (watch.lost !== undefined) onEnd(watch.lost.reason);
    else watch.pending.add(onEnd);
  });
}

function describe(path: string, s: Stats): RemoteStat {
  return {
    path,
    type: s.isFile() ? "file" : s.isDirectory() ? "directory" : s.isSymbolicLink() ? "symlink" : "other",
    size: s.size,
    mode: s.mode & 0o7777,
    mtime: new Date(s.mtime * 1000).toISOString(),
    uid: s.uid,
    gid: s.gid,
  };
}

/** Stats a path (symlinks followed unless `lstat`). */
export async function stat(sftp: SFTPWrapper, path: string, lstat = false): Promise<RemoteStat> {
  const s = await call<Stats>(sftp, path, "stat", (cb) => (lstat ? sftp.lstat(path, cb) : sftp.stat(path, cb)));
  return describe(path, s);
}

/** Reads `length` bytes at `offset` (clamped to the file), many requests in flight. */
export async function readRange(
  sftp: SFTPWrapper,
  path: string,
  range: { offset: number; length: number },
): Promise<{ data: Uint8Array; size: number }> {
  const handle = await call<Buffer>(sftp, path, "open", (cb) => sftp.open(path, "r", cb));
  try {
    const info = await call<Stats>(sftp, path, "stat", (cb) => sftp.fstat(handle, cb));
    if (info.isDirectory()) {
      throw new SshMcpError("IS_A_DIRECTORY", `Cannot read ${path}: it is a directory`, {
        hint: "Use ssh_list_remote_dir for directories",
      });
    }
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
        const n = await call<number>(sftp, path, "read", (cb) => sftp.read(handle, buf, 0, len, pos, cb));
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
}

/**
 * Writes a file. create and overwrite write a temporary file next to the
 * target and rename it into place, so readers never see a partial file and
 * a failed write leaves the old one intact; create uses SFTP's plain rename,
 * which never replaces an existing file, so it cannot clobber one that
 * appeared meanwhile.
 */
export async function writeFile(sftp: SFTPWrapper, path: string, data: Uint8Array, options: WriteOptions) {
  if (options.how === "append") {
    const handle = await call<Buffer>(
      sftp,
      path,
      "open",
      (cb) => sftp.open(path, "a", { mode: options.mode ?? 0o644 }, cb),
    );
    try {
      const size = (await call<Stats>(sftp, path, "stat", (cb) => sftp.fstat(handle, cb))).size;
      await writeAll(sftp, handle, path, data, size);
    } finally {
      await call<void>(sftp, path, "close", (cb) => sftp.close(handle, cb)).catch(() => {});
    }
    return;
  }
  const existing = await stat(sftp, path).catch((e: SshMcpError) => {
    if (e.code === "SFTP_NO_SUCH_FILE") return null;
    throw e;
  });
  if (existing !== null && options.how === "create") {
    throw new SshMcpError("FILE_EXISTS", `${path} already exists`, {
      hint: 'Pass mode "overwrite" to replace it, or "append" to add to it',
    });
  }
  if (existing?.type === "directory") {
    throw new SshMcpError("IS_A_DIRECTORY", `Cannot write ${path}: it is a directory`);
  }
  const temp = posix.join(posix.dirname(path), tempName(posix.basename(path)));
  const mode = options.mode ?? existing?.mode ?? 0o644;
  const handle = await call<Buffer>(sftp, temp, "create", (cb) => sftp.open(temp, "wx", { mode: 0o600 }, cb));
  try {
    await writeAll(sftp, handle, temp, data, 0);
    // Set after writing: a mode without write permission would refuse our own writes.
    await call<void>(sftp, temp, "chmod", (cb) => sftp.fchmod(handle, mode, cb));
  } catch (error) {
    await call<void>(sftp, temp, "close", (cb) => sftp.close(handle, cb)).catch(() => {});
    await call<void>(sftp, temp, "remove", (cb) => sftp.unlink(temp, cb)).catch(() => {});
    throw error;
  }
  await call<void>(sftp, temp, "close", (cb) => sftp.close(handle, cb));
  try {
    if (options.how === "create") await call<void>(sftp, path, "create", (cb) => sftp.rename(temp, path, cb));
    else await call<void>(sftp, path, "replace", (cb) => sftp.ext_openssh_rename(temp, path, cb));
  } catch (error) {
    await call<void>(sftp, temp, "remove", (cb) => sftp.unlink(temp, cb)).catch(() => {});
    const raced = options.how === "create" && (await stat(sftp, path).then(() => true, () => false));
    if (raced) throw new SshMcpError("FILE_EXISTS", `${path} appeared while it was being written`, { cause: error });
    throw error;
  }
}

async function writeAll(sftp: SFTPWrapper, handle: Buffer, path: string, data: Uint8Array, at: number) {
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
