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

import { Buffer } from "node:buffer";

/** The part of ssh2's PacketWriter this fix relies on. */
export interface PacketWriterLike {
  allocStart: number;
  _protocol: { _kexinit: unknown; _cipher: { allocPacket(n: number): Buffer } };
  alloc(payloadSize: number, force?: boolean): Buffer;
  finalize(packet: Buffer, force?: boolean): Buffer;
}

const patched = new WeakSet<object>();
const framedDuringKex = new WeakSet<Buffer>();

/**
 * Patches the class of a connected ssh2 client's packet writer (once per
 * class; ssh2 creates a new writer at every rekey). Returns false, changing
 * nothing, if ssh2's internals are not the shape this fix was written for.
 */
export function fixRekeyQueue(client: unknown): boolean {
  // deno-lint-ignore no-explicit-any
  const writer = (client as any)?._protocol?._packetRW?.write as PacketWriterLike | undefined;
  if (!writer || writer.allocStart !== 5 || typeof writer.alloc !== "function") return false;
  return patchPacketWriter(Object.getPrototypeOf(writer));
}

/** Patches a PacketWriter prototype in place; exported for tests. */
export function patchPacketWriter(proto: PacketWriterLike): boolean {
  if (patched.has(proto)) return true;
  if (proto.constructor?.name !== "PacketWriter") return false;
  patched.add(proto);
  proto.alloc = function (this: PacketWriterLike, payloadSize: number, force?: boolean): Buffer {
    if (this._protocol._kexinit === undefined || force) return this._protocol._cipher.allocPacket(payloadSize);
    const buf = Buffer.allocUnsafe(this.allocStart + payloadSize);
    framedDuringKex.add(buf);
    return buf;
  };
  proto.finalize = function (this: PacketWriterLike, packet: Buffer): Buffer {
    return framedDuringKex.has(packet) ? packet.subarray(this.allocStart) : packet;
  };
  return true;
}
