/**
 * A faster inbound chacha20-poly1305@openssh.com for ssh2 under Deno.
 *
 * ssh2's pure-JS decipher (used when its native addon is absent, as under
 * Deno) creates three node:crypto chacha20 ciphers per packet and keeps
 * views of the socket's chunks, so every chunk had to be copied before it
 * was handed over. Profiling a 200 MiB tunnel showed it as the largest cost.
 * This one:
 * - computes the length and Poly1305 key blocks with a small ChaCha20 block
 *   function here (64 bytes each: a native cipher costs more to set up than
 *   to run for that), leaving one native chacha20 per packet, for the payload;
 * - checks the MAC exactly as OpenSSH does: Poly1305 over the encrypted
 *   length and packet with the packet's one-time key, all 16 bytes compared
 *   in constant time. Poly1305 runs in the wasm module ssh2 ships (about
 *   1.6 GB/s here; a JS one measured 117 MB/s);
 * - never keeps a view of its input, so the socket can reuse its read
 *   buffer ({@linkcode ownsNoInput}).
 *
 * It is installed by swapping the decipher ssh2 assigns at each NEWKEYS
 * (see {@linkcode useFastDecipher}); ssh2 only calls `decrypt` and `free`,
 * and reads or writes `inSeqno` and `_onPayload`. The length checks and the
 * control flow around `onPayload` are ssh2's; the padding length is checked
 * as RFC 4253 asks (ssh2 did not), and a failure is final.
 *
 * A failed check throws an error whose `integrity` field is true (see
 * {@linkcode isIntegrityFailure}), and so does one of ssh2's own deciphers
 * with a MAC (AES-GCM, CTR + HMAC) once `useFastDecipher` wraps it: the
 * connection's error mapping tells altered data from other failures by that
 * field, not by message text.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { unpatched } from "./chacha_fix.ts";
import createPoly1305 from "ssh2/lib/protocol/crypto/poly1305.js";
import { decipherHolderOf, type OnPayload, type Ssh2ChachaDecipher, type Ssh2Decipher } from "./internals.ts";

/** ssh2's bound on a packet's length field; OpenSSH's channels send ≤ 32 KiB of data per packet. */
export const MAX_PACKET_LENGTH = 35000;

/** An error from a decipher's own checks: what arrived is not what the peer sealed. */
export interface IntegrityFailure extends Error {
  /** Always true; the field the error mapping reads. */
  integrity: true;
}

/** True if `error` came from a decipher's length, MAC or padding check. */
export function isIntegrityFailure(error: unknown): error is IntegrityFailure {
  return error instanceof Error && (error as Partial<IntegrityFailure>).integrity === true;
}

function integrityFailure(message: string): IntegrityFailure {
  return Object.assign(new Error(message), { integrity: true as const });
}

/** The part of ssh2's emscripten Poly1305 module used here. */
interface Poly1305Wasm {
  HEAPU8: Uint8Array;
  _malloc(size: number): number;
  _free(at: number): void;
  /** poly1305_auth(out, m1, m1len, m2, m2len, key): the tag of m1‖m2. */
  _poly1305_auth(out: number, m1: number, m1len: number, m2: number, m2len: number, key: number): void;
}

/**
 * One instance for every connection: the event loop runs one `decrypt` at a
 * time, and each packet's message is copied in whole just before its MAC is
 * computed, so nothing in the module's memory outlives one call. Loaded on
 * the first connect, not at start-up (it costs 5-9 ms).
 */
let wasm: PolyWasm | null = null;
let loading: Promise<void> | null = null;

type PolyWasm = { module: Poly1305Wasm; message: number; key: number; out: number };

/**
 * Loads the wasm Poly1305 once. Await it before {@linkcode useFastDecipher}
 * or constructing a {@linkcode ChachaPolyDecipher}; it never rejects (if
 * loading fails, `useFastDecipher` returns false).
 */
export function prepareFastDecipher(): Promise<void> {
  return loading ??= loadPoly1305().then((loaded) => void (wasm = loaded));
}

async function loadPoly1305(): Promise<PolyWasm | null> {
  try {
    const module = await (createPoly1305 as unknown as () => Promise<Poly1305Wasm>)();
    const message = module._malloc(4 + MAX_PACKET_LENGTH);
    const key = module._malloc(32);
    const out = module._malloc(16);
    if (message === 0 || key === 0 || out === 0) return null;
    return { module, message, key, out };
  } catch {
    // no wasm here: the self-test fails and ssh2's own decipher stays
    return null;
  }
}

// A packet sealed by ssh2's own cipher (seqno 7, keys 0..63): opening it
// proves the block function and the wasm Poly1305 give OpenSSH's answer
// before any connection depends on them; otherwise ssh2's decipher stays.
const KNOWN_KEY = Uint8Array.from({ length: 64 }, (_, i) => i);
const KNOWN_SEQNO = 7;
const KNOWN_PACKET =
  "a39afc8a2c2b763363f14f330319dedda4fcbb0c5fdc5f4110c35ced331d7ead80530354156ef1f6ff7b0a1ee485dee3ddfbfe5b";
const KNOWN_PAYLOAD = "mcp-remote-ssh known answer";
let selfTest: boolean | null = null;

/**
 * Opens a known packet sealed by ssh2's cipher and refuses it with one MAC
 * bit flipped. Returns why it failed, or null. Needs
 * {@linkcode prepareFastDecipher} first.
 */
export function fastDecipherSelfTest(): string | null {
  if (wasm === null) return "the wasm Poly1305 could not be loaded";
  return selfTestPassed() ? null : "it did not open a known packet exactly, or accepted it with a wrong MAC";
}

function selfTestPassed(): boolean {
  if (wasm === null) return false; // not loaded (yet), or cannot be
  if (selfTest !== null) return selfTest;
  selfTest = false;
  try {
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
    // and the same packet with one MAC bit flipped must be refused
    packet[packet.length - 1] ^= 0x80;
    const refused = new ChachaPolyDecipher({
      inSeqno: KNOWN_SEQNO,
      _onPayload: () => void (got = ""),
      _decKeyMain: key.subarray(0, 32),
      _decKeyPktLen: key.subarray(32),
    });
    try {
      refused.decrypt(packet, 0, packet.length);
      return false;
    } catch (error) {
      if (!isIntegrityFailure(error)) return false;
    }
    selfTest = got === KNOWN_PAYLOAD;
  } catch {
    // a runtime whose chacha20 or wasm differs: keep ssh2's decipher
  }
  return selfTest;
}

/** Instances whose input chunks may be reused by the socket once `decrypt` returns. */
const inputFree = new WeakSet<object>();

/** True if `decipher` copies what it keeps, so its input buffer can be reused. */
export function ownsNoInput(decipher: unknown): boolean {
  return typeof decipher === "object" && decipher !== null && inputFree.has(decipher);
}

/**
 * Makes a connecting ssh2 client use {@linkcode ChachaPolyDecipher} for every
 * chacha20-poly1305 key it gets (the first and each rekey), and marks the
 * check failures of ssh2's other MAC'd deciphers as integrity failures. Call
 * right after `client.connect()`. Returns false, changing nothing, if ssh2's
 * internals are not the expected shape or this runtime fails the
 * known-answer test, or {@linkcode prepareFastDecipher} has not loaded the
 * wasm Poly1305.
 */
export function useFastDecipher(client: unknown): boolean {
  const protocol = decipherHolderOf(client);
  if (!selfTestPassed() || protocol === undefined) return false;
  let current: unknown = protocol._decipher;
  Object.defineProperty(protocol, "_decipher", {
    configurable: true,
    enumerable: true,
    get: () => current,
    set: (next: unknown) => {
      if (isSsh2Chacha(next)) current = new ChachaPolyDecipher(next);
      else {
        if (isSsh2MacDecipher(next)) markIntegrityFailures(next);
        current = next;
      }
    },
  });
  return true;
}

/** True if `d` is ssh2 1.17's chacha20-poly1305 decipher with the fields {@linkcode ChachaPolyDecipher} takes over. */
export function isSsh2Chacha(d: unknown): d is Ssh2ChachaDecipher {
  const c = d as Partial<Ssh2ChachaDecipher> | null;
  return typeof c === "object" && c !== null && c.constructor?.name === "ChaChaPolyDecipherNative" &&
    typeof c.inSeqno === "number" && typeof c._onPayload === "function" && typeof c.decrypt === "function" &&
    Buffer.isBuffer(c._decKeyMain) && c._decKeyMain.length === 32 &&
    Buffer.isBuffer(c._decKeyPktLen) && c._decKeyPktLen.length === 32;
}

// ssh2 1.17's deciphers that check a MAC or tag (crypto.js): whatever they
// throw themselves is a length, tag or MAC check. The AES-GCM one also keeps
// no view of its input (node:crypto consumes it in update(); the tag is
// copied), so the socket may lend it its buffer as it does to ours.
const MAC_DECIPHERS: Record<string, { keepsNoInput: boolean }> = {
  AESGCMDecipherNative: { keepsNoInput: true },
  GenericDecipherNative: { keepsNoInput: false },
};

function isSsh2MacDecipher(d: unknown): d is Ssh2Decipher {
  const c = d as Partial<Ssh2Decipher> | null;
  return typeof c === "object" && c !== null && Object.hasOwn(MAC_DECIPHERS, c.constructor?.name ?? "") &&
    typeof c._onPayload === "function" && typeof c.decrypt === "function";
}

/**
 * Wraps `d.decrypt` so that what it throws itself is marked as an integrity
 * failure, while an error thrown by the payload handler it calls (ssh2's
 * protocol code, which kex.js swaps in and out through `_onPayload`) passes
 * through unmarked.
 */
function markIntegrityFailures(d: Ssh2Decipher): void {
  let handler = d._onPayload;
  let fromHandler: unknown = undefined;
  const wrapped: OnPayload = (payload) => {
    try {
      return handler(payload);
    } catch (error) {
      fromHandler = error;
      throw error;
    }
  };
  Object.defineProperty(d, "_onPayload", {
    configurable: true,
    enumerable: true,
    get: () => wrapped,
    set: (next: OnPayload) => void (handler = next),
  });
  const decrypt = d.decrypt;
  d.decrypt = function (data: Uint8Array, p: number, dataLen: number): number | undefined {
    try {
      return decrypt.call(this, data, p, dataLen);
    } catch (error) {
      if (error !== fromHandler && error instanceof Error) Object.assign(error, { integrity: true });
      fromHandler = undefined;
      throw error;
    }
  };
  if (MAC_DECIPHERS[d.constructor.name].keepsNoInput) inputFree.add(d);
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
  #block = new Uint32Array(16);
  #blockBytes: Uint8Array;
  // packet state: length field, then the encrypted packet, then its MAC
  #lenBytes = new Uint8Array(4);
  #lenPos = 0;
  #len = 0;
  #packet: Uint8Array | null = null; // own copy (length field first), only when a packet spans chunks
  #spanning: Uint8Array | null = null; // where #packet is kept, reused from packet to packet
  #pktPos = 0;
  #mac = new Uint8Array(16);
  #macPos = 0;
  #failed: string | null = null;

  /** Throws unless {@linkcode prepareFastDecipher} has loaded the wasm Poly1305. */
  constructor(from: { inSeqno: number; _onPayload: OnPayload; _decKeyMain: Buffer; _decKeyPktLen: Buffer }) {
    if (wasm === null) throw new Error("The wasm Poly1305 is not loaded: await prepareFastDecipher() first");
    this.inSeqno = from.inSeqno;
    this._onPayload = from._onPayload;
    this.#keyMain = Buffer.alloc(32); // its own memory, not a slice of Buffer's shared pool
    this.#keyMain.set(from._decKeyMain);
    this.#wordsMain = keyWords(from._decKeyMain);
    this.#wordsLen = keyWords(from._decKeyPktLen);
    this.#blockBytes = new Uint8Array(this.#block.buffer);
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
    if (this.#failed !== null) throw integrityFailure(this.#failed);
    try {
      return this.#decrypt(data, p, dataLen);
    } catch (error) {
      // Only this decipher's own checks make it unusable; an error from the
      // payload handler is ssh2's, and ssh2 decides what follows.
      if (isIntegrityFailure(error)) this.#failed = error.message;
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
        b.fill(0, 0, 4);
        if (this.#len > MAX_PACKET_LENGTH || this.#len < 8 || (this.#len & 7) !== 0) {
          throw integrityFailure("Bad packet length");
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
            // One buffer per connection for every packet that spans chunks: only the MAC check and the
            // decryption read it, before this call returns, so the next packet may reuse it.
            this.#spanning ??= new Uint8Array(4 + MAX_PACKET_LENGTH);
            this.#packet = this.#spanning.subarray(0, 4 + this.#len);
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

      if (!this.#macMatches(message)) throw integrityFailure("Invalid MAC");

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
      if (padding < 4 || padding + 2 > packet.length) throw integrityFailure("Bad padding length");
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
   * OpenSSH's check: Poly1305 over `message` (the encrypted length and
   * packet) keyed with the first 32 bytes of block 0 of the main key at this
   * sequence number, equal in all 16 bytes to the MAC received. The
   * comparison ORs every byte's difference, so its time does not depend on
   * where a wrong MAC differs.
   */
  #macMatches(message: Uint8Array): boolean {
    const { module, message: at, key, out } = wasm!;
    chachaBlock(this.#wordsMain, 0, this.inSeqno, this.#block);
    const heap = module.HEAPU8;
    heap.set(message, at);
    heap.set(this.#blockBytes.subarray(0, 32), key);
    this.#blockBytes.fill(0);
    module._poly1305_auth(out, at, message.length, 0, 0, key);
    heap.fill(0, key, key + 32);
    let diff = 0;
    for (let i = 0; i < 16; i++) diff |= heap[out + i] ^ this.#mac[i];
    heap.fill(0, out, out + 16);
    return diff === 0;
  }
}

/** A larger message area for {@linkcode poly1305Tag}, made when a message exceeds the decipher's. */
let largeArea = { at: 0, size: 0 };

/**
 * Writes into `out` the Poly1305 tag of `message` under the 32-byte `key`,
 * with the same wasm module and message area as the decipher (each use
 * copies its message in whole just before computing, within one call).
 * For ./chacha_cipher.ts; needs {@linkcode prepareFastDecipher} first.
 */
export function poly1305Tag(message: Uint8Array, key: Uint8Array, out: Uint8Array): void {
  if (wasm === null) throw new Error("The wasm Poly1305 is not loaded: await prepareFastDecipher() first");
  const { module, key: keyAt, out: outAt } = wasm;
  let at = wasm.message;
  if (message.length > 4 + MAX_PACKET_LENGTH) {
    if (message.length > largeArea.size) {
      // One area, grown by doubling and the old one freed: packets that grow a little each time (a server's
      // large maxPacket, longer and longer commands) must not leave an area behind each, in a module every
      // session shares and whose memory never shrinks.
      let size = Math.max(64 * 1024, largeArea.size);
      while (size < message.length) size *= 2;
      const more = module._malloc(size);
      if (more === 0) throw new Error(`The wasm Poly1305 has no room for a ${message.length}-byte packet`);
      if (largeArea.at !== 0) module._free(largeArea.at);
      largeArea = { at: more, size };
    }
    at = largeArea.at;
  }
  const heap = module.HEAPU8; // read after _malloc, which may have grown (replaced) it
  heap.set(message, at);
  heap.set(key.subarray(0, 32), keyAt);
  module._poly1305_auth(outAt, at, message.length, 0, 0, keyAt);
  out.set(heap.subarray(outAt, outAt + 16));
  heap.fill(0, keyAt, keyAt + 32);
  heap.fill(0, outAt, outAt + 16);
}

/**
 * Bytes of the wasm Poly1305 module's memory, which grows and never shrinks:
 * for tests that prove {@linkcode poly1305Tag} does not leak it.
 *
 * @returns The size of its heap, or 0 before {@linkcode prepareFastDecipher}.
 */
export function poly1305HeapBytes(): number {
  return wasm === null ? 0 : wasm.module.HEAPU8.length;
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
