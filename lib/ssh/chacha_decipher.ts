/**
 * A faster inbound chacha20-poly1305@openssh.com for ssh2 under Deno.
 *
 * ssh2's pure-JS decipher (used when its native addon is absent, as under
 * Deno) creates three node:crypto chacha20 ciphers per packet, runs
 * Poly1305 in wasm at about 2 GB/s, and keeps views of the socket's chunks,
 * so every chunk had to be copied before it was handed over. Profiling a
 * 200 MiB tunnel showed it as the largest cost. This one:
 * - computes the length and Poly1305 key blocks with a small ChaCha20 block
 *   function here (64 bytes each: a native cipher costs more to set up than
 *   to run for that), leaving one native chacha20 per packet, for the payload;
 * - has the MAC computed natively by node:crypto's chacha20-poly1305 AEAD
 *   (see `#macMatches` for how its tag gives OpenSSH's);
 * - never keeps a view of its input, so the socket can reuse its read
 *   buffer ({@linkcode ownsNoInput}).
 *
 * It is installed by swapping the decipher ssh2 assigns at each NEWKEYS
 * (see {@linkcode useFastDecipher}); ssh2 only calls `decrypt` and `free`,
 * and reads or writes `inSeqno` and `_onPayload`. The length checks and the
 * control flow around `onPayload` are ssh2's; the padding length is checked
 * as RFC 4253 asks (ssh2 did not), and a failure is final.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import crypto from "node:crypto";
import { unpatched } from "./chacha_fix.ts";

/** ssh2's bound on a packet's length field; OpenSSH's channels send ≤ 32 KiB of data per packet. */
export const MAX_PACKET_LENGTH = 35000;

// A packet sealed by ssh2's own cipher (seqno 7, keys 0..63): opening it
// proves this Deno's AEAD behaves as #macMatches relies on, before any
// connection depends on it; otherwise ssh2's decipher stays.
const KNOWN_KEY = Uint8Array.from({ length: 64 }, (_, i) => i);
const KNOWN_SEQNO = 7;
const KNOWN_PACKET =
  "a39afc8a2c2b763363f14f330319dedda4fcbb0c5fdc5f4110c35ced331d7ead80530354156ef1f6ff7b0a1ee485dee3ddfbfe5b";
const KNOWN_PAYLOAD = "mcp-remote-ssh known answer";
let selfTest: boolean | null = null;

function selfTestPassed(): boolean {
  if (selfTest !== null) return selfTest;
  selfTest = false;
  try {
    if (!crypto.getCiphers().includes("chacha20-poly1305")) return false;
    const key = Buffer.from(KNOWN_KEY);
    let got = "";
    const d = new ChachaPolyDecipher({
      inSeqno: KNOWN_SEQNO,
      _onPayload: (payload) => void (got = payload.toString()),
      _decKeyMain: key.subarray(0, 32),
      _decKeyPktLen: key.subarray(32),
    });
    const packet = Buffer.from(KNOWN_PACKET, "hex");
    d.decrypt(packet, 0, packet.length);
    selfTest = got === KNOWN_PAYLOAD;
  } catch {
    // a Deno whose AEAD differs: keep ssh2's decipher
  }
  return selfTest;
}

/** What ssh2's chacha20-poly1305 decipher carries that this one needs. */
interface Ssh2ChachaDecipher {
  inSeqno: number;
  _onPayload: OnPayload;
  _decKeyMain: Buffer;
  _decKeyPktLen: Buffer;
  decrypt: unknown;
  free(): void;
}

type OnPayload = (payload: Buffer) => unknown;

/** Instances whose input chunks may be reused by the socket once `decrypt` returns. */
const inputFree = new WeakSet<object>();

/** True if `decipher` copies what it keeps, so its input buffer can be reused. */
export function ownsNoInput(decipher: unknown): boolean {
  return typeof decipher === "object" && decipher !== null && inputFree.has(decipher);
}

/**
 * Makes a connecting ssh2 client use {@linkcode ChachaPolyDecipher} for every
 * chacha20-poly1305 key it gets (the first and each rekey). Call right after
 * `client.connect()`. Returns false, changing nothing, if ssh2's internals
 * are not the expected shape or this runtime fails the known-answer test.
 */
export function useFastDecipher(client: unknown): boolean {
  // deno-lint-ignore no-explicit-any
  const protocol = (client as any)?._protocol;
  if (!selfTestPassed() || typeof protocol !== "object" || protocol === null || !("_decipher" in protocol)) {
    return false;
  }
  let current: unknown = protocol._decipher;
  Object.defineProperty(protocol, "_decipher", {
    configurable: true,
    enumerable: true,
    get: () => current,
    set: (next: unknown) => {
      current = isSsh2Chacha(next) ? new ChachaPolyDecipher(next) : next;
    },
  });
  return true;
}

function isSsh2Chacha(d: unknown): d is Ssh2ChachaDecipher {
  const c = d as Partial<Ssh2ChachaDecipher> | null;
  return typeof c === "object" && c !== null && c.constructor?.name === "ChaChaPolyDecipherNative" &&
    typeof c.inSeqno === "number" && typeof c._onPayload === "function" && typeof c.decrypt === "function" &&
    Buffer.isBuffer(c._decKeyMain) && c._decKeyMain.length === 32 &&
    Buffer.isBuffer(c._decKeyPktLen) && c._decKeyPktLen.length === 32;
}

/** Inbound chacha20-poly1305@openssh.com (PROTOCOL.chacha20poly1305 in OpenSSH). */
export class ChachaPolyDecipher {
  /** Sequence number of the next packet; ssh2 reads it at rekey and resets it in strict KEX. */
  inSeqno: number;
  /** ssh2 swaps this during a key exchange. */
  _onPayload: OnPayload;
  #keyMain: Buffer;
  #wordsMain: Uint32Array;
  #wordsLen: Uint32Array;
  #iv = Buffer.alloc(16);
  #nonce = Buffer.alloc(12);
  #field = fieldScratch();
  #macView: DataView;
  #block = new Uint32Array(16);
  #blockBytes: Uint8Array;
  // packet state: length field, then the encrypted packet, then its MAC
  #lenBytes = new Uint8Array(4);
  #lenPos = 0;
  #len = 0;
  #packet: Uint8Array | null = null; // own copy (length field first), only when a packet spans chunks
  #pktPos = 0;
  #mac = new Uint8Array(16);
  #macPos = 0;
  #failed: string | null = null;

  constructor(from: { inSeqno: number; _onPayload: OnPayload; _decKeyMain: Buffer; _decKeyPktLen: Buffer }) {
    this.inSeqno = from.inSeqno;
    this._onPayload = from._onPayload;
    this.#keyMain = Buffer.alloc(32); // its own memory, not a slice of Buffer's shared pool
    this.#keyMain.set(from._decKeyMain);
    this.#wordsMain = keyWords(from._decKeyMain);
    this.#wordsLen = keyWords(from._decKeyPktLen);
    this.#blockBytes = new Uint8Array(this.#block.buffer);
    this.#macView = new DataView(this.#mac.buffer);
    inputFree.add(this);
  }

  /** ssh2 calls this when a rekey replaces this decipher, or the connection ends: the keys are wiped. */
  free(): void {
    this.#keyMain.fill(0);
    this.#wordsMain.fill(0);
    this.#wordsLen.fill(0);
  }

  /** ssh2's contract: returns undefined when `data` is used up, or where to resume if a payload handler paused. */
  decrypt(data: Uint8Array, p: number, dataLen: number): number | undefined {
    // ssh2 may go on feeding chunks for a moment after a failure (the
    // connection is closing); a half-read packet must not be resumed then,
    // or a bogus length would size the next buffer.
    if (this.#failed !== null) throw new Error(this.#failed);
    try {
      return this.#decrypt(data, p, dataLen);
    } catch (error) {
      this.#failed = (error as Error).message;
      throw error;
    }
  }

  #decrypt(data: Uint8Array, p: number, dataLen: number): number | undefined {
    while (p < dataLen) {
      let lenAt = -1; // where the length field starts in `data`, if all of it is there
      if (this.#lenPos < 4) {
        if (this.#lenPos === 0) lenAt = p;
        while (this.#lenPos < 4 && p < dataLen) this.#lenBytes[this.#lenPos++] = data[p++];
        if (this.#lenPos < 4) return;
        chachaBlock(this.#wordsLen, 0, this.inSeqno, this.#block);
        const b = this.#blockBytes;
        const l = this.#lenBytes;
        this.#len = (((l[0] ^ b[0]) << 24) | ((l[1] ^ b[1]) << 16) | ((l[2] ^ b[2]) << 8) | (l[3] ^ b[3])) >>> 0;
        if (this.#len > MAX_PACKET_LENGTH || this.#len < 8 || (this.#len & 7) !== 0) {
          throw new Error("Bad packet length");
        }
      }

      // The MAC covers the encrypted length and packet together: `message`.
      let message: Uint8Array;
      if (this.#pktPos < this.#len) {
        if (p >= dataLen) return;
        const nb = Math.min(this.#len - this.#pktPos, dataLen - p);
        if (lenAt >= 0 && nb === this.#len && dataLen - p >= nb + 16) {
          message = data.subarray(lenAt, p + nb); // all here, MAC too: used in place
        } else {
          if (this.#packet === null) {
            this.#packet = new Uint8Array(4 + this.#len);
            this.#packet.set(this.#lenBytes);
          }
          this.#packet.set(data.subarray(p, p + nb), 4 + this.#pktPos);
          message = this.#packet;
        }
        p += nb;
        this.#pktPos += nb;
        if (this.#pktPos < this.#len || p >= dataLen) return;
      } else {
        message = this.#packet!;
      }

      const nb = Math.min(16 - this.#macPos, dataLen - p);
      this.#mac.set(data.subarray(p, p + nb), this.#macPos);
      p += nb;
      this.#macPos += nb;
      if (this.#macPos < 16) return; // a packet is used in place only with its whole MAC, so this one was copied

      if (!this.#macMatches(message)) throw new Error("Invalid MAC");

      // The payload: counter 1 of the main key (block 0 made the Poly1305 key).
      const iv = this.#iv;
      iv.fill(0);
      iv[0] = 1;
      iv.writeUInt32BE(this.inSeqno, 12);
      const cipher = unpatched.createDecipheriv("chacha20", this.#keyMain, iv);
      const packet = cipher.update(message.subarray(4));
      cipher.final(); // frees its native state (see ./chacha_fix.ts)
      // RFC 4253 §6: at least 4 bytes of padding, and a payload of at least
      // the message type (OpenSSH refuses less too).
      const padding = packet[0];
      if (padding < 4 || padding + 2 > packet.length) throw new Error("Bad padding length");
      const payload = packet.subarray(1, packet.length - padding);

      this.inSeqno = (this.inSeqno + 1) >>> 0;
      this.#lenPos = 0;
      this.#len = 0;
      this.#packet = null;
      this.#pktPos = 0;
      this.#macPos = 0;

      const ret = this._onPayload(payload);
      if (ret !== undefined) return ret === false ? p : ret as number;
    }
  }

  /**
   * Poly1305 over `message` with this packet's key, compared with the MAC
   * received, without a wasm or JS Poly1305 loop: node:crypto's IETF
   * chacha20-poly1305 AEAD, given the message's whole 16-byte blocks as
   * additional data and nothing to encrypt, derives the same one-time key
   * (block 0 of the main key; its 96-bit nonce 0‖seqno equals OpenSSH's
   * counter 0 and 64-bit nonce) and runs the same polynomial over those
   * blocks, natively. It then takes a length block where OpenSSH takes the
   * message's last 4 or 12 bytes; both are one more step h → (h + c)·r, so
   * the two accumulators differ by d = (c_openssh − c_aead)·r mod p, and with
   * the key's `s` cancelling, tag_openssh = tag_aead + d + 5q (mod 2^128),
   * where q ∈ {0, 1} says whether the sum wrapped past p.
   *
   * q depends on the two bits the AEAD's tag drops, so both candidates are
   * compared (in constant time). That is weaker than OpenSSH's check in two
   * ways, both bounded: for each genuine packet one more MAC value is also
   * accepted (its true tag ± 5), which lets someone on the path alter the MAC
   * bytes but not the packet, its order or its content; and a forgery of new
   * content has twice Poly1305's odds, about 2^-91 instead of 2^-92 per try
   * for a 32 KiB packet, each failed try ending the connection.
   */
  #macMatches(message: Uint8Array): boolean {
    const nonce = this.#nonce;
    nonce.writeUInt32BE(this.inSeqno, 8);
    const full = message.length & ~15; // message.length ≡ 4 (mod 8): never a whole block at the end
    const aead = unpatched.createCipheriv("chacha20-poly1305", this.#keyMain, nonce, { authTagLength: 16 });
    if (full > 0) aead.setAAD(message.subarray(0, full), { plaintextLength: 0 });
    aead.final();
    const tag = aead.getAuthTag();

    chachaBlock(this.#wordsMain, 0, this.inSeqno, this.#block);
    const f = this.#field;
    // x = c_openssh − c_aead (mod p): the last bytes with their 0x01 pad byte,
    // minus (full + 2^128); −2^128 ≡ 3·2^128 − 5, so x = c_openssh + 3·2^128 − 5 − full.
    const last = f.block;
    last.fill(0);
    last.set(message.subarray(full));
    last[message.length - full] = 1;
    toLimbs(last, 3, f.x);
    f.x[0] -= (full + 5) & 0x1fff;
    f.x[1] -= (full + 5) >>> 13;
    carry(f.x);
    // r: the first half of the one-time key, clamped as Poly1305 does.
    last.set(this.#blockBytes.subarray(0, 16));
    last[3] &= 15, last[7] &= 15, last[11] &= 15, last[15] &= 15;
    last[4] &= 252, last[8] &= 252, last[12] &= 252;
    toLimbs(last, 0, f.r);
    mulMod(f.x, f.r, f.d, f.t);
    last.fill(0);
    this.#blockBytes.fill(0, 0, 32);
    // candidates: tag + d and tag + d + 5 (mod 2^128)
    const w = f.words;
    limbsToWords(f.d, w);
    let c0 = 0, c1 = 5, diff0 = 0, diff1 = 0;
    for (let i = 0; i < 4; i++) {
      const t = tag.readUInt32LE(i * 4);
      const s0 = t + w[i] + c0;
      const v0 = s0 >>> 0;
      c0 = Math.floor(s0 / 4294967296);
      const s1 = v0 + c1;
      const v1 = s1 >>> 0;
      c1 = Math.floor(s1 / 4294967296);
      const m = this.#macView.getUint32(i * 4, true);
      diff0 |= v0 ^ m;
      diff1 |= v1 ^ m;
    }
    f.x.fill(0);
    f.r.fill(0);
    f.d.fill(0);
    return diff0 === 0 || diff1 === 0;
  }
}

/** Scratch numbers mod p = 2^130 − 5, as ten 13-bit limbs (products stay exact in doubles). */
function fieldScratch() {
  return {
    block: new Uint8Array(16),
    x: new Float64Array(10),
    r: new Float64Array(10),
    d: new Float64Array(10),
    t: new Float64Array(10),
    words: new Float64Array(4),
  };
}

/** 16 little-endian bytes plus `high`·2^128 into 13-bit limbs (exported for tests). */
export function toLimbs(bytes: Uint8Array, high: number, out: Float64Array): void {
  let acc = 0, bits = 0, i = 0;
  for (let b = 0; b < 16; b++) {
    acc |= bytes[b] << bits;
    bits += 8;
    if (bits >= 13) {
      out[i++] = acc & 0x1fff;
      acc >>>= 13;
      bits -= 13;
    }
  }
  out[9] = acc | (high << 11); // bits 117..129
}

/** Moves each limb's excess (or borrow) up; what leaves limb 9 comes back ×5 (2^130 ≡ 5). Exported for tests. */
export function carry(h: Float64Array): void {
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 9; i++) {
      const c = Math.floor(h[i] / 8192);
      h[i] -= c * 8192;
      h[i + 1] += c;
    }
    const c = Math.floor(h[9] / 8192);
    h[9] -= c * 8192;
    h[0] += 5 * c;
  }
  for (let i = 0; i < 9; i++) {
    const c = Math.floor(h[i] / 8192);
    h[i] -= c * 8192;
    h[i + 1] += c;
  }
}

/** out = a·b mod p, fully reduced (0 ≤ out < p); `g` is scratch. Exported for tests. */
export function mulMod(a: Float64Array, b: Float64Array, out: Float64Array, g: Float64Array): void {
  for (let i = 0; i < 10; i++) {
    let sum = 0;
    for (let j = 0; j < 10; j++) sum += a[j] * (j <= i ? b[i - j] : 5 * b[i + 10 - j]);
    out[i] = sum;
  }
  carry(out);
  // out < 2^130 now; subtract p once if out ≥ p, i.e. if out + 5 reaches 2^130
  let c = 5;
  for (let i = 0; i < 10; i++) {
    const v = out[i] + c;
    c = Math.floor(v / 8192);
    g[i] = v - c * 8192;
  }
  const take = c; // 1 if out ≥ p
  for (let i = 0; i < 10; i++) out[i] = take * g[i] + (1 - take) * out[i];
}

/** The low 128 bits of a reduced number, as four 32-bit words (exported for tests). */
export function limbsToWords(h: Float64Array, out: Float64Array): void {
  let acc = 0, scale = 1, w = 0;
  for (let i = 0; i < 10 && w < 4; i++) {
    acc += h[i] * scale;
    scale *= 8192;
    while (scale >= 4294967296 && w < 4) {
      const word = acc % 4294967296;
      out[w++] = word;
      acc = (acc - word) / 4294967296;
      scale /= 4294967296;
    }
  }
}

function keyWords(key: Uint8Array): Uint32Array {
  const dv = new DataView(key.buffer, key.byteOffset, 32);
  const w = new Uint32Array(8);
  for (let i = 0; i < 8; i++) w[i] = dv.getUint32(i * 4, true);
  return w;
}

/**
 * One ChaCha20 block (RFC 8439 §2.3) in OpenSSH's layout: a 64-bit block
 * counter and, as the 64-bit nonce, the packet sequence number big-endian.
 * Writes the keystream words (little-endian bytes on every platform Deno
 * runs on) into `out`.
 */
export function chachaBlock(key: Uint32Array, counter: number, seqno: number, out: Uint32Array): void {
  const s12 = counter >>> 0, s13 = 0, s14 = 0;
  // seqno's big-endian bytes read as a little-endian word
  const s15 =
    (((seqno & 0xff) << 24) | ((seqno >>> 8 & 0xff) << 16) | ((seqno >>> 16 & 0xff) << 8) | (seqno >>> 24)) >>> 0;
  let x0 = 0x61707865, x1 = 0x3320646e, x2 = 0x79622d32, x3 = 0x6b206574;
  let x4 = key[0], x5 = key[1], x6 = key[2], x7 = key[3];
  let x8 = key[4], x9 = key[5], x10 = key[6], x11 = key[7];
  let x12 = s12, x13 = s13, x14 = s14, x15 = s15;
  for (let i = 0; i < 10; i++) {
    // columns
    x0 = (x0 + x4) | 0, x12 ^= x0, x12 = (x12 << 16) | (x12 >>> 16);
    x8 = (x8 + x12) | 0, x4 ^= x8, x4 = (x4 << 12) | (x4 >>> 20);
    x0 = (x0 + x4) | 0, x12 ^= x0, x12 = (x12 << 8) | (x12 >>> 24);
    x8 = (x8 + x12) | 0, x4 ^= x8, x4 = (x4 << 7) | (x4 >>> 25);
    x1 = (x1 + x5) | 0, x13 ^= x1, x13 = (x13 << 16) | (x13 >>> 16);
    x9 = (x9 + x13) | 0, x5 ^= x9, x5 = (x5 << 12) | (x5 >>> 20);
    x1 = (x1 + x5) | 0, x13 ^= x1, x13 = (x13 << 8) | (x13 >>> 24);
    x9 = (x9 + x13) | 0, x5 ^= x9, x5 = (x5 << 7) | (x5 >>> 25);
    x2 = (x2 + x6) | 0, x14 ^= x2, x14 = (x14 << 16) | (x14 >>> 16);
    x10 = (x10 + x14) | 0, x6 ^= x10, x6 = (x6 << 12) | (x6 >>> 20);
    x2 = (x2 + x6) | 0, x14 ^= x2, x14 = (x14 << 8) | (x14 >>> 24);
    x10 = (x10 + x14) | 0, x6 ^= x10, x6 = (x6 << 7) | (x6 >>> 25);
    x3 = (x3 + x7) | 0, x15 ^= x3, x15 = (x15 << 16) | (x15 >>> 16);
    x11 = (x11 + x15) | 0, x7 ^= x11, x7 = (x7 << 12) | (x7 >>> 20);
    x3 = (x3 + x7) | 0, x15 ^= x3, x15 = (x15 << 8) | (x15 >>> 24);
    x11 = (x11 + x15) | 0, x7 ^= x11, x7 = (x7 << 7) | (x7 >>> 25);
    // diagonals
    x0 = (x0 + x5) | 0, x15 ^= x0, x15 = (x15 << 16) | (x15 >>> 16);
    x10 = (x10 + x15) | 0, x5 ^= x10, x5 = (x5 << 12) | (x5 >>> 20);
    x0 = (x0 + x5) | 0, x15 ^= x0, x15 = (x15 << 8) | (x15 >>> 24);
    x10 = (x10 + x15) | 0, x5 ^= x10, x5 = (x5 << 7) | (x5 >>> 25);
    x1 = (x1 + x6) | 0, x12 ^= x1, x12 = (x12 << 16) | (x12 >>> 16);
    x11 = (x11 + x12) | 0, x6 ^= x11, x6 = (x6 << 12) | (x6 >>> 20);
    x1 = (x1 + x6) | 0, x12 ^= x1, x12 = (x12 << 8) | (x12 >>> 24);
    x11 = (x11 + x12) | 0, x6 ^= x11, x6 = (x6 << 7) | (x6 >>> 25);
    x2 = (x2 + x7) | 0, x13 ^= x2, x13 = (x13 << 16) | (x13 >>> 16);
    x8 = (x8 + x13) | 0, x7 ^= x8, x7 = (x7 << 12) | (x7 >>> 20);
    x2 = (x2 + x7) | 0, x13 ^= x2, x13 = (x13 << 8) | (x13 >>> 24);
    x8 = (x8 + x13) | 0, x7 ^= x8, x7 = (x7 << 7) | (x7 >>> 25);
    x3 = (x3 + x4) | 0, x14 ^= x3, x14 = (x14 << 16) | (x14 >>> 16);
    x9 = (x9 + x14) | 0, x4 ^= x9, x4 = (x4 << 12) | (x4 >>> 20);
    x3 = (x3 + x4) | 0, x14 ^= x3, x14 = (x14 << 8) | (x14 >>> 24);
    x9 = (x9 + x14) | 0, x4 ^= x9, x4 = (x4 << 7) | (x4 >>> 25);
  }
  out[0] = x0 + 0x61707865;
  out[1] = x1 + 0x3320646e;
  out[2] = x2 + 0x79622d32;
  out[3] = x3 + 0x6b206574;
  out[4] = x4 + key[0];
  out[5] = x5 + key[1];
  out[6] = x6 + key[2];
  out[7] = x7 + key[3];
  out[8] = x8 + key[4];
  out[9] = x9 + key[5];
  out[10] = x10 + key[6];
  out[11] = x11 + key[7];
  out[12] = x12 + s12;
  out[13] = x13 + s13;
  out[14] = x14 + s14;
  out[15] = x15 + s15;
}
