/**
 * Outbound chacha20-poly1305@openssh.com for ssh2 under Deno, with one
 * allocation and one native cipher per packet instead of ssh2's five and three.
 *
 * ssh2's pure-JS cipher (`ChaChaPolyCipherNative`, used when its native addon
 * is absent, as under Deno) allocates per packet a new plaintext packet
 * (~32 KiB, which Deno zero-fills), three node:crypto chacha20 ciphers (each
 * a stream object with native state) and their outputs (32 KiB for the
 * payload), a 16-byte MAC, and hands the socket three pieces. Profiling a
 * 200 MiB upload showed these allocations as the largest cost after
 * Poly1305 itself.
 *
 * This one keeps one plaintext buffer per connection and seals each packet
 * with a single chacha20 run over [60 zero bytes | packet | 16 spare bytes]
 * at block counter 0 of the main key (PROTOCOL.chacha20poly1305 in OpenSSH):
 * - bytes 0-31 of its output are the packet's Poly1305 key (block 0);
 * - the packet's payload starts at byte 64, so it is encrypted with block 1
 *   on, exactly as the protocol asks;
 * - the four bytes before it (the length) are replaced by the length
 *   encrypted with the header key, computed here with the block function of
 *   ./chacha_decipher.ts, and the 16 spare bytes by the MAC.
 * The output from byte 60 on is the packet as it goes on the wire, written
 * in one piece; the key bytes before it are wiped. The bytes are the same
 * as ssh2's cipher sends ({@linkcode fastCipherSelfTest} checks this on
 * ssh2's own code).
 *
 * The plaintext buffer is lent by `allocPacket()` and taken back by the
 * `encrypt()` of that packet (ssh2 always encrypts a packet in the same
 * turn it allocates it); a second `allocPacket()` before then, or a packet
 * too large for it, gets a buffer of its own (and so does every packet after
 * one that was never encrypted). Nothing handed to the socket
 * is ever reused: ./socket.ts copies a chunk only when it flushes, later.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { randomFillSync } from "node:crypto";
import { unpatched } from "./chacha_fix.ts";
import { chachaBlock, poly1305Tag } from "./chacha_decipher.ts";
import { cipherHolderOf } from "./internals.ts";
// @ts-types="./ssh2_crypto.d.ts"
import ssh2Crypto from "ssh2/lib/protocol/crypto.js";

const NAME = "chacha20-poly1305@openssh.com";

/** Zero bytes before a packet: its payload then starts at keystream block 1. */
const LEAD = 60;
/** Spare bytes after a packet: the cipher's output there is replaced by the MAC. */
const TAG = 16;
/** The lent plaintext buffer's room for a packet: OpenSSH's 32 KiB channel packets and their framing. */
const ROOM = 36 * 1024;

/** The fields of ssh2's `ChaChaPolyCipherNative` (lib/protocol/crypto.js) this cipher takes over. */
export interface Ssh2ChachaCipher {
  /** Sequence number of the next packet. */
  outSeqno: number;
  /** Where sealed packets go. */
  _onWrite: (data: Buffer) => unknown;
  /** K_2 of PROTOCOL.chacha20poly1305: payload and Poly1305 key. */
  _encKeyMain: Buffer;
  /** K_1: the length field. */
  _encKeyPktLen: Buffer;
  /** Set by free(). */
  _dead: boolean;
  /** A framed packet with room for `payloadLen` bytes at offset 5. */
  allocPacket(payloadLen: number): Buffer;
  /** Seals a packet from allocPacket and writes it. */
  encrypt(packet: Buffer): void;
  /** Retires the cipher. */
  free(): void;
}

/** True if `c` is ssh2 1.17's pure-JS chacha20-poly1305 cipher with the fields {@linkcode ChachaPolyCipher} takes over. */
export function isSsh2ChachaCipher(c: unknown): c is Ssh2ChachaCipher {
  const x = c as Partial<Ssh2ChachaCipher> | null;
  return typeof x === "object" && x !== null && x.constructor?.name === "ChaChaPolyCipherNative" &&
    typeof x.outSeqno === "number" && typeof x._onWrite === "function" && typeof x.encrypt === "function" &&
    typeof x.allocPacket === "function" && x._dead === false &&
    Buffer.isBuffer(x._encKeyMain) && x._encKeyMain.length === 32 &&
    Buffer.isBuffer(x._encKeyPktLen) && x._encKeyPktLen.length === 32;
}

/** Outbound chacha20-poly1305@openssh.com with ssh2's cipher interface. */
export class ChachaPolyCipher {
  /** Sequence number of the next packet; ssh2 reads it at rekey and resets it in strict KEX. */
  outSeqno: number;
  /** Where sealed packets go (ssh2's socket write). */
  _onWrite: (data: Buffer) => unknown;
  /** Set by free(): ssh2's ciphers then send nothing more. */
  _dead = false;
  #keyMain: Buffer;
  #wordsLen: Uint32Array;
  #iv = Buffer.alloc(16);
  #block = new Uint32Array(16);
  #blockBytes: Uint8Array;
  #tag = new Uint8Array(TAG);
  /** [LEAD zero bytes | room for a packet | TAG spare], lent to one packet at a time. */
  #plain: Buffer | null = null;
  #lent = false;

  /** Takes the keys, sequence number and writer of ssh2's cipher `from`. */
  constructor(from: Pick<Ssh2ChachaCipher, "outSeqno" | "_onWrite" | "_encKeyMain" | "_encKeyPktLen">) {
    this.outSeqno = from.outSeqno;
    this._onWrite = from._onWrite;
    this.#keyMain = Buffer.alloc(32); // its own memory, not a slice of Buffer's shared pool
    this.#keyMain.set(from._encKeyMain);
    const dv = new DataView(from._encKeyPktLen.buffer, from._encKeyPktLen.byteOffset, 32);
    this.#wordsLen = new Uint32Array(8);
    for (let i = 0; i < 8; i++) this.#wordsLen[i] = dv.getUint32(i * 4, true);
    this.#blockBytes = new Uint8Array(this.#block.buffer);
  }

  /** ssh2 calls this when a rekey replaces this cipher, or the connection ends: the keys are wiped. */
  free(): void {
    this._dead = true;
    this.#keyMain.fill(0);
    this.#wordsLen.fill(0);
    this.#plain?.fill(0);
  }

  /**
   * A framed packet for `payloadLen` bytes of payload at offset 5, padded
   * as ssh2's cipher pads it (random padding, 4 to 11 bytes, to a multiple
   * of 8 without the length field).
   */
  allocPacket(payloadLen: number): Buffer {
    let pktLen = 4 + 1 + payloadLen;
    let padLen = 8 - ((pktLen - 4) & 7);
    if (padLen < 4) padLen += 8;
    pktLen += padLen;
    let packet: Buffer;
    if (!this.#lent && pktLen <= ROOM) {
      this.#plain ??= Buffer.alloc(LEAD + ROOM + TAG);
      packet = this.#plain.subarray(LEAD, LEAD + pktLen);
      this.#lent = true;
    } else packet = Buffer.allocUnsafe(pktLen);
    packet.writeUInt32BE(pktLen - 4, 0);
    packet[4] = padLen;
    randomFillSync(packet, 5 + payloadLen, padLen);
    return packet;
  }

  /** Seals `packet` (from allocPacket, framed) and writes it in one piece. */
  encrypt(packet: Buffer): void {
    if (this._dead) return;
    const n = packet.length;
    let input: Buffer;
    const plain = this.#plain;
    if (plain !== null && packet.buffer === plain.buffer && packet.byteOffset === plain.byteOffset + LEAD) {
      input = plain.subarray(0, LEAD + n + TAG);
      this.#lent = false;
    } else {
      // Not the lent buffer (a nested or oversized packet): framed the same way in a buffer of its own.
      input = Buffer.alloc(LEAD + n + TAG);
      input.set(packet, LEAD);
    }
    const iv = this.#iv;
    iv.fill(0);
    iv.writeUInt32BE(this.outSeqno, 12);
    const cipher = unpatched.createCipheriv("chacha20", this.#keyMain, iv);
    const out = cipher.update(input);
    cipher.final(); // frees its native state (see ./chacha_fix.ts)

    // The length, with the header key at counter 0.
    const b = this.#blockBytes;
    chachaBlock(this.#wordsLen, 0, this.outSeqno, this.#block);
    for (let i = 0; i < 4; i++) out[LEAD + i] = packet[i] ^ b[i];
    this.#block.fill(0);
    // The plaintext (a password in a USERAUTH packet, say) does not wait in the lent buffer for the next packet.
    input.fill(0, LEAD, LEAD + n);

    const wire = out.subarray(LEAD, LEAD + n + TAG);
    poly1305Tag(wire.subarray(0, n), out.subarray(0, 32), this.#tag);
    out.fill(0, 0, LEAD); // the Poly1305 key and unused keystream
    wire.set(this.#tag, n);
    this.#tag.fill(0);
    this._onWrite(wire);
    this.outSeqno = (this.outSeqno + 1) >>> 0;
  }
}

/**
 * Makes a connecting ssh2 client seal with {@linkcode ChachaPolyCipher}
 * every chacha20-poly1305 key it gets (the first and each rekey); other
 * ciphers stay ssh2's. Call right after `client.connect()`, and only once
 * {@linkcode fastCipherSelfTest} has passed. Returns false, changing
 * nothing, if ssh2's Protocol is not where 1.17 keeps it.
 */
export function useFastCipher(client: unknown): boolean {
  const protocol = cipherHolderOf(client);
  if (protocol === undefined) return false;
  let current: unknown = protocol._cipher;
  Object.defineProperty(protocol, "_cipher", {
    configurable: true,
    enumerable: true,
    get: () => current,
    set: (next: unknown) => {
      if (!isSsh2ChachaCipher(next)) return void (current = next);
      current = new ChachaPolyCipher(next);
      next.free(); // ssh2's, now unused: it sends nothing more
    },
  });
  return true;
}

/**
 * Seals the same packets with ssh2's own chacha20-poly1305 cipher and with
 * {@linkcode ChachaPolyCipher} (padding made equal): small, 32 KiB channel
 * sized, one larger than the lent buffer, two allocated before either is
 * encrypted, across a sequence number wrap. Passes if the bytes written are
 * the same, in one piece per packet, and the second of two packets in a row
 * reuses the first one's plaintext buffer. Returns why it failed, or null.
 * Needs ./chacha_decipher.ts's `prepareFastDecipher()` (the wasm Poly1305).
 */
export async function fastCipherSelfTest(): Promise<string | null> {
  try {
    await ssh2Crypto.init;
    const key = Buffer.from(Uint8Array.from({ length: 64 }, (_, i) => (i * 37 + 11) & 0xff));
    const theirs: Buffer[] = [];
    const ours: Buffer[] = [];
    const config = (onWrite: (b: Buffer) => void, seqno: number) => ({
      outbound: { onWrite, cipherInfo: ssh2Crypto.CIPHER_INFO[NAME], cipherKey: key, seqno, forceNative: true },
    });
    const start = 2 ** 32 - 3;
    const ssh2Cipher = ssh2Crypto.createCipher(config((b) => void theirs.push(Buffer.from(b)), start));
    const made = ssh2Crypto.createCipher(config(() => {}, start));
    if (!isSsh2ChachaCipher(made)) return "ssh2's chacha20-poly1305 cipher is not the shape it replaces";
    const cipher = new ChachaPolyCipher(made);
    // Kept by reference, as the socket keeps them: a later packet overwriting an earlier one fails the test.
    cipher._onWrite = (b) => void ours.push(b);
    const reused: boolean[] = [];
    for (const c of [ssh2Cipher, cipher]) {
      let last: ArrayBufferLike | null = null;
      for (const sizes of [[1], [100], [32777], [32777], [40000], [500, 700], [33]]) {
        const packets = sizes.map((n) => c.allocPacket(n));
        if (c === cipher) reused.push(packets[0].buffer === last);
        last = packets[0].buffer;
        packets.forEach((p, k) => p.forEach((_, i) => void (p[i] = (i * 13 + k + p.length) & 0xff)));
        for (const p of packets) c.encrypt(p);
      }
    }
    if (!Buffer.concat(ours).equals(Buffer.concat(theirs))) return "it sealed packets otherwise than ssh2's cipher";
    if (ours.length !== 8) return "it wrote a packet in more than one piece";
    // Sequential packets that fit share the buffer; the 40000-byte one has its own.
    if (reused.join() !== "false,true,true,true,false,false,true") return "it did not reuse its plaintext buffer";
    return null;
  } catch (error) {
    return `ssh2's chacha20-poly1305 cipher failed the self-test: ${
      error instanceof Error ? error.message : String(error)
    }`;
  }
}
