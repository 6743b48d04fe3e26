/**
 * SFTP writes without a copy of the data (ssh2 1.17).
 *
 * ssh2's `SFTP.write()` (lib/protocol/SFTP.js) allocates a request buffer
 * the size of the data, copies the caller's bytes into it and hands it to
 * the channel, which cuts it into packets and copies each one again into
 * the cipher's packet. An upload in 255 KiB requests made ~1 byte of
 * garbage per byte moved this way (and Deno's Buffer.allocUnsafe fills
 * what it allocates).
 *
 * With this repair, a write whose request does not fit in one channel
 * packet goes to the channel as two pieces: a small buffer with the
 * request header and the data's first bytes (exactly the channel's first
 * packet, as before), then a view of the caller's buffer for the rest. The
 * bytes on the channel and their packets are the same as ssh2's; only the
 * large copy is gone. The pieces go through ssh2's own queue and drain
 * function, so the channel window is honoured as before.
 *
 * The one change for the caller: the buffer must not change until the
 * write's callback (ssh2's copy allowed reuse at once). Our callers (../ssh/
 * transfer.ts reuses a buffer only after its callback; ../ssh/sftp.ts never)
 * do so. A callback that comes before all of the data was sent (a server
 * answering early, the channel closing) first copies what is still queued,
 * so reusing the buffer then is safe too. Anything unusual (server mode,
 * bad arguments, a write ssh2 would split into several requests, one that
 * fits one packet) goes to ssh2's own write.
 *
 * @module
 */

import "./chacha_fix.ts"; // before any ssh2 module loads
import { Buffer } from "node:buffer";
import sftpModule from "ssh2/lib/protocol/SFTP.js";

// deno-lint-ignore no-explicit-any
const { SFTP } = sftpModule as any;

/** SSH_FXP_WRITE. */
const REQUEST_WRITE = 6;
/** ssh2 masks request ids with this (a signed `&`; kept as it is, for the same ids). */
const MAX_REQID = 2 ** 32 - 1;
/** length, type, id, handle length, offset, data length: the header besides the handle. */
const FIXED_HEADER = 4 + 1 + 4 + 4 + 8 + 4;

type Callback = (err?: Error, written?: number) => void;
type Write = (handle: Buffer, buf: Buffer, off: number, len: number, position: number, cb?: Callback) => void;

/** The fields of ssh2's SFTP channel this repair reads and writes. */
interface SftpWriter {
  server: boolean;
  _writeReqid: number;
  _maxWriteLen: number;
  _requests: Record<string, { cb?: unknown }>;
  _buffer: Buffer[];
  _chunkcb: unknown;
  _waitWindow: boolean;
  _debug?: (text: string) => void;
  outgoing: { id: number; window: number; packetSize: number; state: string };
  write: Write;
  push(data: Uint8Array | null): unknown;
}

const patched = new WeakSet<object>();
/** ssh2's drainBuffer (module-private), taken from a channel it queued on in the self-test. */
let drainBuffer: ((this: SftpWriter) => void) | null = null;

/** Replaces queued pieces that still view `buf` by copies, so the caller may reuse it. */
function detach(sftp: SftpWriter, buf: Buffer): void {
  const queue = sftp._buffer;
  for (let i = 0; i < queue.length; i++) {
    if (queue[i].buffer === buf.buffer) queue[i] = Buffer.from(queue[i]);
  }
}

function lightWrite(original: Write): Write {
  return function write(this: SftpWriter, handle, buf, off, len, position, cb) {
    const drain = drainBuffer;
    const packet = this.outgoing?.packetSize;
    if (
      drain === null || this.server || !Buffer.isBuffer(handle) || !Buffer.isBuffer(buf) ||
      !Number.isSafeInteger(off) || !Number.isSafeInteger(len) || !Number.isSafeInteger(position) ||
      off < 0 || len <= 0 || position < 0 || off + len > buf.length || len > this._maxWriteLen ||
      !Array.isArray(this._buffer) || !Number.isSafeInteger(packet) ||
      FIXED_HEADER + handle.length + len <= packet
    ) return original.call(this, handle, buf, off, len, position, cb);
    const headerLen = FIXED_HEADER + handle.length;
    // The first piece is the channel's first packet, as when ssh2 cut its copy (at least the header).
    const head = Math.max(0, Math.min(len, packet - headerLen));
    const first = Buffer.allocUnsafe(headerLen + head);
    first.writeUInt32BE((headerLen + len - 4) >>> 0, 0);
    first[4] = REQUEST_WRITE;
    const reqid = this._writeReqid = (this._writeReqid + 1) & MAX_REQID;
    first.writeUInt32BE(reqid >>> 0, 5);
    let p = 9;
    first.writeUInt32BE(handle.length, p);
    first.set(handle, p += 4);
    p += handle.length;
    let pos = position;
    for (let i = 7; i >= 0; --i) {
      first[p + i] = pos & 0xFF;
      pos /= 256;
    }
    first.writeUInt32BE(len, p += 8);
    first.set(buf.subarray(off, off + head), p + 4);
    this._requests[reqid] = {
      cb: (err?: Error) => {
        detach(this, buf);
        if (typeof cb !== "function") return;
        if (err) cb(err);
        else cb(undefined, off + len);
      },
    };
    this._buffer.push(first, Buffer.from(buf.buffer, buf.byteOffset + off + head, len - head));
    drain.call(this);
    this._debug?.(`SFTP: Outbound: ${this._buffer.length > 0 ? "Buffered" : "Sent"} WRITE (id:${reqid})`);
  };
}

/** What a client SFTP channel of ssh2's class sent over a stand-in connection ({@linkcode sftpChannel}). */
export interface TestChannel {
  sftp: SftpWriter;
  /** Each channel data payload, copied when sent (as ssh2's connection copies it into its packet). */
  sent: Buffer[];
  /** The same payloads as ssh2 handed them to the connection (not copied). */
  given: Buffer[];
  /** Grants `bytes` more window, as a CHANNEL_WINDOW_ADJUST does in ssh2's client. */
  adjust(bytes: number): void;
  /** Delivers an SSH_FXP_STATUS OK for request `id`. */
  ok(id: number): void;
}

const SSH_FXP_VERSION_3 = Uint8Array.of(0, 0, 0, 5, 2, 0, 0, 0, 3);

/**
 * A client SFTP channel of ssh2's own class over a stand-in connection,
 * with the server's VERSION received; exported for tests.
 */
export function sftpChannel(window: number, packetSize = 32 * 1024): TestChannel {
  const sent: Buffer[] = [];
  const given: Buffer[] = [];
  const client = {
    _protocol: {
      _remoteIdentRaw: "SSH-2.0-OpenSSH_9.2p1",
      channelData: (_id: number, data: Buffer) => {
        sent.push(Buffer.from(data));
        given.push(data);
      },
      channelClose: () => {},
    },
  };
  const side = { id: 0, window, packetSize, state: "open" };
  const sftp: SftpWriter = new SFTP(client, { type: "session", incoming: { ...side }, outgoing: { ...side } }, {});
  sftp.push(Buffer.from(SSH_FXP_VERSION_3));
  sent.length = given.length = 0;
  const adjust = (bytes: number) => {
    sftp.outgoing.window += bytes;
    // What ssh2's client does on CHANNEL_WINDOW_ADJUST for a channel waiting on its window.
    if (sftp._waitWindow && sftp.outgoing.window > 0) {
      sftp._waitWindow = false;
      const chunkcb = sftp._chunkcb;
      if (typeof chunkcb === "function") chunkcb.call(sftp);
    }
  };
  const ok = (id: number) => {
    const status = Buffer.alloc(4 + 1 + 4 + 4);
    status.writeUInt32BE(status.length - 4, 0);
    status[4] = 101;
    status.writeUInt32BE(id >>> 0, 5);
    sftp.push(status);
  };
  return { sftp, sent, given, adjust, ok };
}

const pattern = (length: number, seed: number) =>
  Buffer.from(Uint8Array.from({ length }, (_, i) => (i * 7 + seed) & 0xff));
const HANDLE = Buffer.from([0, 0, 0, 1]);

/** What one scenario of writes sent, and what the callbacks said. */
interface Run {
  chunks: number[];
  bytes: Buffer;
  results: string[];
}

/**
 * Two writes (200 KiB and 90 KiB) with a window that runs out, an early
 * answer to the first with its buffer then overwritten, more window, and
 * the answers; the same steps for ssh2's write and for this one.
 */
function scenario(window: number): Run {
  const ch = sftpChannel(window);
  const results: string[] = [];
  const a = pattern(200 * 1024, 1); // under ssh2's 254 KiB until limits@openssh.com
  const b = pattern(100 * 1024, 2);
  ch.sftp.write(HANDLE, a, 0, a.length, 0, (err, n) => results.push(`a ${err?.message ?? n}`));
  const idA = ch.sftp._writeReqid;
  ch.sftp.write(HANDLE, b, 1000, 90 * 1024, 5_000_000_000, (err, n) => results.push(`b ${err?.message ?? n}`));
  const idB = ch.sftp._writeReqid;
  ch.ok(idA);
  a.fill(0xee); // the caller reuses its buffer once answered
  for (let i = 0; i < 40 && ch.sftp._buffer.length > 0; i++) ch.adjust(16 * 1024);
  ch.ok(idB);
  return { chunks: ch.sent.map((c) => c.length), bytes: Buffer.concat(ch.sent), results };
}

function sameRun(a: Run, b: Run, packets: boolean): boolean {
  return a.bytes.equals(b.bytes) && a.results.join() === b.results.join() &&
    (!packets || a.chunks.join() === b.chunks.join());
}

/**
 * Applies the repair to ssh2's SFTP class if, on ssh2's own channel code,
 * it sends the same bytes (in the same packets when the window allows) and
 * answers the same as ssh2's write, also when the window runs out and the
 * caller reuses a buffer answered early; and sends the data without
 * copying it. On a failure ssh2's write is put back. Returns why it failed,
 * or null. Run once per process.
 */
export function sftpWriteSelfTest(): string | null {
  const proto = SFTP?.prototype as SftpWriter | undefined;
  if (proto === undefined || typeof proto.write !== "function") return "ssh2 has no SFTP class where 1.17 keeps it";
  if (patched.has(proto)) return null;
  const original = proto.write;
  try {
    // ssh2's queue drain: what it leaves to run when a window runs out.
    const probe = sftpChannel(0);
    probe.sftp.write(HANDLE, pattern(10, 0), 0, 10, 0);
    const drain = probe.sftp._chunkcb;
    if (typeof drain !== "function" || probe.sftp._buffer.length !== 1) {
      return "ssh2's SFTP channel does not queue a write when its window is closed";
    }
    const expected = [2 * 1024 * 1024, 40_000].map(scenario);
    drainBuffer = drain as (this: SftpWriter) => void;
    proto.write = lightWrite(original);
    patched.add(proto);
    const got = [2 * 1024 * 1024, 40_000].map(scenario);
    let problem: string | null = null;
    if (!sameRun(got[0], expected[0], true)) problem = "a write sent other bytes or packets than ssh2's";
    else if (!sameRun(got[1], expected[1], false)) {
      problem = "a write waiting on the window sent other bytes than ssh2's";
    } else {
      const ch = sftpChannel(2 * 1024 * 1024);
      const data = pattern(100 * 1024, 3);
      ch.sftp.write(HANDLE, data, 0, data.length, 0);
      if (!ch.given.slice(1).every((c) => c.buffer === data.buffer)) problem = "a write still copied its data";
    }
    if (problem === null) return null;
    proto.write = original;
    patched.delete(proto);
    return problem;
  } catch (error) {
    proto.write = original;
    patched.delete(proto);
    return `ssh2's SFTP write failed the self-test: ${error instanceof Error ? error.message : String(error)}`;
  }
}
