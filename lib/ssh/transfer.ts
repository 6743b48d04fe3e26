/**
 * File and directory transfers between this machine and the remote one over
 * SFTP: many requests in flight (as sftp(1) pipelines), never a partial file
 * or tree under the final name (a temporary name, then rename), and the
 * setuid/setgid/sticky bits dropped from copied modes.
 *
 * Every local action (open, create, mkdir, symlink, rename, remove, list)
 * goes through a {@linkcode LocalFiles} the caller gives, which confines it
 * to the local roots (lib/local_paths.ts); this module never touches a local
 * path itself, and reads and writes only the descriptors handed out.
 *
 * Downloaded trees never plant a way out: symlinks that are absolute or
 * resolve outside the tree are skipped (and reported), and modes are masked
 * with 0o755 at creation, so nothing arrives group/world-writable or
 * setuid/setgid/sticky.
 *
 * @module
 */

import type { SFTPWrapper, Stats } from "../ssh2/mod.ts";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import fs from "node:fs";
import { basename, dirname, join } from "node:path";
import { posix } from "node:path";
import { promisify } from "node:util";
import { outcomeUnknown, SshMcpError } from "../errors.ts";
import { tempName } from "../random.ts";
import {
  call,
  ensureParent,
  listDir,
  remove,
  request,
  requireRegularFile,
  sftpError,
  type SpecialKind,
  stat,
} from "./sftp.ts";
import type { EntryInfo, LocalFiles, OpenedFile } from "../local_paths.ts";

/** A symlink of a downloaded tree that was not created. */
export interface SkippedLink {
  /** Path below the tree's top, `/`-separated. */
  path: string;
  target: string;
}

/** A FIFO, socket or device of a downloaded tree, not copied. */
export interface SkippedSpecial {
  /** Path below the tree's top, `/`-separated. */
  path: string;
  type: SpecialKind;
}

/** Options of a transfer. */
export interface TransferOptions {
  /** Replace an existing destination (a whole directory, for trees). */
  overwrite: boolean;
  /** Read the result back and compare sha256. */
  verify: boolean;
  /** Called with bytes done and total. */
  onProgress?: (done: number, total: number) => void;
  /**
   * Create the destination's missing parent directories (uploads); without it a missing one is
   * `PARENT_MISSING`.
   * @default {false}
   */
  parents?: boolean;
  /** Stops the transfer: no new request is sent, and the call fails at once with the reason. */
  signal?: AbortSignal;
  /** Bytes per request; defaults to {@linkcode TRANSFER_CHUNK}. */
  chunk?: number;
  /** Requests in flight; defaults to {@linkcode UPLOAD_DEPTH} or {@linkcode DOWNLOAD_DEPTH}. */
  depth?: number;
}

/** What a transfer did. */
export interface TransferResult {
  type: "file" | "directory";
  bytes: number;
  /** sha256 of a file, when verified (hashing costs a second pass); null for trees. */
  sha256: string | null;
  mode: number;
  verified: boolean;
  files: number;
  directories: number;
  symlinks: number;
  /**
   * Entries of a downloaded tree not created: symlinks that are absolute or
   * resolve outside the tree, and FIFOs, sockets and devices.
   */
  skipped?: (SkippedLink | SkippedSpecial)[];
  /**
   * Where the replaced directory was left when it could not be removed after
   * the new tree went into place (the transfer itself succeeded).
   */
  leftover?: string;
}

/**
 * Bytes per transfer request: what OpenSSH's sftp-server accepts per message
 * (256 KiB less room for the header, as its limits@openssh.com reply says).
 * On loopback, 200 MiB in one run (median of 3): up 218 MB/s with 32 KiB
 * requests against 323 with these, down 360 against 432. ssh2 splits a
 * request larger than a server allows, so other servers get several smaller
 * ones, never a refusal.
 */
export const TRANSFER_CHUNK = 255 * 1024;
/**
 * Upload requests in flight: 1.5 MiB, inside the 2 MiB SSH channel window
 * OpenSSH grants. More only waits in ssh2's queue, lives long enough to
 * reach V8's old generation, and is freed late. Measured over MCP, 1 GiB:
 * RSS grew 32, 34-36 and 55-57 MiB with 4, 6 and 8 in flight (with 32: ~80),
 * and 200 MiB went up at 388-429, 452-473 and 423-468 MB/s.
 */
export const UPLOAD_DEPTH = 6;
/**
 * Download requests in flight: 4 MiB, so the server always has one queued.
 * Measured over MCP: 200 MiB came down at 443-444 MB/s with 16 and 416-443
 * with 32, while RSS grew 13-16 MiB during 1 GiB with 16 and 51-54 with 32.
 */
export const DOWNLOAD_DEPTH = 16;
/** Entries a tree transfer handles at most, so a huge tree fails before it starts. */
export const MAX_TREE_ENTRIES = 100_000;
/** Directory depth a tree transfer descends at most. */
export const MAX_TREE_DEPTH = 64;

const fsRead = fs.read;
const fsWrite = fs.write;
const fsClose = promisify(fs.close);
const fsFchmod = promisify(fs.fchmod);

/** Uploads a local regular file (a path the `local` side will open) to `remotePath`. */
export async function upload(
  sftp: SFTPWrapper,
  local: LocalFiles,
  localPath: string,
  remotePath: string,
  options: TransferOptions,
): Promise<TransferResult> {
  const file = await local.openRead(localPath);
  const moved = { bytes: 0, total: file.size };
  try {
    const existing = await stat(sftp, remotePath, false, options.signal).catch(missingIsNull);
    if (existing?.type === "directory") {
      throw new SshMcpError("IS_A_DIRECTORY", `${remotePath} is a directory`, {
        hint: "Give the full remote file path, including the file name",
      });
    }
    if (existing?.type === "other") {
      throw new SshMcpError(
        "NOT_A_REGULAR_FILE",
        `Cannot upload to ${remotePath}: it is a ${existing.special ?? "special file"}, not a regular file`,
        {
          hint: "The upload would replace it with a regular file rather than write into it: remove it first " +
            "(ssh_manage_remote action remove) if that is what you want",
        },
      );
    }
    if (existing !== null && !options.overwrite) {
      throw new SshMcpError("FILE_EXISTS", `${remotePath} already exists`, {
        hint: "Pass overwrite=true to replace it",
      });
    }
    if (existing === null) {
      await ensureParent(sftp, remotePath, {
        parents: options.parents ?? false,
        action: "upload to",
        signal: options.signal,
      });
    }
    const temp = posix.join(posix.dirname(remotePath), tempName(posix.basename(remotePath)));
    try {
      await putFile(sftp, file, temp, remotePath, options, moved);
      if (options.overwrite) {
        await call<void>(
          sftp,
          remotePath,
          "replace",
          (cb) => sftp.ext_openssh_rename(temp, remotePath, cb),
          options.signal,
        );
      } else await call<void>(sftp, remotePath, "create", (cb) => sftp.rename(temp, remotePath, cb), options.signal);
    } catch (error) {
      await bounded(call<void>(sftp, remotePath, "remove", (cb) => sftp.unlink(temp, cb)));
      throw error;
    }
  } catch (error) {
    throw cutOff(error, remotePath, moved);
  } finally {
    await fsClose(file.fd).catch(() => {});
  }
  const sha256 = options.verify ? await compareHashes(sftp, local, localPath, remotePath) : null;
  return { ...single(file.size, file.mode), sha256, verified: sha256 !== null };
}

/**
 * Downloads a remote regular file to `localPath` (a destination whose parent
 * was checked). Anything but a regular file is refused before it is opened.
 */
export async function download(
  sftp: SFTPWrapper,
  local: LocalFiles,
  remotePath: string,
  localPath: string,
  options: TransferOptions,
): Promise<TransferResult> {
  const moved = { bytes: 0, total: 0 };
  let mode = 0;
  requireRegularFile(await stat(sftp, remotePath, false, options.signal), "download");
  try {
    const temp = join(dirname(localPath), tempName(basename(localPath)));
    mode = await getFile(sftp, remotePath, local, temp, options, moved);
    try {
      // The destination was checked before; without overwrite, one that appeared since is refused.
      await local.rename(temp, localPath, options.overwrite);
    } catch (error) {
      await local.remove(temp).catch(() => {});
      throw error;
    }
  } catch (error) {
    throw cutOff(error, remotePath, moved);
  }
  const sha256 = options.verify ? await compareHashes(sftp, local, localPath, remotePath) : null;
  return { ...single(moved.total, mode), sha256, verified: sha256 !== null };
}

/** One entry of a tree, relative to its top, parents before children. */
interface TreeEntry {
  /** Path below the top, `/`-separated. */
  rel: string;
  type: "file" | "directory" | "symlink";
  size: number;
  mode: number;
  /** A symlink's target, copied as it is (never followed). */
  target?: string;
}

/**
 * Uploads a local directory tree (`localDir`, checked) to `remotePath`: built
 * under a temporary name beside it and renamed into place when complete.
 * Symlinks are recreated, not followed; FIFOs, devices and sockets refuse
 * the whole transfer before anything is sent. With `overwrite`, an existing
 * remote directory is replaced as a whole.
 */
export async function uploadTree(
  sftp: SFTPWrapper,
  local: LocalFiles,
  localDir: string,
  remotePath: string,
  options: TransferOptions,
): Promise<TransferResult> {
  const top = await topOf(local, localDir);
  const entries = await walkLocal(local, localDir);
  const moved = { bytes: 0, total: entries.reduce((sum, e) => sum + e.size, 0) };
  const existing = await stat(sftp, remotePath, true).catch(missingIsNull);
  checkTreeDestination(existing === null ? null : existing.type === "directory", remotePath, options);
  if (existing === null) {
    await ensureParent(sftp, remotePath, {
      parents: options.parents ?? false,
      action: "upload to",
      signal: options.signal,
    });
  }
  const stage = posix.join(posix.dirname(remotePath), tempName(posix.basename(remotePath)));
  // Failures name the final path of each entry, never the staging directory's temporary name.
  const shown = (rel: string) => rel === "" ? remotePath : posix.join(remotePath, rel);
  let leftover: string | null = null;
  try {
    await call<void>(sftp, remotePath, "create directory", (cb) => sftp.mkdir(stage, { mode: 0o700 }, cb));
    try {
      for (const e of entries) {
        const to = posix.join(stage, e.rel);
        if (e.type === "directory") {
          await call<void>(sftp, shown(e.rel), "create directory", (cb) => sftp.mkdir(to, { mode: 0o700 }, cb));
        } else if (e.type === "symlink") {
          await call<void>(sftp, shown(e.rel), "create symlink", (cb) => sftp.symlink(e.target!, to, cb));
        } else {
          const file = await local.openRead(join(localDir, ...e.rel.split("/")));
          try {
            await putFile(sftp, file, to, shown(e.rel), options, moved);
          } finally {
            await fsClose(file.fd).catch(() => {});
          }
        }
      }
      // Deepest first, and only now: a directory without write permission would refuse its own contents.
      for (const e of entries.toReversed()) {
        if (e.type !== "directory") continue;
        const to = posix.join(stage, e.rel);
        await call<void>(sftp, shown(e.rel), "chmod", (cb) => sftp.chmod(to, e.mode, cb));
      }
      await call<void>(sftp, remotePath, "chmod", (cb) => sftp.chmod(stage, top.mode & 0o777, cb));
      leftover = await swapIn(
        existing !== null,
        remotePath,
        (from, to) => call<void>(sftp, remotePath, "rename", (cb) => sftp.rename(from, to, cb)),
        (path) => remove(sftp, path, { recursive: true }),
        (path) => posix.join(posix.dirname(path), tempName(posix.basename(path))),
        stage,
      );
    } catch (error) {
      await bounded(remove(sftp, stage, { recursive: true }), 10_000);
      throw error;
    }
  } catch (error) {
    throw cutOff(error, remotePath, moved);
  }
  if (options.verify) await compareTrees(sftp, local, localDir, remotePath, entries);
  return { ...treeResult(entries, moved.total, top.mode & 0o777, options.verify), ...leftoverOf(leftover) };
}

/**
 * Downloads a remote directory tree to `localPath` (a destination whose parent
 * was checked): built under a temporary name beside it, then renamed into
 * place. Names the server lists that could step outside (`..`, separators)
 * refuse the whole transfer before anything is written. Symlinks that are
 * absolute or resolve outside the tree, and FIFOs, sockets and devices (never
 * opened: a FIFO would block the server's sftp-server), are not created and
 * are listed in `skipped`; modes are masked with 0o755 when each file or
 * directory is created (directories keep owner rwx so the tree can be
 * filled), and nothing is chmod-ed by path afterwards.
 */
export async function downloadTree(
  sftp: SFTPWrapper,
  local: LocalFiles,
  remotePath: string,
  localPath: string,
  options: TransferOptions & { exists: boolean },
): Promise<TransferResult> {
  const top = await stat(sftp, remotePath, false, options.signal);
  const { entries: walked, special } = await walkRemote(sftp, remotePath);
  const { kept: entries, skipped: links } = splitLinks(walked);
  const skipped = [...links, ...special];
  const moved = { bytes: 0, total: entries.reduce((sum, e) => sum + e.size, 0) };
  const stage = join(dirname(localPath), tempName(basename(localPath)));
  const topMode = dirMode(top.mode);
  let leftover: string | null = null;
  try {
    await local.mkdir(stage, topMode);
    try {
      for (const e of entries) {
        const to = join(stage, ...e.rel.split("/"));
        if (e.type === "directory") await local.mkdir(to, dirMode(e.mode));
        else if (e.type === "symlink") await local.symlink(e.target!, to);
        else await getFile(sftp, posix.join(remotePath, e.rel), local, to, options, moved);
      }
      leftover = await swapIn(
        options.exists,
        localPath,
        (from, to) => local.rename(from, to, false),
        (path) => local.removeTree(path),
        (path) => join(dirname(path), tempName(basename(path))),
        stage,
      );
    } catch (error) {
      await local.removeTree(stage).catch(() => {});
      throw error;
    }
  } catch (error) {
    throw cutOff(error, remotePath, moved);
  }
  if (options.verify) await compareTrees(sftp, local, localPath, remotePath, entries);
  return {
    ...treeResult(entries, moved.total, topMode & ~local.umask() & 0o777, options.verify),
    skipped,
    ...leftoverOf(leftover),
  };
}

/** A downloaded directory's mode: no group/world write or special bits, owner always rwx. */
function dirMode(remote: number): number {
  return (remote & 0o755) | 0o700;
}

/**
 * Splits a remote tree's symlinks into those safe to create and those not.
 * A link is kept only when its target is relative and made of some `..`
 * (no more than the link's own depth below the tree's top) followed by
 * plain names only: `../lib/x.so`, `sibling/file`, `..`. Anything else is
 * skipped: an absolute target, too many `..`, and any `..` after a plain
 * name (`a/../b`, `up/..`).
 *
 * Why so strict: the leading `..` climb through the real directories the
 * download creates, so they stay at or below the top; plain names then only
 * descend, or pass through other kept links, which by the same rule land
 * inside the tree again. A `..` after a name is where that breaks: whether
 * the name is a link, and so where `..` leads from it, depends on how the
 * local file system compares names. On a case-insensitive or
 * normalisation-insensitive one (macOS APFS by default, Windows) `X/..`
 * goes through a link named `x`, which no check on the remote names can
 * see. This rule never asks whether a name is a link, so it holds there.
 */
export function splitLinks<E extends { rel: string; type: string; target?: string }>(
  entries: E[],
): { kept: E[]; skipped: SkippedLink[] } {
  const kept: E[] = [];
  const skipped: SkippedLink[] = [];
  for (const e of entries) {
    if (e.type !== "symlink") kept.push(e);
    else if (staysInside(e.rel, e.target ?? "")) kept.push(e);
    else skipped.push({ path: e.rel, target: e.target ?? "" });
  }
  return { kept, skipped };
}

function staysInside(rel: string, target: string): boolean {
  if (target === "" || target.includes("\0")) return false;
  // Windows also takes `\` as a separator and `C:` as a drive.
  if (Deno.build.os === "windows" && /[\\:]/.test(target)) return false;
  if (target.startsWith("/")) return false;
  let up = 0;
  let named = false;
  for (const part of target.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (named) return false;
      up++;
    } else named = true;
  }
  // The directories above the link, below the top: as many `..` as that land at the top at most.
  return up <= rel.split("/").length - 1;
}

/** Refuses a tree destination that exists without overwrite, or is not a directory. */
function checkTreeDestination(
  isDirectory: boolean | null,
  path: string,
  options: { overwrite: boolean },
): void {
  if (isDirectory === null) return;
  if (!options.overwrite) {
    throw new SshMcpError("FILE_EXISTS", `${path} already exists`, {
      hint: "Pass overwrite=true to replace the whole directory",
    });
  }
  if (!isDirectory) {
    throw new SshMcpError("NOT_A_DIRECTORY", `${path} exists and is not a directory`, {
      hint: "Remove it first, or choose another destination",
    });
  }
}

/**
 * Renames the finished `stage` to `path`. A directory already there is first
 * moved aside, and put back if the swap fails; it is removed once the new one
 * is in place.
 */
async function swapIn(
  exists: boolean,
  path: string,
  rename: (from: string, to: string) => Promise<void>,
  removeTree: (path: string) => Promise<unknown>,
  asideName: (path: string) => string,
  stage: string,
): Promise<string | null> {
  if (!exists) {
    await rename(stage, path);
    return null;
  }
  const aside = asideName(path);
  await rename(path, aside);
  try {
    await rename(stage, path);
  } catch (error) {
    await rename(aside, path).catch(() => {});
    throw error;
  }
  // The new tree is in place: failing to remove the old one is not a failed
  // transfer, but the caller must say where the old copy was left.
  try {
    await removeTree(aside);
    return null;
  } catch {
    return aside;
  }
}

function leftoverOf(path: string | null): { leftover?: string } {
  return path === null ? {} : { leftover: path };
}

/** The top of a local tree, as an lstat in its parent describes it. */
async function topOf(local: LocalFiles, dir: string): Promise<EntryInfo> {
  // Not a listing of the parent: that may be a root with a great many entries.
  const entry = await local.entry(dir);
  if (entry === null || entry.type !== "directory") {
    throw new SshMcpError("PATH_NOT_ALLOWED", `${dir} is no longer a directory`, {
      hint: "Check the local path and try again",
    });
  }
  return entry;
}

/** Walks a local tree (confined listings, never following symlinks); refuses special files and oversized trees. */
async function walkLocal(local: LocalFiles, top: string): Promise<TreeEntry[]> {
  const entries: TreeEntry[] = [];
  const walk = async (dir: string, rel: string, depth: number) => {
    // Only as many as could still fit, plus one to tell that there are too many.
    for (const info of await local.list(dir, MAX_TREE_ENTRIES - entries.length)) {
      if (entries.length >= MAX_TREE_ENTRIES) throw tooBig(top);
      const path = join(dir, info.name);
      const entryRel = rel === "" ? info.name : `${rel}/${info.name}`;
      if (info.type === "symlink") {
        entries.push({ rel: entryRel, type: "symlink", size: 0, mode: 0, target: info.target });
      } else if (info.type === "directory") {
        if (depth >= MAX_TREE_DEPTH) throw tooDeep(top);
        entries.push({ rel: entryRel, type: "directory", size: 0, mode: info.mode & 0o777 });
        await walk(path, entryRel, depth + 1);
      } else if (info.type === "file") {
        entries.push({ rel: entryRel, type: "file", size: info.size, mode: info.mode & 0o777 });
      } else {
        throw new SshMcpError("PATH_NOT_ALLOWED", `${path} is not a regular file, directory or symlink`, {
          hint: "Trees with FIFOs, sockets or devices are not transferred; move them out first",
        });
      }
    }
  };
  await walk(top, "", 0);
  return entries;
}

/** Walks a remote tree, setting special files aside; refuses unsafe names and oversized trees. */
async function walkRemote(
  sftp: SFTPWrapper,
  top: string,
): Promise<{ entries: TreeEntry[]; special: SkippedSpecial[] }> {
  const { entries: listed, truncated } = await listDir(sftp, top, { depth: MAX_TREE_DEPTH, max: MAX_TREE_ENTRIES });
  if (truncated) throw tooBig(top);
  const unsafe = Deno.build.os === "windows" ? /[\\/\0:*?"<>|]/ : /[/\0]/;
  const special: SkippedSpecial[] = [];
  const entries = listed.flatMap((e): TreeEntry[] => {
    if (e.name === "" || e.name === "." || e.name === ".." || unsafe.test(e.name)) {
      throw new SshMcpError("PATH_NOT_ALLOWED", `The server listed an unsafe name ${JSON.stringify(e.name)}`, {
        hint: "Names with separators or '..' are never written locally",
      });
    }
    if (e.type === "other") {
      special.push({ path: posix.relative(top, e.path), type: e.special ?? "special file" });
      return [];
    }
    if (e.type === "directory" && e.depth >= MAX_TREE_DEPTH) throw tooDeep(top);
    if (e.type === "symlink" && e.target === undefined) {
      throw new SshMcpError("SFTP_FAILURE", `Cannot read the symlink ${e.path}`);
    }
    return [{
      rel: posix.relative(top, e.path),
      type: e.type,
      size: e.type === "file" ? e.size : 0,
      mode: e.mode & 0o777,
      target: e.target,
    }];
  });
  return { entries, special };
}

function tooBig(top: string): SshMcpError {
  return new SshMcpError("LIMIT_EXCEEDED", `${top} has more than ${MAX_TREE_ENTRIES} entries`, {
    hint: "Transfer its subdirectories one by one, or pack it with tar through ssh_execute",
  });
}

function tooDeep(top: string): SshMcpError {
  return new SshMcpError("LIMIT_EXCEEDED", `${top} is nested deeper than ${MAX_TREE_DEPTH} levels`, {
    hint: "Transfer a subdirectory, or pack it with tar through ssh_execute",
  });
}

function single(bytes: number, mode: number): Omit<TransferResult, "sha256" | "verified"> {
  return { type: "file", bytes, mode, files: 1, directories: 0, symlinks: 0 };
}

function treeResult(entries: TreeEntry[], bytes: number, mode: number, verified: boolean): TransferResult {
  const count = (type: TreeEntry["type"]) => entries.filter((e) => e.type === type).length;
  return {
    type: "directory",
    bytes,
    sha256: null,
    mode,
    verified,
    files: count("file"),
    directories: count("directory") + 1,
    symlinks: count("symlink"),
  };
}

/**
 * Writes the open local `file` to the new remote file `to` (created exclusively), mode set at the
 * end. Failures name `shown`, the final path: `to` is a temporary name.
 */
async function putFile(
  sftp: SFTPWrapper,
  file: OpenedFile,
  to: string,
  shown: string,
  options: TransferOptions,
  moved: { bytes: number; total: number },
): Promise<void> {
  const handle = await call<Buffer>(
    sftp,
    shown,
    "create",
    // No cancel signal on an open: a handle answered after the call gave up would never be closed.
    (cb) => sftp.open(to, "wx", { mode: 0o600 }, cb),
  );
  const what = { path: shown, action: "write" };
  try {
    await pump(
      {
        size: file.size,
        depth: UPLOAD_DEPTH,
        read: (buf, len, pos, cb) => fsRead(file.fd, buf, 0, len, pos, cb),
        write: (buf, len, pos, cb) =>
          request<void>(sftp, what, (done) => sftp.write(handle, buf, 0, len, pos, done), (err) => cb(err)),
      },
      options,
      moved,
    );
    // Set after writing: a mode without write permission would refuse our own writes.
    await call<void>(sftp, shown, "chmod", (cb) => sftp.fchmod(handle, file.mode, cb), options.signal);
  } catch (error) {
    throw await diskFull(sftp, to, shown, error);
  } finally {
    await bounded(call<void>(sftp, shown, "close", (cb) => sftp.close(handle, cb)));
  }
}

/** Copies the remote regular file `from` to the new local file `to`; returns its mode. */
async function getFile(
  sftp: SFTPWrapper,
  from: string,
  local: LocalFiles,
  to: string,
  options: TransferOptions,
  moved: { bytes: number; total: number },
): Promise<number> {
  // No cancel signal on an open: a handle answered after the call gave up would never be closed.
  const handle = await call<Buffer>(sftp, from, "open", (cb) => sftp.open(from, "r", cb));
  const what = { path: from, action: "read" };
  try {
    const info = await call<Stats>(sftp, from, "stat", (cb) => sftp.fstat(handle, cb), options.signal);
    // What was opened, if the path changed since it was listed or stat-ed.
    if (!info.isFile()) {
      const kind = info.isDirectory() ? "directory" : info.isFIFO() ? "FIFO" : "special file";
      throw new SshMcpError(
        info.isDirectory() ? "IS_A_DIRECTORY" : "NOT_A_REGULAR_FILE",
        `Cannot download ${from}: it is a ${kind}, not a regular file`,
        { hint: info.isDirectory() ? "Pass recursive=true to download a directory" : "Only regular files are copied" },
      );
    }
    if (moved.total === 0) moved.total = info.size; // a single file: its size is the total
    // Never setuid/setgid/sticky or group/world-writable here, and no more than the umask allows.
    const mode = info.mode & 0o755 & ~local.umask();
    const fd = await local.create(to);
    try {
      await pump(
        {
          size: info.size,
          depth: DOWNLOAD_DEPTH,
          read: (buf, len, pos, cb) =>
            request<number>(sftp, what, (done) => sftp.read(handle, buf, 0, len, pos, done), (err, n) => cb(err, n)),
          write: (buf, len, pos, cb) => writeAll(fd, buf, 0, len, pos, cb),
        },
        options,
        moved,
      );
      await fsFchmod(fd, mode);
      await fsClose(fd);
    } catch (error) {
      await fsClose(fd).catch(() => {});
      await local.remove(to).catch(() => {});
      throw error;
    }
    return mode;
  } finally {
    await bounded(call<void>(sftp, from, "close", (cb) => sftp.close(handle, cb)));
  }
}

type Done = (err?: unknown, n?: number) => void;

/** The two ends of one file copy, callback style: a promise per request costs measurable throughput. */
interface Ends {
  size: number;
  /** Requests in flight unless the options say otherwise. */
  depth: number;
  read(buf: Buffer, len: number, pos: number, cb: Done): void;
  write(buf: Buffer, len: number, pos: number, cb: Done): void;
}

/**
 * Copies `ends.size` bytes with `ends.depth` requests outstanding, each slot
 * reading a chunk and writing it at the same offset before taking the next.
 * A short read continues where it stopped; a read of nothing means the file
 * shrank. On an abort it fails at once and sends nothing more: ssh2 never
 * answers requests on a dead connection, so it cannot wait for them.
 *
 * A slot's buffer is lent to ssh2 until ssh2 itself calls the request back
 * (../ssh2/sftp_alloc.ts sends it without copying, and a read answer is
 * copied straight into it): a request that failed or gave up early (a
 * watchdog, an abort) may still be sending from or receiving into it, so
 * such a buffer is abandoned, never reused or pooled.
 */
function pump(ends: Ends, options: TransferOptions, moved: { bytes: number; total: number }): Promise<void> {
  const chunk = options.chunk ?? TRANSFER_CHUNK;
  const signal = options.signal;
  return new Promise<void>((resolve, reject) => {
    let next = 0;
    let active = 0;
    let failure: { error: unknown } | null = null;
    const settle = () => {
      if (active > 0 && failure === null) return;
      signal?.removeEventListener("abort", onAbort);
      if (failure !== null) reject(failure.error);
      else resolve();
    };
    const fail = (error: unknown) => {
      if (failure !== null) return;
      failure = { error };
      settle();
    };
    const onAbort = () => fail(signal!.reason);
    const take = (buf: Buffer) => {
      if (failure !== null) return;
      if (next >= ends.size) return settle();
      const pos = next;
      const len = Math.min(chunk, ends.size - pos);
      next += len;
      active++;
      step(buf, pos, len);
    };
    const step = (buf: Buffer, pos: number, left: number) => {
      if (failure !== null) return;
      ends.read(buf, left, pos, (err, n) => {
        if (failure !== null) return;
        if (err) return fail(err);
        if (!n) {
          return fail(
            new SshMcpError("SFTP_FAILURE", "The source file shrank during the transfer", {
              hint: "Retry when the file is no longer being written",
            }),
          );
        }
        ends.write(buf, n, pos, (err) => {
          if (failure !== null) return;
          if (err) return fail(err);
          moved.bytes += n;
          options.onProgress?.(moved.bytes, moved.total);
          if (n < left) return step(buf, pos + n, left - n);
          active--;
          take(buf);
        });
      });
    };
    if (signal?.aborted) return reject(signal.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    const slots = Math.min(options.depth ?? ends.depth, Math.ceil(ends.size / chunk));
    if (slots === 0) return settle();
    for (let i = 0; i < slots; i++) take(Buffer.allocUnsafe(chunk));
  });
}

function writeAll(fd: number, buf: Buffer, off: number, len: number, pos: number, cb: Done): void {
  fsWrite(fd, buf, off, len, pos, (err, written) => {
    if (err) return cb(err);
    if (written < len) return writeAll(fd, buf, off + written, len - written, pos + written, cb);
    cb(undefined, len);
  });
}

/**
 * SFTP v3 reports a full disk as a bare failure; when a write fails that way,
 * ask the server (statvfs@openssh.com) whether the file system is full, so the
 * agent hears the cause rather than "failure".
 */
async function diskFull(sftp: SFTPWrapper, path: string, shown: string, error: unknown): Promise<unknown> {
  if (!(error instanceof SshMcpError) || error.code !== "SFTP_FAILURE") return error;
  const dir = posix.dirname(path);
  const space = await within(
    call<{ bavail: number; frsize: number }>(sftp, dir, "statvfs", (cb) => sftp.ext_openssh_statvfs(dir, cb))
      .catch(() => null),
    2000,
  );
  if (space === null || space.bavail * space.frsize >= 1024 * 1024) return error;
  return new SshMcpError("REMOTE_DISK_FULL", `No space left on the remote disk writing ${shown}`, {
    hint: "Free space on the remote host (ssh_execute 'df -h'), or upload somewhere else",
    cause: error,
  });
}

/** Any failure of a transfer as a coded error: SFTP statuses, and local I/O (a full disk must say so). */
function coded(error: unknown, path: string): SshMcpError {
  if (error instanceof SshMcpError) return error;
  const code = (error as { code?: unknown })?.code;
  if (typeof code === "number") return sftpError(error, path, "transfer");
  const message = error instanceof Error ? error.message : String(error);
  if (code === "ENOSPC" || code === "EDQUOT") {
    return new SshMcpError("LOCAL_DISK_FULL", `No space left on this machine's disk (${message})`, {
      hint: "Free space locally, or download into another allowed directory",
      cause: error,
    });
  }
  if (code === "EACCES" || code === "EPERM") {
    return new SshMcpError("PATH_NOT_ALLOWED", `Permission denied on this machine (${message})`, { cause: error });
  }
  return new SshMcpError("INTERNAL", `Local I/O failed: ${message}`, { cause: error });
}

/**
 * A transfer that failed after bytes moved: its clean-up may not have reached
 * a lost connection (a temporary file beside the destination) and a lost
 * rename may have landed, so it is never called retryable.
 */
function cutOff(error: unknown, what: string, moved: { bytes: number; total: number }): SshMcpError {
  const base = coded(error, what);
  if (moved.bytes === 0) return base;
  // A retryable cause is a lost connection: the clean-up could not run.
  const left = base.retryable ? "" : "; nothing left under the final name";
  const cut = new SshMcpError(base.code, `${base.message} (after ${moved.bytes} of ${moved.total} bytes${left})`, {
    hint: base.hint,
    cause: error,
    retryable: base.retryable,
  });
  return base.retryable ? outcomeUnknown(cut, TRANSFER_OUTCOME_UNKNOWN) : cut;
}

const TRANSFER_OUTCOME_UNKNOWN = "The transfer was cut after data moved: check the destination, and any temporary " +
  "file beside it, before sending it again";

function missingIsNull(e: SshMcpError): null {
  if (e.code === "SFTP_NO_SUCH_FILE") return null;
  throw e;
}

/**
 * Waits for a clean-up at most `ms`: on a dead connection ssh2 never answers,
 * and the caller must hear about the failure rather than wait for it.
 */
async function bounded(work: Promise<unknown>, ms = 2000): Promise<void> {
  await within(work.catch(() => null), ms);
}

/** `work`'s value, or null if it takes longer than `ms`. */
function within<T>(work: Promise<T>, ms: number): Promise<T | null> {
  // Unref'd, so a pending timer never holds the process open.
  const timeout = new Promise<null>((resolve) => Deno.unrefTimer(Number(setTimeout(() => resolve(null), ms))));
  return Promise.race([work, timeout]);
}

/** Compares every file of a transferred tree by sha256; throws at the first difference. */
async function compareTrees(
  sftp: SFTPWrapper,
  local: LocalFiles,
  localTop: string,
  remoteTop: string,
  entries: TreeEntry[],
): Promise<void> {
  for (const e of entries) {
    if (e.type !== "file") continue;
    await compareHashes(sftp, local, join(localTop, ...e.rel.split("/")), posix.join(remoteTop, e.rel));
  }
}

/** Hashes both copies; returns the sha256 if they agree, else throws. */
async function compareHashes(
  sftp: SFTPWrapper,
  local: LocalFiles,
  localPath: string,
  remotePath: string,
): Promise<string> {
  const [here, there] = await Promise.all([hashLocal(local, localPath), hashRemote(sftp, remotePath)]);
  if (here !== there) {
    throw new SshMcpError("SFTP_FAILURE", `${localPath} (sha256 ${here}) and ${remotePath} (sha256 ${there}) differ`, {
      hint: "Retry the transfer",
    });
  }
  return here;
}

async function hashLocal(local: LocalFiles, path: string): Promise<string> {
  const file = await local.openRead(path);
  try {
    const hash = createHash("sha256");
    const buf = Buffer.allocUnsafe(1024 * 1024);
    const read = promisify(fs.read);
    for (let pos = 0;;) {
      const { bytesRead: n } = await read(file.fd, buf, 0, buf.length, pos);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
      pos += n;
    }
    return hash.digest("hex");
  } finally {
    await fsClose(file.fd).catch(() => {});
  }
}

async function hashRemote(sftp: SFTPWrapper, path: string): Promise<string> {
  const handle = await call<Buffer>(sftp, path, "open", (cb) => sftp.open(path, "r", cb));
  try {
    const size = (await call<Stats>(sftp, path, "stat", (cb) => sftp.fstat(handle, cb))).size;
    const hash = createHash("sha256");
    const buf = Buffer.allocUnsafe(TRANSFER_CHUNK);
    for (let pos = 0; pos < size;) {
      const len = Math.min(buf.length, size - pos);
      const n = await call<number>(sftp, path, "read", (cb) => sftp.read(handle, buf, 0, len, pos, cb));
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
      pos += n;
    }
    return hash.digest("hex");
  } finally {
    await bounded(call<void>(sftp, path, "close", (cb) => sftp.close(handle, cb)));
  }
}
