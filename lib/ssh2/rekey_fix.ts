/**
 * Repairs packets that ssh2 (1.17) queues while a key re-exchange runs.
 *
 * During a rekey, ssh2's PacketWriter.alloc() returns a bare payload-sized
 * buffer, but every caller writes its message at offset `allocStart` (5):
 * the first five bytes stay garbage and the last five are lost. The buffer
 * is queued and framed as a payload after NEWKEYS, so the server receives a
 * window adjust, channel open or EOF with a garbage message type — a stalled
 * channel or a dropped connection. Here such packets get their framing room,
 * and finalize() hands the queue exactly the payload it expects.
 *
 * @module
 */

import "./chacha_fix.ts"; // before any ssh2 module loads
import { Buffer } from "node:buffer";
// ssh2's own protocol code, driven without a socket by the self-test.
import protocolModule from "ssh2/lib/protocol/Protocol.js";
import zlibModule from "ssh2/lib/protocol/zlib.js";
import { type PacketWriterInternals, packetWriterOf } from "./internals.ts";

// deno-lint-ignore no-explicit-any
const { PacketWriter } = zlibModule as any;
// deno-lint-ignore no-explicit-any
const Protocol = protocolModule as any;

const patched = new WeakSet<object>();
const framedDuringKex = new WeakSet<Buffer>();

/**
 * True if a connected ssh2 client's packet writer is of the class that
 * {@linkcode rekeyFixSelfTest} repaired (ssh2 creates a new writer at every
 * rekey, always of that class while compression is off).
 */
export function rekeyQueueFixed(client: unknown): boolean {
  const writer = packetWriterOf(client);
  return writer !== undefined && patched.has(Object.getPrototypeOf(writer));
}

/** Patches a PacketWriter prototype in place; exported for tests. */
export function patchPacketWriter(proto: PacketWriterInternals): boolean {
  if (patched.has(proto)) return true;
  if (proto.constructor?.name !== "PacketWriter") return false;
  patched.add(proto);
  proto.alloc = function (this: PacketWriterInternals, payloadSize: number, force?: boolean): Buffer {
    if (this._protocol._kexinit === undefined || force) return this._protocol._cipher.allocPacket(payloadSize);
    const buf = Buffer.allocUnsafe(this.allocStart + payloadSize);
    framedDuringKex.add(buf);
    return buf;
  };
  proto.finalize = function (this: PacketWriterInternals, packet: Buffer): Buffer {
    return framedDuringKex.has(packet) ? packet.subarray(this.allocStart) : packet;
  };
  return true;
}

function protocolInRekey() {
  const proto = {
    _kexinit: {} as unknown, // a key exchange is running: packets are queued
    _queue: [] as Buffer[],
    _debug: undefined,
    _cipher: {
      allocPacket(n: number) {
        const b = Buffer.alloc(5 + n);
        b.writeUInt32BE(1 + n, 0);
        return b;
      },
    },
    _packetRW: { write: null as unknown },
  };
  proto._packetRW.write = new PacketWriter(proto);
  return proto;
}

/** The payload ssh2's Protocol queues for a window adjust during a rekey, as hex. */
export function queuedWindowAdjust(): string {
  const proto = protocolInRekey();
  Protocol.prototype.channelWindowAdjust.call(proto, 7, 0x01020304);
  return Buffer.from(proto._queue[0]).toString("hex");
}

/** SSH_MSG_CHANNEL_WINDOW_ADJUST (93 = 0x5d), recipient channel 7, 0x01020304 bytes. */
export const EXPECTED_WINDOW_ADJUST = "5d" + "00000007" + "01020304";

/**
 * Applies the fix to ssh2's PacketWriter and proves it on ssh2's own
 * Protocol code: before, a window adjust queued during a rekey is corrupt
 * (the bug is still there to fix); after, it is exact, and packets outside a
 * rekey are framed by the cipher as before. On a failure the writer's
 * methods are put back. Returns why it failed, or null. Run once per process.
 */
export function rekeyFixSelfTest(): string | null {
  const proto = PacketWriter?.prototype as PacketWriterInternals | undefined;
  if (proto === undefined || typeof proto.alloc !== "function" || typeof proto.finalize !== "function") {
    return "ssh2 has no PacketWriter where 1.17 keeps it";
  }
  if (patched.has(proto)) return null;
  const { alloc, finalize } = proto;
  try {
    if (queuedWindowAdjust() === EXPECTED_WINDOW_ADJUST) return "ssh2 no longer corrupts packets queued in a rekey";
    if (!patchPacketWriter(proto)) return "ssh2's PacketWriter is not the class the fix was written for";
    const outside = protocolInRekey();
    outside._kexinit = undefined;
    const framed = (outside._packetRW.write as PacketWriterInternals).alloc(9).length;
    if (queuedWindowAdjust() === EXPECTED_WINDOW_ADJUST && framed === 5 + 9) return null;
  } catch (error) {
    return `ssh2's Protocol failed the self-test: ${error instanceof Error ? error.message : String(error)}`;
  }
  proto.alloc = alloc;
  proto.finalize = finalize;
  patched.delete(proto);
  return "a window adjust queued in a rekey was still not exact with the fix";
}
