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
import { sftpError, stat } from "./sftp.ts";

const CHUNK = 32 * 1024;
const IN_FLIGHT = 64;

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
  sha256: string;
  mode: number;
  verified: boolean;
}

function call<T>(path: string, action: string, fn: (cb: (err: Error | undefined | null, value: T) => void) => void) {
  return new Promise<T>((resolve, reject) => {
    fn((err, value) => (err ? reject(sftpError(err, path, action)) : resolve(value)));
  });
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
  const file = await Deno.open(local, { read: true });
  try {
    const info = await file.stat();
    // The path was checked before opening; this checks what was opened.
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
      throw new SshMcpError("FILE_EXISTS", `${remotePath} already exists`, {
        hint: "Pass overwrite=true to replace it",
      });
    }
    const temp = posix.join(posix.dirname(remotePath), tempName(posix.basename(remotePath)));
    const handle = await call<Buffer>(temp, "create", (cb) => sftp.open(temp, "wx", { mode: 0o600 }, cb));
    const total = info.size;
    const hash = createHash("sha256");
    let done = 0;
    try {
      let position = 0;
      const pending = new Set<Promise<void>>();
      for (;;) {
        options.signal?.throwIfAborted();
        const buf = new Uint8Array(CHUNK);
        let n = 0;
        while (n < CHUNK) {
          const r = await file.read(buf.subarray(n));
          if (r === null) break;
          n += r;
        }
        if (n === 0) break;
        const chunk = Buffer.from(buf.buffer, 0, n);
        hash.update(chunk);
        const at = position;
        position += n;
        const p: Promise<void> = call<void>(temp, "write", (cb) => sftp.write(handle, chunk, 0, n, at, cb)).then(() => {
          pending.delete(p);
          done += n;
          options.onProgress?.(done, total);
        });
        pending.add(p);
        if (pending.size >= IN_FLIGHT) await Promise.race(pending);
        if (n < CHUNK) break;
      }
      await Promise.all(pending);
      await call<void>(temp, "chmod", (cb) => sftp.fchmod(handle, mode, cb));
      await call<void>(temp, "close", (cb) => sftp.close(handle, cb));
      if (options.overwrite) {
        await call<void>(remotePath, "replace", (cb) => sftp.ext_openssh_rename(temp, remotePath, cb));
      } else await call<void>(remotePath, "create", (cb) => sftp.rename(temp, remotePath, cb));
    } catch (error) {
      await call<void>(temp, "close", (cb) => sftp.close(handle, cb)).catch(() => {});
      await call<void>(temp, "remove", (cb) => sftp.unlink(temp, cb)).catch(() => {});
      throw cutOff(error, remotePath, done, total);
    }
    const sha256 = hash.digest("hex");
    let verified = false;
    if (options.verify) {
      const remoteHash = await hashRemote(sftp, remotePath);
      if (remoteHash !== sha256) {
        throw new SshMcpError("SFTP_FAILURE", `${remotePath} does not match what was sent (sha256 ${remoteHash})`, {
          hint: "Retry the upload",
        });
      }
      verified = true;
    }
    return { bytes: done, sha256, mode, verified };
  } finally {
    file.close();
  }
}

/** Downloads a remote regular file to `local` (an already confined destination). */
export async function download(
  sftp: SFTPWrapper,
  remotePath: string,
  local: string,
  options: TransferOptions,
): Promise<TransferResult> {
  const handle = await call<Buffer>(remotePath, "open", (cb) => sftp.open(remotePath, "r", cb));
  const temp = join(dirname(local), tempName(basename(local)));
  let out: Deno.FsFile | null = null;
  let done = 0;
  let total = 0;
  try {
    const info = await call<Stats>(remotePath, "stat", (cb) => sftp.fstat(handle, cb));
    if (!info.isFile()) {
      throw new SshMcpError("IS_A_DIRECTORY", `${remotePath} is not a regular file`, {
        hint: "Download regular files",
      });
    }
    total = info.size;
    const mode = info.mode & 0o777; // never setuid/setgid/sticky on this machine
    out = await Deno.open(temp, { write: true, createNew: true, mode: 0o600 });
    const hash = createHash("sha256");
    // Reads complete out of order; they are written in order as they line up.
    const ready = new Map<number, Uint8Array>();
    let next = 0; // next offset to request
    let flushed = 0; // next offset to write
    let eof = false;
    const file = out;
    const flush = async () => {
      for (let chunk = ready.get(flushed); chunk !== undefined; chunk = ready.get(flushed)) {
        ready.delete(flushed);
        for (let off = 0; off < chunk.length;) off += await file.write(chunk.subarray(off));
        hash.update(chunk);
        flushed += chunk.length;
        done = flushed;
        options.onProgress?.(done, total);
      }
    };
    let writing = Promise.resolve();
    const worker = async () => {
      while (!eof && next < total) {
        options.signal?.throwIfAborted();
        const pos = next;
        const len = Math.min(CHUNK, total - pos);
        next += len;
        const buf = Buffer.alloc(len);
        const n = await call<number>(remotePath, "read", (cb) => sftp.read(handle, buf, 0, len, pos, cb));
        if (n < len) {
          throw new SshMcpError("SFTP_FAILURE", `${remotePath} changed size during the download`, {
            hint: "Retry when the file is no longer being written",
          });
        }
        ready.set(pos, buf);
        writing = writing.then(flush);
        await writing;
      }
    };
    await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, Math.max(1, Math.ceil(total / CHUNK))) }, worker));
    eof = true;
    await writing;
    await Deno.chmod(temp, mode);
    out.close();
    out = null;
    if (!options.overwrite) {
      // The destination was checked before; refuse one that appeared since.
      const appeared = await Deno.lstat(local).then(() => true, () => false);
      if (appeared) throw new SshMcpError("FILE_EXISTS", `${local} appeared during the download`);
    }
    await Deno.rename(temp, local);
    const sha256 = hash.digest("hex");
    let verified = false;
    if (options.verify) {
      const written = createHash("sha256").update(await Deno.readFile(local)).digest("hex");
      if (written !== sha256) throw new SshMcpError("SFTP_FAILURE", `${local} does not match what was received`);
      verified = true;
    }
    return { bytes: done, sha256, mode, verified };
  } catch (error) {
    try {
      out?.close();
    } catch { /* already closed */ }
    await Deno.remove(temp).catch(() => {});
    throw cutOff(error, remotePath, done, total);
  } finally {
    await call<void>(remotePath, "close", (cb) => sftp.close(handle, cb)).catch(() => {});
  }
}

async function hashRemote(sftp: SFTPWrapper, path: string): Promise<string> {
  const handle = await call<Buffer>(path, "open", (cb) => sftp.open(path, "r", cb));
  try {
    const size = (await call<Stats>(path, "stat", (cb) => sftp.fstat(handle, cb))).size;
    const hash = createHash("sha256");
    for (let pos = 0; pos < size;) {
      const len = Math.min(CHUNK, size - pos);
      const buf = Buffer.alloc(len);
      const n = await call<number>(path, "read", (cb) => sftp.read(handle, buf, 0, len, pos, cb));
      hash.update(buf.subarray(0, n));
      pos += n;
    }
    return hash.digest("hex");
  } finally {
    await call<void>(path, "close", (cb) => sftp.close(handle, cb)).catch(() => {});
  }
}
