/**
 * SFTP writes and reads without ssh2's request-sized copies (ssh2 1.17).
 *
 * Two repairs, each with its own self-test ({@linkcode sftpWriteSelfTest},
 * {@linkcode sftpReadSelfTest}, run by ./patches.ts) and each off unless it
 * passes.
 *
 * Writes:
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
 * The one change for the caller: the buffer must not change until ssh2
 * calls the write back (ssh2's copy allowed reuse at once); a request our
 * code gave up on earlier (a watchdog, an abort) still holds it. Our callers (../ssh/
 * transfer.ts reuses a buffer only after its callback; ../ssh/sftp.ts never)
 * do so. A callback that comes before all of the data was sent (a server
 * answering early, the channel closing) first copies what is still queued,
 * so reusing the buffer then is safe too. Anything unusual (server mode,
 * bad arguments, a write ssh2 would split into several requests, one that
 * fits one packet) goes to ssh2's own write.
 *
 * Reads: ssh2's parser (`push()`) gathers each response that spans several
 * channel chunks into a new buffer of the packet's size (255 KiB per read
 * answer), then the DATA handler copies it into the read's buffer. With
 * this repair, a DATA answer whose header arrives whole, for a read
 * waiting with a buffer large enough, exactly as long as its packet, and
 * not all in one chunk, is copied from each chunk straight into the read's
 * buffer; its callback gets what ssh2 would give, when the last byte
 * arrives. Everything else (other packets, odd DATA, a header cut between
 * chunks) goes to ssh2's parser, cut at packet boundaries it tracks. One
 * difference: a read that fails (the channel closing mid-answer) may find
 * part of the answer in its buffer.
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
  read: (handle: Buffer, buf: Buffer, off: number, len: number, position: number, cb?: ReadCallback) => void;
  push(data: Buffer | null): unknown;
  _version: number;
  _maxInPktLen: number;
  _pktLenBytes: number;
  _pktLen: number;
  _pktPos: number;
  _pkt: Buffer | undefined;
}

type ReadCallback = (err: Error | undefined, n?: number, data?: Buffer, position?: number) => void;
/** A request of ssh2's read_(): its callback takes the answer written into `buffer`. */
type ReadRequest = { cb?: unknown; buffer?: unknown };
type Push = SftpWriter["push"];

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

/** SSH_FXP_DATA. */
const RESPONSE_DATA = 103;
/** length, type, id, data length: what precedes a DATA response's bytes. */
const DATA_HEADER = 4 + 1 + 4 + 4;

/** A DATA response being copied straight into its read's buffer, as it arrives. */
interface Stream {
  id: number;
  req: ReadRequest & { buffer: Buffer; cb: (err: undefined, data: Buffer, nb: number) => void };
  /** Data bytes in the response. */
  length: number;
  /** Bytes copied so far. */
  at: number;
}
const streams = new WeakMap<object, Stream>();

/**
 * The request a DATA response starting at `data[p]` answers, if it can go
 * straight into that read's buffer: a client channel past VERSION, the
 * whole header here, a length ssh2 accepts, data exactly filling the
 * packet and fitting the buffer, and the packet not all in this chunk
 * (then ssh2 parses it without a copy anyway).
 */
function streamable(sftp: SftpWriter, data: Buffer, p: number): Stream | null {
  if (
    sftp.server || sftp._version === -1 || sftp.outgoing?.state !== "open" || data.length - p < DATA_HEADER ||
    data[p + 4] !== RESPONSE_DATA
  ) return null;
  const pktLen = data.readUInt32BE(p);
  if (pktLen > sftp._maxInPktLen || 4 + pktLen <= data.length - p) return null;
  const id = data.readUInt32BE(p + 5);
  const length = data.readUInt32BE(p + 9);
  const req = sftp._requests[id] as ReadRequest | undefined;
  if (req === undefined || typeof req.cb !== "function" || !Buffer.isBuffer(req.buffer)) return null;
  if (length !== pktLen - 9 || length > req.buffer.length) return null;
  return { id, req: req as Stream["req"], length, at: 0 };
}

/** How many bytes from `data[p]` complete ssh2's current packet (or its length), at most the rest. */
function ssh2Share(sftp: SftpWriter, data: Buffer, p: number): number {
  const rest = data.length - p;
  if (sftp._pktLenBytes === 0) return rest < 4 ? rest : Math.min(rest, 4 + data.readUInt32BE(p));
  if (sftp._pktLenBytes < 4) return Math.min(rest, 4 - sftp._pktLenBytes);
  const left = sftp._pktLen - sftp._pktPos;
  return left > 0 ? Math.min(rest, left) : rest;
}

function streamingPush(original: Push): Push {
  return function push(this: SftpWriter, data: Buffer | null): unknown {
    if (data === null) {
      streams.delete(this);
      return original.call(this, data);
    }
    if (!Buffer.isBuffer(data)) return original.call(this, data);
    let p = 0;
    while (p < data.length) {
      const stream = streams.get(this) ?? (this._pktLenBytes === 0 ? streamable(this, data, p) : null);
      if (stream === null) {
        const share = ssh2Share(this, data, p);
        const whole = p === 0 && share === data.length;
        if (original.call(this, whole ? data : data.subarray(p, p + share)) === false) return false;
        p += share;
        continue;
      }
      if (!streams.has(this)) {
        streams.set(this, stream);
        p += DATA_HEADER;
      }
      const n = Math.min(stream.length - stream.at, data.length - p);
      // A request answered meanwhile (the channel closed) is not written to, as ssh2 would not.
      const live = this._requests[stream.id] === stream.req;
      if (live) stream.req.buffer.set(data.subarray(p, p + n), stream.at);
      stream.at += n;
      p += n;
      if (stream.at < stream.length) continue;
      streams.delete(this);
      if (!live) continue;
      delete this._requests[stream.id];
      this._debug?.(`SFTP: Inbound: Received DATA (id:${stream.id}, ${stream.length})`);
      stream.req.cb(undefined, stream.req.buffer, stream.length);
    }
    return undefined;
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

/** An SFTP response packet: type, request id, then `body`. */
export function response(type: number, id: number, body: Uint8Array): Buffer {
  const packet = Buffer.alloc(4 + 1 + 4 + body.length);
  packet.writeUInt32BE(packet.length - 4, 0);
  packet[4] = type;
  packet.writeUInt32BE(id >>> 0, 5);
  packet.set(body, 9);
  return packet;
}

/** An SSH_FXP_DATA answer to request `id` carrying `bytes`. */
export function dataResponse(id: number, bytes: Uint8Array): Buffer {
  const body = Buffer.alloc(4 + bytes.length);
  body.writeUInt32BE(bytes.length, 0);
  body.set(bytes, 4);
  return response(RESPONSE_DATA, id, body);
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
  const ok = (id: number) => void sftp.push(response(101, id, new Uint8Array(4)));
  return { sftp, sent, given, adjust, ok };
}

function pattern(length: number, seed: number): Buffer {
  const bytes = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 7 + seed) & 0xff;
  return bytes;
}

/** A 32-bit FNV-1a digest, to compare buffers in a result line. */
function digest(bytes: Uint8Array | undefined): string {
  if (bytes === undefined) return "-";
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  return `${bytes.length}:${(h >>> 0).toString(16)}`;
}
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

/** Splits `stream` into chunks: the first `first` bytes, then `size` at a time. */
function chunked(stream: Buffer, first: number, size: number): Buffer[] {
  const chunks = [stream.subarray(0, first)];
  for (let p = first; p < stream.length; p += size) chunks.push(stream.subarray(p, p + size));
  return chunks.filter((c) => c.length > 0).map((c) => Buffer.from(c)); // each its own buffer, as ssh2's are
}

/**
 * Reads answered by DATA (whole, short, for a request nobody made, longer
 * than the read's buffer, with bytes after the data), a STATUS (EOF) and a
 * DATA to a read whose channel then closes, fed in chunks cut as given:
 * what the callbacks got and how the parser ended, for ssh2's push and
 * this one to be compared.
 */
export function readScenario(first: number, size: number, unit: number): { results: string[]; held: boolean } {
  const ch = sftpChannel(2 * 1024 * 1024);
  const results: string[] = [];
  const ids: number[] = [];
  const read = (tag: string, len: number, off = 0) => {
    const buf = Buffer.alloc(len + off + 3, 0x5a);
    ch.sftp.read(HANDLE, buf, off, len, 1000, (err, n, data) => {
      // A failed read's buffer is not compared: this parser may have written part of an answer there.
      const bytes = err ? "-" : `${digest(data)} ${digest(buf)}`;
      results.push(`${tag} ${err?.message ?? n} ${bytes}`);
    });
    ids.push(ch.sftp._writeReqid);
  };
  read("whole", 100 * unit);
  read("short", 64 * unit, 10);
  read("long", 20 * unit);
  read("trailing", 50 * unit);
  read("eof", 1000);
  read("closed", 40 * unit);
  const trailing = dataResponse(ids[3], pattern(30 * unit, 9));
  trailing.writeUInt32BE(trailing.readUInt32BE(0) + 5, 0);
  const stream = Buffer.concat([
    dataResponse(ids[0], pattern(100 * unit, 4)),
    dataResponse(ids[1], pattern(40 * unit, 5)),
    dataResponse(ids[5] + 100, pattern(40 * unit, 6)),
    dataResponse(ids[2], pattern(40 * unit, 7)),
    trailing,
    Buffer.alloc(5, 0x11),
    response(101, ids[4], Uint8Array.of(0, 0, 0, 1)),
    dataResponse(ids[5], pattern(40 * unit, 8)).subarray(0, 20 * unit),
  ]);
  let held = false;
  let fed = 0;
  for (const chunk of chunked(stream, first, size)) {
    ch.sftp.push(chunk);
    // Only the first answer (a whole read of 100 units) is sure to stream; the odd ones go to ssh2's parser.
    if ((fed += chunk.length) < 100 * unit) held ||= ch.sftp._pkt !== undefined;
  }
  ch.sftp.push(null); // the channel closes in the middle of the last answer
  results.push(`requests left ${Object.keys(ch.sftp._requests).length}`);
  return { results, held };
}

/**
 * Chunk cuts (first chunk, then chunks of), and whether the first answer
 * streams: not when its header is cut (ssh2 then has the start of it).
 */
export const READ_CUTS: [number, number, boolean, number][] = [
  [32 * 1024, 32 * 1024, true, 512],
  [13, 7, true, 64], // smaller answers for small chunks: a byte at a time through 300 KiB would slow the self-test
  [5, 32 * 1024, false, 512],
  [0, 1, false, 16],
  [0, 300 * 1024, false, 512], // all in one chunk: ssh2 takes views of it, no copy to avoid
];

/**
 * Applies the streaming DATA parser to ssh2's SFTP class if, on ssh2's
 * own channel code, reads get the same answers as with ssh2's push, cut
 * into chunks anywhere (one byte at a time included), and an answer larger
 * than a chunk no longer gathers in a packet buffer of its size. On a
 * failure ssh2's push is put back. Returns why it failed, or null. Run
 * once per process, after ./sftp_fix.ts's self-test (this wraps its push).
 */
export function sftpReadSelfTest(): string | null {
  const proto = SFTP?.prototype as SftpWriter | undefined;
  if (proto === undefined || typeof proto.push !== "function") return "ssh2 has no SFTP class where 1.17 keeps it";
  if (patched.has(proto.push)) return null;
  const original = proto.push;
  try {
    const expected = READ_CUTS.map(([first, size, , unit]) => readScenario(first, size, unit));
    if (!expected.some((e) => e.held)) {
      return "ssh2's SFTP parser no longer gathers a DATA answer in a buffer of its own";
    }
    proto.push = streamingPush(original);
    patched.add(proto.push);
    const got = READ_CUTS.map(([first, size, , unit]) => readScenario(first, size, unit));
    let problem: string | null = null;
    const differs = got.findIndex((g, i) => g.results.join("\n") !== expected[i].results.join("\n"));
    if (differs !== -1) {
      problem = `reads got other answers than with ssh2's parser (chunks ${READ_CUTS[differs].slice(0, 2)})`;
    } else if (got.some((g, i) => g.held && READ_CUTS[i][2])) {
      problem = "a DATA answer still gathered in a packet buffer";
    }
    if (problem === null) return null;
    proto.push = original;
    return problem;
  } catch (error) {
    proto.push = original;
    return `ssh2's SFTP parser failed the read self-test: ${error instanceof Error ? error.message : String(error)}`;
  }
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
