/**
 * The audit log file: one line per tool call, written to the OS before the
 * call's result goes back, in one order, rotated by size, and failing loudly.
 *
 * Writing. Appends are serialised (calls run concurrently, a chain needs one
 * order). Each line reaches the OS in one `write` on a file opened with
 * O_APPEND before `append()` resolves: no userspace buffer, so a crash of
 * this process loses no line already appended; with `fsync` (off by default,
 * see {@linkcode AuditOptions.fsync} for the measured cost) it also waits for
 * the disk, so a power loss or kernel crash loses no returned call's line.
 *
 * Failing closed. A failed write (full disk, a file made unwritable, a path
 * whose directory went away) throws `AUDIT_FAILED` and latches
 * {@linkcode AuditLog.failure}, so a dispatcher can refuse calls before
 * running them; every later `append()` tries again (reopening the file), and
 * the first that succeeds clears the latch. {@linkcode AuditLog.open} never
 * throws for a file it cannot open: the log starts failed.
 *
 * Torn records. A write cut short (disk full mid-line, a crash) leaves a line
 * without its `"\n"`. The next record starts with `"\n"`, so the fragment
 * ends as a line of its own and never spoils the record after it, and that
 * record carries `torn_before: <fragment bytes>` inside its hash: the writer
 * vouches that a record was lost there, and `verify-audit` counts it as torn
 * rather than as tampering. The chain goes on from the last whole record.
 * If only the newline was lost, the fragment is a whole record: the next
 * write's leading `"\n"` completes it and the chain goes on from it, with no
 * `torn_before`.
 * A file with a torn tail is not rotated until a record has ended it.
 *
 * Rotation. Before a write that would take the file past `maxBytes`, FILE
 * becomes FILE.1 (FILE.1 becomes FILE.2, …, FILE.`keep` is overwritten: its records are gone) and
 * a new FILE is created 0600. The chain goes on across files. A record larger
 * than `maxBytes` still goes whole into a file of its own. Files numbered
 * above `keep` (left by an earlier, larger `keep`) are not removed.
 *
 * The file. Created 0600; an existing one with group or other bits is set to
 * 0600 (said through `onNotice`). If the path stops naming the open file
 * (moved by logrotate, removed), the next append opens a new one there rather
 * than writing on into a file nobody can find. One log file belongs to one
 * server process: two processes appending to it break each other's chain.
 *
 * What the chain does not promise: anyone who can write the file can rewrite
 * it from any line on and recompute every hash after it, and can cut records
 * off its end (or, with the rotated files, off its start) unseen. It detects
 * edits by someone who cannot rewrite the rest, and accidents; against a
 * local attacker with write access, ship the lines elsewhere as they are
 * written (or keep the last hash elsewhere) and compare.
 *
 * @module
 */

import { SshMcpError } from "../errors.ts";
import { checkLine, GENESIS, hashOfLine, lineOf, recordOf } from "./record.ts";
import type { AuditEntry } from "./record.ts";

/** Options of {@linkcode AuditLog.open}. */
export interface AuditOptions {
  /** The log file; its directory must exist. */
  path: string;
  /**
   * Size at which the file is rotated, in bytes.
   * @default 10 MiB
   */
  maxBytes?: number;
  /**
   * Rotated files kept (FILE.1 … FILE.keep); at least 1. The oldest beyond
   * it is deleted at each rotation: a caller making enough calls pushes old
   * records out, so ship the lines elsewhere to keep them for good.
   * @default 100
   */
  keep?: number;
  /**
   * Whether each line carries `prev` and `hash` (see `record.ts`).
   * @default true
   */
  chain?: boolean;
  /**
   * Whether each append also waits for `fdatasync`, so a line survives a power
   * loss or kernel crash, not only a crash of this process. Off by default:
   * through the whole server it cost `ssh_execute true` 1.30x (16.8 ms against
   * 12.9 ms, section 16 of `deno task bench`, log on /tmp), far over the 5 %
   * an audit log may cost; without it 1.02-1.04x (section 16, agent's pace). Measured with `log_bench.ts` (10,000 appends,
   * a 2-core VM, virtio disk, shared and loaded; averages of five runs):
   * 55-135 µs per append without it, on disk or tmpfs; 440-700 µs with it
   * on disk; 70-170 µs with it on tmpfs. Appends are serialised, so with it
   * on a disk whose flush takes 10 ms caps the server near 100 calls a
   * second. Turn it off for a log on a slow disk; lines then still reach the
   * OS before the call returns. Rotation's renames are not flushed to the directory.
   * @default false
   */
  fsync?: boolean;
  /**
   * Receives what the operator should hear about (a file mode repaired, a
   * moved file replaced); the module itself prints nothing.
   * @default messages dropped
   */
  onNotice?: (message: string) => void;
}

const DEFAULT_MAX_BYTES = 10 * 1024 * 1024;
const DEFAULT_KEEP = 100;
// How much of a file's end is read at a time to find its last line.
const TAIL_WINDOW = 64 * 1024;
const NEWLINE = 0x0a;

/** Where a file ends: the hash to chain from and the bytes of a torn last line. */
interface Tail {
  /** The `hash` of the last whole line; null when it has none or there is no whole line. */
  lastHash: string | null;
  /** Whether the file holds a whole line at all. */
  hasLine: boolean;
  /** Bytes after the last `"\n"` (a torn record); 0 when the file ends in one. */
  torn: number;
  /** Whether those bytes are a whole record that lacks only its `"\n"` (then `lastHash` is its hash). */
  tornWhole: boolean;
}

/** An append-only, hash-chained, rotated log of tool calls; see the module doc. */
export class AuditLog implements AsyncDisposable {
  readonly #path: string;
  readonly #maxBytes: number;
  readonly #keep: number;
  readonly #chain: boolean;
  readonly #fsync: boolean;
  readonly #notice: (message: string) => void;
  #file: Deno.FsFile | null = null;
  #ino: number | null = null;
  #dev = 0;
  #size = 0;
  #torn = 0;
  #tornWhole = false;
  #lastHash: string | null = null;
  #failure: string | null = null;
  #queue: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(options: AuditOptions) {
    this.#path = options.path;
    this.#maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    this.#keep = options.keep ?? DEFAULT_KEEP;
    this.#chain = options.chain ?? true;
    this.#fsync = options.fsync ?? false;
    this.#notice = options.onNotice ?? (() => {});
    if (!Number.isSafeInteger(this.#maxBytes) || this.#maxBytes < 1) {
      throw new RangeError(`Audit log maxBytes must be a positive integer, not ${this.#maxBytes}`);
    }
    if (!Number.isSafeInteger(this.#keep) || this.#keep < 1) {
      throw new RangeError(`Audit log keep must be an integer of at least 1, not ${this.#keep}`);
    }
  }

  /**
   * Opens (or creates, 0600) the log at `options.path` and finds where its
   * chain goes on. Never throws for a file it cannot open or write: the log
   * starts with {@linkcode failure} set, and each append tries again.
   *
   * @throws {RangeError} when `maxBytes` or `keep` is out of range (a configuration bug).
   */
  static async open(options: AuditOptions): Promise<AuditLog> {
    const log = new AuditLog(options);
    try {
      await log.#reopen();
    } catch (error) {
      log.#failure = log.#explain(error);
    }
    return log;
  }

  /** Why the last attempt to open or write failed; null while the log is healthy. */
  get failure(): string | null {
    return this.#failure;
  }

  /**
   * Writes one call's line (arguments redacted here) to the OS. Appends run
   * one at a time, in call order.
   *
   * @throws {SshMcpError} `AUDIT_FAILED` when the line could not be written; {@linkcode failure} then says why.
   */
  append(entry: AuditEntry): Promise<void> {
    // Redacted now, so a caller changing its arguments object afterwards
    // changes nothing, and a bad entry fails this call alone.
    let record: Record<string, unknown>;
    try {
      if (this.#closed) throw new Error("the log is closed");
      record = recordOf(entry);
    } catch (error) {
      return Promise.reject(this.#fail(error));
    }
    const run = this.#queue.then(() => this.#write(record));
    this.#queue = run.then(() => {}, () => {});
    return run;
  }

  /** Waits for pending appends, then closes the file; later appends fail with `AUDIT_FAILED`. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#queue;
    this.#file?.close();
    this.#file = null;
  }

  /** Same as {@linkcode close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #write(record: Record<string, unknown>): Promise<void> {
    try {
      await this.#ensureOpen();
      const torn = this.#torn;
      const tornBefore = torn > 0 && !this.#tornWhole ? torn : undefined;
      let line = lineOf(record, { prev: this.#prevHash(), tornBefore });
      if (torn === 0 && this.#size > 0 && this.#size + line.bytes.length > this.#maxBytes) {
        await this.#rotate();
        line = lineOf(record, { prev: this.#prevHash() });
      }
      let bytes = line.bytes;
      if (torn > 0) {
        bytes = new Uint8Array(line.bytes.length + 1);
        bytes[0] = NEWLINE;
        bytes.set(line.bytes, 1);
      }
      this.#writeAll(bytes);
      if (line.hash !== null) this.#lastHash = line.hash;
      if (this.#fsync) await this.#file!.syncData();
      this.#failure = null;
    } catch (error) {
      // Whatever state the file is in now, the next append learns it from
      // the disk, not from what this one believed.
      this.#file?.close();
      this.#file = null;
      throw this.#fail(error);
    }
  }

  #prevHash(): string | undefined {
    return this.#chain ? this.#lastHash ?? GENESIS : undefined;
  }

  #fail(error: unknown): SshMcpError {
    this.#failure = this.#explain(error);
    return new SshMcpError("AUDIT_FAILED", this.#failure, {
      cause: error,
      hint: "Calls are refused while the audit log cannot be written: free space on its disk or fix the file's " +
        "permissions, then call again",
    });
  }

  #explain(error: unknown): string {
    const why = error instanceof Error ? error.message : String(error);
    return `Cannot write audit log "${this.#path}": ${why}`;
  }

  // Synchronous on purpose: one small write to the page cache takes microseconds, while an async
  // write costs a hop to Deno's blocking pool and back on every tool call (measured: 0.28 ms per
  // call for the whole record with async stat and write; see AuditOptions.fsync).
  #writeAll(bytes: Uint8Array): void {
    const file = this.#file!;
    let done = 0;
    try {
      while (done < bytes.length) {
        const n = file.writeSync(bytes.subarray(done));
        if (n === 0) throw new Error("the file system accepted no bytes");
        done += n;
      }
    } finally {
      this.#size += done;
      const last = bytes.subarray(0, done).lastIndexOf(NEWLINE);
      this.#torn = last < 0 ? this.#torn + done : done - last - 1;
    }
  }

  // The open file, or a new one if the path no longer names it.
  async #ensureOpen(): Promise<void> {
    if (this.#file !== null) {
      const now = statOrNullSync(this.#path);
      if (now !== null && now.ino === this.#ino && now.dev === this.#dev) return;
      this.#notice(`Audit log "${this.#path}" was moved or removed; writing to a new file at that path`);
      this.#file.close();
      this.#file = null;
    }
    await this.#reopen();
  }

  async #reopen(): Promise<void> {
    const before = await statOrNull(this.#path);
    // Opening a FIFO for writing would block until a reader came.
    if (before !== null && !before.isFile) throw new Error("it is not a regular file");
    const file = await Deno.open(this.#path, { append: true, create: true, mode: 0o600 });
    try {
      const info = await file.stat();
      if (!info.isFile) throw new Error("it is not a regular file");
      const mode = info.mode ?? 0o600;
      if ((mode & 0o077) !== 0) {
        await Deno.chmod(this.#path, 0o600);
        this.#notice(
          `Audit log "${this.#path}" had mode 0${(mode & 0o777).toString(8)}, readable by others; set to 0600`,
        );
      }
      const tail = await readTail(this.#path, info.size);
      if (tail.hasLine) {
        this.#lastHash = tail.lastHash;
      } else if (this.#lastHash === null) {
        // An empty file after a rotation (or a crash just after one): the
        // chain goes on from the newest rotated file.
        const rotated = await statOrNull(`${this.#path}.1`);
        if (rotated?.isFile) this.#lastHash = (await readTail(`${this.#path}.1`, rotated.size)).lastHash;
      }
      this.#file = file;
      this.#ino = info.ino;
      this.#dev = info.dev;
      this.#size = info.size;
      this.#torn = tail.torn;
      this.#tornWhole = tail.tornWhole;
    } catch (error) {
      file.close();
      throw error;
    }
  }

  async #rotate(): Promise<void> {
    this.#file?.close();
    this.#file = null;
    for (let i = this.#keep - 1; i >= 1; i--) {
      try {
        await Deno.rename(`${this.#path}.${i}`, `${this.#path}.${i + 1}`);
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
    }
    await Deno.rename(this.#path, `${this.#path}.1`);
    await this.#reopen();
  }
}

function statOrNullSync(path: string): Deno.FileInfo | null {
  try {
    return Deno.statSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/**
 * Reads the end of a file to find its last whole line's hash and the bytes
 * of a torn line after it, reading further back while the window holds no
 * whole line.
 */
async function readTail(path: string, size: number): Promise<Tail> {
  if (size === 0) return { lastHash: null, hasLine: false, torn: 0, tornWhole: false };
  using file = await Deno.open(path, { read: true });
  for (let window = Math.min(size, TAIL_WINDOW);; window = Math.min(size, window * 2)) {
    const bytes = new Uint8Array(window);
    await file.seek(size - window, Deno.SeekMode.Start);
    let got = 0;
    while (got < window) {
      const n = await file.read(bytes.subarray(got));
      if (n === null) throw new Error("it shrank while being read");
      got += n;
    }
    const end = bytes.lastIndexOf(NEWLINE);
    // (lastIndexOf with -1 would search the whole array again.)
    const start = end <= 0 ? -1 : bytes.lastIndexOf(NEWLINE, end - 1);
    // The last whole line needs the "\n" before it, or the file's start.
    if (start >= 0 || (end >= 0 && window === size)) {
      const torn = window - end - 1;
      const whole = torn > 0 ? wholeRecord(bytes.subarray(end + 1)) : null;
      if (whole !== null) return { lastHash: whole, hasLine: true, torn, tornWhole: true };
      return { lastHash: hashOfLine(bytes.subarray(start + 1, end)), hasLine: true, torn, tornWhole: false };
    }
    if (window === size) {
      const whole = wholeRecord(bytes);
      return { lastHash: whole, hasLine: whole !== null, torn: size, tornWhole: whole !== null };
    }
  }
}

// The hash of a fragment that is a whole chained record, or null.
function wholeRecord(fragment: Uint8Array): string | null {
  const checked = checkLine(fragment);
  return checked.kind === "record" ? checked.hash : null;
}
