/**
 * File transfers between this machine and the remote one over SFTP, with
 * many requests in flight (as sftp(1) and ssh2's fastGet/fastPut pipeline),
 * never a partial file under the final name (temporary file, then rename),
 * and the setuid/setgid/sticky bits dropped from copied modes.
 *
 * Local paths must already be confined by lib/local_paths.ts.
 *
 * @module
 */

// @ts-types="@types/ssh2"
import type { SFTPWrapper, Stats } from "ssh2";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { posix } from "node:path";
import { SshMcpError } from "../errors.ts";
import { call, CHUNK, IN_FLIGHT, sftpError, stat } from "./sftp.ts";

/** Options of a transfer. */
export interface TransferOptions {
  /** Replace an existing destination. */
  overwrite: boolean;
  /** Read the result back and compare sha256. */
  verify: boolean;
  /** Called with bytes done and total, at most every 64 KiB of progress. */
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

/** What a transfer did. */
export interface TransferResult {
  bytes: number;
  /** sha256 of the file, when verified (hashing costs a second pass). */
  sha256: string | null;
  mode: number;
  verified: boolean;
}

function cutOff(error: unknown, what: string, done: number, total: number): SshMcpError {
  const base = error instanceof SshMcpError ? error : sftpError(error, what, "transfer");
  return new SshMcpError(
    base.code,
    `${base.message} (after ${done} of ${total} bytes; nothing left under the final name)`,
    {
      hint: base.hint,
      cause: error,
      retryable: base.retryable,
    },
  );
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => Deno.unrefTimer(setTimeout(resolve, ms)));
}

function tempName(name: string): string {
  const rnd = Array.from(crypto.getRandomValues(new Uint8Array(6)), (b) => b.toString(16).padStart(2, "0")).join("");
  return `.${name}.mcp-${rnd}.tmp`;
}

/** Uploads a local regular file (real path, already confined) to `remotePath`. */
export async function upload(
  sftp: SFTPWrapper,
  local: string,
  remotePath: string,
  options: TransferOptions,
): Promise<TransferResult> {
  const info = await Deno.stat(local);
  if (!info.isFile) {
    throw new SshMcpError("PATH_NOT_ALLOWED", `${local} is not a regular file`, { hint: "Upload regular files" });
  }
  const mode = (info.mode ?? 0o644) & 0o777;
  const existing = await stat(sftp, remotePath).catch((e: SshMcpError) => {
    if (e.code === "SFTP_NO_SUCH_FILE") return null;
    throw e;
  });
  if (existing?.type === "directory") {
    throw new SshMcpError("IS_A_DIRECTORY", `${remotePath} is a directory`, {
      hint: "Give the full remote file path, including the file name",
    });
  }
  if (existing !== null && !options.overwrite) {
    throw new SshMcpError("FILE_EXISTS", `${remotePath} already exists`, { hint: "Pass overwrite=true to replace it" });
  }
  const temp = posix.join(posix.dirname(remotePath), tempName(posix.basename(remotePath)));
  const moved = { bytes: 0 };
  try {
    await fastCopy(options, moved, (opts, cb) => sftp.fastPut(local, temp, { ...opts, mode: 0o600 }, cb));
    await call<void>(sftp, temp, "chmod", (cb) => sftp.chmod(temp, mode, cb));
    if (options.overwrite) {
      await call<void>(sftp, remotePath, "replace", (cb) => sftp.ext_openssh_rename(temp, remotePath, cb));
    } else await call<void>(sftp, remotePath, "create", (cb) => sftp.rename(temp, remotePath, cb));
  } catch (error) {
    // Bounded: on a dead connection ssh2 never answers, and the caller must
    // hear about the failure rather than wait for the clean-up.
    await Promise.race([call<void>(sftp, temp, "remove", (cb) => sftp.unlink(temp, cb)).catch(() => {}), delay(2000)]);
    throw cutOff(error, remotePath, moved.bytes, info.size);
  }
  const sha256 = options.verify ? await compareHashes(sftp, local, remotePath) : null;
  return { bytes: info.size, sha256, mode, verified: sha256 !== null };
}

/** Downloads a remote regular file to `local` (an already confined destination). */
export async function download(
  sftp: SFTPWrapper,
  remotePath: string,
  local: string,
  options: TransferOptions,
): Promise<TransferResult> {
  const info = await call<Stats>(sftp, remotePath, "stat", (cb) => sftp.stat(remotePath, cb));
  if (!info.isFile()) {
    throw new SshMcpError("IS_A_DIRECTORY", `${remotePath} is not a regular file`, { hint: "Download regular files" });
  }
  const mode = info.mode & 0o777; // never setuid/setgid/sticky on this machine
  const temp = join(dirname(local), tempName(basename(local)));
  // Created here, exclusively and private, before ssh2 writes into it.
  (await Deno.open(temp, { write: true, createNew: true, mode: 0o600 })).close();
  const moved = { bytes: 0 };
  try {
    await fastCopy(options, moved, (opts, cb) => sftp.fastGet(remotePath, temp, opts, cb));
    const got = (await Deno.stat(temp)).size;
    if (got !== info.size) {
      throw new SshMcpError("SFTP_FAILURE", `${remotePath} changed size during the download`, {
        hint: "Retry when the file is no longer being written",
      });
    }
    await Deno.chmod(temp, mode);
    if (!options.overwrite) {
      // The destination was checked before; refuse one that appeared since.
      const appeared = await Deno.lstat(local).then(() => true, () => false);
      if (appeared) throw new SshMcpError("FILE_EXISTS", `${local} appeared during the download`);
    }
    await Deno.rename(temp, local);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw cutOff(error, remotePath, moved.bytes, info.size);
  }
  const sha256 = options.verify ? await compareHashes(sftp, local, remotePath) : null;
  return { bytes: info.size, sha256, mode, verified: sha256 !== null };
}

/** Options ssh2's fastGet and fastPut share. */
interface FastOptions {
  concurrency: number;
  chunkSize: number;
  step: (transferred: number, chunk: number, total: number) => void;
}

/**
 * One fastGet/fastPut run: ssh2 keeps 64 requests of 32 KiB in flight with
 * little overhead per request (measured ~1.7x a promise-per-request loop).
 * Progress goes to `options.onProgress` and `moved`; `options.signal` stops it.
 */
function fastCopy(
  options: TransferOptions,
  moved: { bytes: number },
  run: (opts: FastOptions, cb: (err?: Error | null) => void) => void,
): Promise<void> {
  const opts: FastOptions = {
    concurrency: IN_FLIGHT,
    chunkSize: CHUNK,
    step: (transferred, _chunk, total) => {
      moved.bytes = transferred;
      options.onProgress?.(transferred, total);
    },
  };
  return stoppable(options.signal, (resolve, reject) => run(opts, (err) => (err ? reject(err) : resolve())));
}

/** Hashes both copies; returns the sha256 if they agree, else throws. */
async function compareHashes(sftp: SFTPWrapper, local: string, remotePath: string): Promise<string> {
  const [here, there] = await Promise.all([hashLocal(local), hashRemote(sftp, remotePath)]);
  if (here !== there) {
    throw new SshMcpError("SFTP_FAILURE", `${local} (sha256 ${here}) and ${remotePath} (sha256 ${there}) differ`, {
      hint: "Retry the transfer",
    });
  }
  return here;
}

/**
 * Runs a callback-style transfer until it finishes or `signal` aborts.
 * ssh2's fastGet/fastPut never call back when the connection dies under
 * them, so without this a cut transfer would hang forever.
 */
function stoppable(
  signal: AbortSignal | undefined,
  start: (resolve: () => void, reject: (e: unknown) => void) => void,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => reject(signal!.reason);
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    start(
      () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      },
      (e) => {
        signal?.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}

async function hashLocal(path: string): Promise<string> {
  const hash = createHash("sha256");
  const file = await Deno.open(path, { read: true });
  for await (const chunk of file.readable) hash.update(chunk); // closes the file when done
  return hash.digest("hex");
}

async function hashRemote(sftp: SFTPWrapper, path: string): Promise<string> {
  const handle = await call<Buffer>(sftp, path, "open", (cb) => sftp.open(path, "r", cb));
  try {
    const size = (await call<Stats>(sftp, path, "stat", (cb) => sftp.fstat(handle, cb))).size;
    const hash = createHash("sha256");
    for (let pos = 0; pos < size;) {
      const len = Math.min(CHUNK, size - pos);
      const buf = Buffer.alloc(len);
      const n = await call<number>(sftp, path, "read", (cb) => sftp.read(handle, buf, 0, len, pos, cb));
      hash.update(buf.subarray(0, n));
      pos += n;
    }
    return hash.digest("hex");
  } finally {
    await call<void>(sftp, path, "close", (cb) => sftp.close(handle, cb)).catch(() => {});
  }
}
