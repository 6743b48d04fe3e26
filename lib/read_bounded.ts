/**
 * Reading a small local file named by configuration or by an agent (a
 * private key, known_hosts, the config file) without blocking and without
 * reading without end.
 *
 * A path can name a FIFO (opening it blocks until a writer comes; under
 * Deno that promise never settles), a device (`/dev/zero` never ends, and
 * opening some devices has side effects) or a huge file. So the path is
 * stat-ed first and anything but a regular file is refused before it is
 * opened; the open itself is non-blocking (O_NONBLOCK works under the
 * shipped permissions, unlike /dev/fd tricks), and the opened descriptor is
 * checked again, so a FIFO swapped in between cannot hang the read either.
 * At most `maxBytes + 1` bytes are ever read.
 *
 * @module
 */

import fs from "node:fs";
import { Buffer } from "node:buffer";

/** Why a file was not read. */
export type BoundedReadProblem = "not-found" | "permission-denied" | "not-a-regular-file" | "too-large" | "unreadable";

/** A refused or failed read; `message` is the reason alone (e.g. "it is a FIFO"), for the caller to prefix. */
export class BoundedReadError extends Error {
  /** What went wrong, for callers that map it to their own codes. */
  readonly problem: BoundedReadProblem;
  /** The path as given. */
  readonly path: string;

  /** Creates the error; `reason` completes "Cannot read <path>: ...". */
  constructor(problem: BoundedReadProblem, path: string, reason: string, options?: { cause?: unknown }) {
    super(reason, options);
    this.name = "BoundedReadError";
    this.problem = problem;
    this.path = path;
  }
}

/** Options of {@linkcode readBoundedFile}. */
export interface BoundedReadOptions {
  /**
   * Largest file accepted, in bytes.
   * @default 1048576
   */
  maxBytes?: number;
  /** Ends the wait (the read is abandoned, its descriptor closed when it settles). */
  signal?: AbortSignal;
}

const CHUNK = 64 * 1024;

/** One mebibyte: the default cap, far above any key or config file. */
export const ONE_MIB = 1024 * 1024;

/**
 * Reads a regular file of at most `maxBytes` bytes. Throws
 * {@linkcode BoundedReadError} for a missing, forbidden, special or
 * oversized file; rejects with the signal's reason when it aborts first.
 *
 * @example
 * ```ts
 * const bytes = await readBoundedFile("/home/me/.ssh/id_ed25519", { maxBytes: ONE_MIB });
 * ```
 */
export function readBoundedFile(path: string, options: BoundedReadOptions = {}): Promise<Uint8Array> {
  const maxBytes = options.maxBytes ?? ONE_MIB;
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(signal.reason);
  const read = readChecked(path, maxBytes);
  if (signal === undefined) return read;
  return new Promise<Uint8Array>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    read.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

async function readChecked(path: string, maxBytes: number): Promise<Uint8Array> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path); // follows links: a key may well be a symlink to the real file
  } catch (error) {
    throw mapOpenError(error, path);
  }
  refuseUnlessSmallFile(path, fileKind(info), info.size, maxBytes);
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (error) {
    throw mapOpenError(error, path);
  }
  try {
    const opened = await handle.stat();
    refuseUnlessSmallFile(path, kindOfStats(opened), opened.size, maxBytes);
    // Read in chunks until the end or one byte past the cap: a file that grew since the stat is caught too.
    const chunks: Uint8Array[] = [];
    let total = 0;
    while (total <= maxBytes) {
      const chunk = Buffer.alloc(Math.min(CHUNK, maxBytes + 1 - total));
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      chunks.push(chunk.subarray(0, bytesRead));
      total += bytesRead;
    }
    if (total > maxBytes) throw tooLarge(path, maxBytes);
    return new Uint8Array(Buffer.concat(chunks, total));
  } catch (error) {
    if (error instanceof BoundedReadError) throw error;
    throw new BoundedReadError("unreadable", path, "it cannot be read", { cause: error });
  } finally {
    await handle.close().catch(() => {});
  }
}

type Kind =
  | "file"
  | "directory"
  | "symbolic link"
  | "FIFO"
  | "character device"
  | "block device"
  | "socket"
  | "special file";

/** What a local file is, in the words our errors use ("it is a FIFO"); a symbolic link only from lstat. */
export function fileKind(info: Deno.FileInfo): Kind {
  if (info.isFile) return "file";
  if (info.isDirectory) return "directory";
  if (info.isSymlink) return "symbolic link";
  if (info.isFifo) return "FIFO";
  if (info.isCharDevice) return "character device";
  if (info.isBlockDevice) return "block device";
  if (info.isSocket) return "socket";
  return "special file";
}

function kindOfStats(stats: fs.Stats): Kind {
  if (stats.isFile()) return "file";
  if (stats.isDirectory()) return "directory";
  if (stats.isFIFO()) return "FIFO";
  if (stats.isCharacterDevice()) return "character device";
  if (stats.isBlockDevice()) return "block device";
  if (stats.isSocket()) return "socket";
  return "special file";
}

function refuseUnlessSmallFile(path: string, kind: Kind, size: number, maxBytes: number): void {
  if (kind === "directory") throw new BoundedReadError("not-a-regular-file", path, "it is a directory");
  if (kind !== "file") {
    throw new BoundedReadError("not-a-regular-file", path, `it is a ${kind}, not a regular file`);
  }
  if (size > maxBytes) throw tooLarge(path, maxBytes);
}

function tooLarge(path: string, maxBytes: number): BoundedReadError {
  return new BoundedReadError("too-large", path, `it is larger than ${formatBytes(maxBytes)}`);
}

function formatBytes(n: number): string {
  return n % ONE_MIB === 0 ? `${n / ONE_MIB} MiB` : n % 1024 === 0 ? `${n / 1024} KiB` : `${n} bytes`;
}

function mapOpenError(error: unknown, path: string): BoundedReadError {
  const code = (error as { code?: unknown })?.code;
  if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory || code === "ENOENT") {
    return new BoundedReadError("not-found", path, "no such file", { cause: error });
  }
  if (
    error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable ||
    code === "EACCES" || code === "EPERM"
  ) {
    return new BoundedReadError("permission-denied", path, "permission denied", { cause: error });
  }
  if (error instanceof Deno.errors.IsADirectory || code === "EISDIR") {
    return new BoundedReadError("not-a-regular-file", path, "it is a directory", { cause: error });
  }
  if (code === "ENXIO") {
    return new BoundedReadError("not-a-regular-file", path, "it is not a regular file", { cause: error });
  }
  return new BoundedReadError("unreadable", path, "it cannot be read", { cause: error });
}
