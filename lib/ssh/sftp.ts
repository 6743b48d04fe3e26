/**
 * Remote file operations over one SFTP session: stat, ranged and pipelined
 * reads, atomic writes (temp file in the same directory, then rename), and
 * the small operations (mkdir -p, remove, rename, chmod). FIFOs, sockets and
 * devices are refused before they are opened. Each request goes through
 * ./sftp_request.ts: coded errors, and a deadline per channel.
 *
 * @module
 */

import type { FileEntryWithStats, SFTPWrapper, Stats } from "../ssh2/mod.ts";
import { Buffer } from "node:buffer";
import { posix } from "node:path";
import { SshMcpError } from "../errors.ts";
import { tempName } from "../random.ts";
import { call } from "./sftp_request.ts";
export { sftpOpenError } from "./sftp_open.ts";

export {
  call,
  DEFAULT_REQUEST_DEADLINE_MS,
  failRequestsWhen,
  isAbandoned,
  request,
  setRequestDeadline,
  sftpError,
} from "./sftp_request.ts";

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
        "(ssh_manage_remote action remove) if that is what you want, or write into it with ssh_execute",
  });
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

/** The canonical absolute form of `path` as the server resolves it (symlinks followed). */
export function realpath(sftp: SFTPWrapper, path: string): Promise<string> {
  return call<string>(sftp, path, "resolve", (cb) => sftp.realpath(path, cb));
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
  // No cancel signal on an open: a handle answered after the call gave up would never be closed (an fd
  // held on the long-lived channel, a temp file left behind). The channel's deadline bounds it; the
  // next request sees the cancel and the `finally` closes the handle.
  const handle = await call<Buffer>(sftp, path, "open", (cb) => sftp.open(path, "r", cb));
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
  /**
   * Create missing parent directories (as `mkdir -p`); without it a missing one is `PARENT_MISSING`.
   * @default {false}
   */
  parents?: boolean;
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
  if (existing === null) await ensureParent(sftp, path, { parents: options.parents ?? false, action: "write", signal });
  if (options.how === "append") {
    const handle = await call<Buffer>(
      sftp,
      path,
      "open",
      (cb) => sftp.open(path, "a", { mode: options.mode ?? 0o644 }, cb), // no signal: see readRange
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
  // Every request on the temporary file reports `path` when it fails: the temporary name is ours,
  // and an agent told it would look for a file that is gone.
  const handle = await call<Buffer>(
    sftp,
    path,
    "create",
    (cb) => sftp.open(temp, "wx", { mode: 0o600 }, cb), // no signal: see readRange
  );
  try {
    await writeAll(sftp, handle, path, data, 0, signal);
    // Set after writing: a mode without write permission would refuse our own writes.
    await call<void>(sftp, path, "chmod", (cb) => sftp.fchmod(handle, mode, cb), signal);
  } catch (error) {
    await call<void>(sftp, path, "close", (cb) => sftp.close(handle, cb)).catch(() => {});
    await call<void>(sftp, path, "remove", (cb) => sftp.unlink(temp, cb)).catch(() => {});
    throw error;
  }
  await call<void>(sftp, path, "close", (cb) => sftp.close(handle, cb), signal);
  try {
    if (options.how === "create") {
      await call<void>(sftp, path, "create", (cb) => sftp.rename(temp, path, cb), signal);
    } else await call<void>(sftp, path, "replace", (cb) => sftp.ext_openssh_rename(temp, path, cb), signal);
  } catch (error) {
    await call<void>(sftp, path, "remove", (cb) => sftp.unlink(temp, cb)).catch(() => {});
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

/**
 * Creates a directory, and its missing parents when `parents` (as `mkdir -p`:
 * `mode` applies to the last one, the parents get 0o755 less the server's
 * umask, an existing directory is no error, and a component that exists and
 * is not a directory, or a symlink to none, is `NOT_A_DIRECTORY`).
 */
export async function mkdir(
  sftp: SFTPWrapper,
  path: string,
  options: { parents: boolean; mode?: number; signal?: AbortSignal },
) {
  const make = (p: string, mode: number) =>
    call<void>(sftp, p, "create directory", (cb) => sftp.mkdir(p, { mode }, cb), options.signal);
  if (!options.parents) return await make(path, options.mode ?? 0o755);
  const parts = posix.normalize(path).split("/").filter((x) => x !== "" && x !== ".");
  let current = path.startsWith("/") ? "/" : "";
  for (const [i, part] of parts.entries()) {
    current = current === "" ? part : posix.join(current, part);
    const mode = i === parts.length - 1 ? options.mode ?? 0o755 : 0o755;
    if ((await statOrNull(sftp, current, options.signal))?.type === "directory") continue;
    await make(current, mode).catch(async (error) => {
      // Made meanwhile by someone else is as good; anything else in the way is not a directory.
      const now = await statOrNull(sftp, current, options.signal);
      if (now?.type === "directory") return;
      const there = now ?? await stat(sftp, current, true, options.signal).catch(() => null); // a dangling link
      if (there === null) throw error;
      throw notADirectory(path, current);
    });
  }
}

/** Stats a path following symlinks; null when it does not exist (or a component is not a directory). */
async function statOrNull(sftp: SFTPWrapper, path: string, signal?: AbortSignal): Promise<RemoteStat | null> {
  return await stat(sftp, path, false, signal).catch((e: SshMcpError) => {
    if (e.code === "SFTP_NO_SUCH_FILE") return null;
    throw e;
  });
}

function notADirectory(path: string, component: string): SshMcpError {
  return new SshMcpError("NOT_A_DIRECTORY", `Cannot create ${path}: ${component} is not a directory`, {
    hint: `${component} exists as a file (or a link to none): choose another path, or remove it first`,
  });
}

/**
 * Makes sure the directory `path` goes into exists before anything is
 * created there: with `parents`, missing directories are made (as `mkdir
 * -p`); without it, a missing one is `PARENT_MISSING`, naming `path` and the
 * first directory that is missing. A component that is not a directory is
 * `NOT_A_DIRECTORY` either way. Costs one stat when the parent is there.
 *
 * @param path The file or directory about to be created (the name the agent gave, expanded).
 * @param options `action` is the verb of the messages ("write", "upload").
 */
export async function ensureParent(
  sftp: SFTPWrapper,
  path: string,
  options: { parents: boolean; action: string; signal?: AbortSignal },
): Promise<void> {
  const parent = posix.dirname(path);
  const found = await statOrNull(sftp, parent, options.signal);
  if (found?.type === "directory") return;
  // Missing, or not a directory: find which component, from the top.
  const parts = parent.split("/");
  let missing: string | null = null;
  for (let i = 1; i <= parts.length; i++) {
    const prefix = parts.slice(0, i).join("/");
    if (prefix === "") continue; // the root
    const st = await statOrNull(sftp, prefix, options.signal);
    if (st === null) {
      missing = prefix;
      break;
    }
    if (st.type !== "directory") {
      throw new SshMcpError("NOT_A_DIRECTORY", `Cannot ${options.action} ${path}: ${prefix} is not a directory`, {
        hint: `${prefix} exists as a file (or a link to none): choose another path, or remove it first`,
      });
    }
  }
  if (missing === null) return; // appeared meanwhile
  if (options.parents) return await mkdir(sftp, parent, { parents: true, signal: options.signal });
  throw new SshMcpError(
    "PARENT_MISSING",
    `Cannot ${options.action} ${path}: the directory ${missing} does not exist`,
    { hint: "Pass parents=true to create the missing directories, or check the path" },
  );
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
