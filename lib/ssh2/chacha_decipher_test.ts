import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import crypto from "node:crypto";
import "./chacha_fix.ts";
// @ts-types="./ssh2_crypto.d.ts"
import ssh2Crypto from "ssh2/lib/protocol/crypto.js";
import {
  chachaBlock,
  ChachaPolyDecipher,
  isIntegrityFailure,
  MAX_PACKET_LENGTH,
  ownsNoInput,
  prepareFastDecipher,
  useFastDecipher,
} from "./chacha_decipher.ts";

await prepareFastDecipher();

const INFO = ssh2Crypto.CIPHER_INFO["chacha20-poly1305@openssh.com"];

/**
 * Packets as ssh2's own pure-JS cipher frames them (the peer's side);
 * `frame` may change the framed plaintext before it is sealed.
 */
async function sealer(key: Buffer, seqno = 0, frame: (packet: Buffer) => void = () => {}) {
  await ssh2Crypto.init;
  const out: Buffer[] = [];
  const cipher = ssh2Crypto.createCipher({
    outbound: {
      onWrite: (b: Buffer) => out.push(Buffer.from(b)),
      cipherInfo: INFO,
      cipherKey: key,
      seqno,
      forceNative: true,
    },
  });
  return (payload: Uint8Array): Buffer => {
    const packet = cipher.allocPacket(payload.length);
    packet.set(payload, 5);
    frame(packet);
    cipher.encrypt(packet);
    return Buffer.concat(out.splice(0));
  };
}

function opener(key: Buffer, seqno = 0) {
  const got: Buffer[] = [];
  const d = new ChachaPolyDecipher({
    inSeqno: seqno,
    _onPayload: (p) => void got.push(Buffer.from(p)),
    _decKeyMain: key.subarray(0, 32),
    _decKeyPktLen: key.subarray(32),
  });
  return { d, got };
}

Deno.test("chachaBlock gives node:crypto's chacha20 keystream in OpenSSH's layout", () => {
  const keyBytes = Uint8Array.from({ length: 32 }, (_, i) => i);
  const key = new Uint32Array(keyBytes.buffer.slice(0));
  const out = new Uint32Array(16);
  chachaBlock(key, 1, 0, out);
  const iv = Buffer.alloc(16);
  iv[0] = 1;
  const expected = crypto.createCipheriv("chacha20", Buffer.from(keyBytes), iv).update(Buffer.alloc(64));
  assert.deepEqual(Buffer.from(out.buffer), expected);
  chachaBlock(key, 0, 0x01020304, out);
  iv.fill(0);
  iv.writeUInt32BE(0x01020304, 12);
  assert.deepEqual(
    Buffer.from(out.buffer),
    crypto.createCipheriv("chacha20", Buffer.from(keyBytes), iv).update(Buffer.alloc(64)),
  );
});

Deno.test("the decipher opens what ssh2's cipher seals, in chunks of any size", async () => {
  const key = crypto.randomBytes(64);
  const seal = await sealer(key, 7);
  const payloads = [1, 2, 15, 16, 17, 100, 1000, 32768, 34000].map((n) => crypto.randomBytes(n));
  const stream = Buffer.concat(payloads.map(seal));
  for (const size of [1, 3, 16, 17, 4096, 32789, stream.length]) {
    const { d, got } = opener(key, 7);
    for (let p = 0; p < stream.length; p += size) {
      const chunk = Buffer.from(stream.subarray(p, p + size));
      assert.equal(d.decrypt(chunk, 0, chunk.length), undefined);
      chunk.fill(0xee); // reused by the socket: nothing may depend on it now
    }
    assert.deepEqual(got, payloads, `chunks of ${size}`);
    assert.equal(d.inSeqno, 7 + payloads.length);
  }
});

Deno.test("the decipher checks every MAC right over thousands of packets of every length", async () => {
  const key = crypto.randomBytes(64);
  const seal = await sealer(key, 0xfffffff0); // the sequence number wraps on the way
  const { d, got } = opener(key, 0xfffffff0);
  const sizes = Array.from({ length: 3000 }, (_, i) => i < 64 ? i + 1 : crypto.randomInt(1, 32769));
  for (const size of sizes) {
    const payload = crypto.randomBytes(size);
    const packet = seal(payload);
    d.decrypt(packet, 0, packet.length);
    assert.deepEqual(got.pop(), payload);
  }
  assert.equal(d.inSeqno, (0xfffffff0 + sizes.length) >>> 0);
});

Deno.test("the decipher refuses a changed MAC, payload or length", async () => {
  const key = crypto.randomBytes(64);
  const seal = await sealer(key);
  const packets = Array.from({ length: 40 }, () => seal(crypto.randomBytes(crypto.randomInt(1, 2000))));
  for (const [i, packet] of packets.entries()) {
    const where = [packet.length - 1 - (i % 16), 4 + (i * 7) % (packet.length - 20)];
    for (const at of where) {
      const bad = Buffer.from(packet);
      bad[at] ^= 1 << (i % 8);
      const { d, got } = opener(key, i);
      assert.throws(() => d.decrypt(bad, 0, bad.length), /Invalid MAC/, `byte ${at} of packet ${i}`);
      assert.equal(got.length, 0);
    }
    // the packets were sealed with sequence numbers 0..39: one out of order fails too
    const { d } = opener(key, i + 1);
    assert.throws(() => d.decrypt(packet, 0, packet.length), /Invalid MAC|Bad packet length/);
  }
  // a length field that decrypts to nonsense is refused before any MAC work
  const { d } = opener(key, 0);
  const bad = Buffer.from(packets[0]);
  bad[0] ^= 0x80;
  assert.throws(() => d.decrypt(bad, 0, bad.length), /Bad packet length/);
});

Deno.test("a packet longer than ssh2 allows is refused by its length alone", () => {
  const key = crypto.randomBytes(64);
  const { d } = opener(key, 3);
  const words = new Uint32Array(8);
  new Uint8Array(words.buffer).set(key.subarray(32));
  const block = new Uint32Array(16);
  chachaBlock(words, 0, 3, block);
  const stream = new Uint8Array(block.buffer);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(MAX_PACKET_LENGTH + 8);
  const encLen = len.map((b, i) => b ^ stream[i]);
  assert.throws(() => d.decrypt(Buffer.from(encLen), 0, 4), /Bad packet length/);
});

Deno.test("useFastDecipher swaps in this decipher for ssh2's chacha20-poly1305 only", async () => {
  await ssh2Crypto.init;
  const protocol: { _decipher: unknown } = { _decipher: undefined };
  assert.ok(useFastDecipher({ _protocol: protocol }));
  const inbound = (name: string, keyLen: number) => ({
    inbound: {
      onPayload: () => {},
      seqno: 5,
      decipherInfo: ssh2Crypto.CIPHER_INFO[name],
      decipherKey: crypto.randomBytes(keyLen),
      decipherIV: crypto.randomBytes(12),
      forceNative: true,
    },
  });
  protocol._decipher = ssh2Crypto.createDecipher(inbound("chacha20-poly1305@openssh.com", 64));
  assert.ok(protocol._decipher instanceof ChachaPolyDecipher);
  assert.equal((protocol._decipher as ChachaPolyDecipher).inSeqno, 5);
  assert.ok(ownsNoInput(protocol._decipher));
  protocol._decipher = ssh2Crypto.createDecipher(inbound("aes128-gcm@openssh.com", 16));
  assert.ok(!(protocol._decipher instanceof ChachaPolyDecipher));
  assert.ok(!useFastDecipher({}), "no protocol: nothing to patch");
});

/** An encrypted length field that decrypts to `len` at `seqno`. */
function lengthField(key: Buffer, seqno: number, len: number): Buffer {
  const words = new Uint32Array(8);
  new Uint8Array(words.buffer).set(key.subarray(32));
  const block = new Uint32Array(16);
  chachaBlock(words, 0, seqno, block);
  const stream = new Uint8Array(block.buffer);
  const plain = Buffer.alloc(4);
  plain.writeUInt32BE(len);
  return Buffer.from(plain.map((b, i) => b ^ stream[i]));
}

Deno.test("a length below 8, not a multiple of 8, or above ssh2's bound is refused", () => {
  const key = crypto.randomBytes(64);
  for (const len of [0, 4, 12, 36, MAX_PACKET_LENGTH + 8, 0xfffffff8]) {
    const { d } = opener(key, 9);
    assert.throws(() => d.decrypt(lengthField(key, 9, len), 0, 4), /Bad packet length/, `length ${len}`);
  }
  const { d } = opener(key, 9);
  assert.equal(
    d.decrypt(lengthField(key, 9, MAX_PACKET_LENGTH), 0, 4),
    undefined,
    "the bound itself waits for its bytes",
  );
});

Deno.test("a length changed to another valid one fails the MAC", async () => {
  const key = crypto.randomBytes(64);
  const seal = await sealer(key, 2);
  const packet = seal(crypto.randomBytes(100));
  const len = packet.readUInt32BE(0) ^ lengthField(key, 2, 0).readUInt32BE(0);
  const forged = Buffer.concat([lengthField(key, 2, len + 8), packet.subarray(4), Buffer.alloc(8)]);
  const { d, got } = opener(key, 2);
  assert.throws(() => d.decrypt(forged, 0, forged.length), /Invalid MAC/);
  assert.equal(got.length, 0);
});

Deno.test("a failure is final: later chunks are refused at once", async () => {
  const key = crypto.randomBytes(64);
  const seal = await sealer(key);
  // a bogus length: the next chunk must not be taken as that packet's body
  const first = opener(key, 0);
  assert.throws(() => first.d.decrypt(lengthField(key, 0, 0x7ffffff8), 0, 4), /Bad packet length/);
  assert.throws(() => first.d.decrypt(Buffer.alloc(64), 0, 64), /Bad packet length/);
  // a bad MAC on a packet checked in place
  const bad = seal(Buffer.from("x".repeat(50)));
  bad[bad.length - 1] ^= 1;
  const second = opener(key, 0);
  assert.throws(() => second.d.decrypt(bad, 0, bad.length), /Invalid MAC/);
  assert.throws(() => second.d.decrypt(Buffer.alloc(64), 0, 64), /Invalid MAC/);
});

Deno.test("a padding length the packet cannot hold, or under 4, is refused", async () => {
  const key = crypto.randomBytes(64);
  for (const padding of [255, 3, 0]) {
    // sealed, so the MAC holds: only the padding check can refuse it
    const seal = await sealer(key, 0, (packet) => void (packet[4] = padding));
    const sealed = seal(new Uint8Array(20));
    const { d, got } = opener(key, 0);
    assert.throws(() => d.decrypt(sealed, 0, sealed.length), /Bad padding length/, `padding ${padding}`);
    assert.equal(got.length, 0);
  }
});

Deno.test("a payload handler's return value stops the chunk where ssh2 expects (the NEWKEYS hand-off)", async () => {
  const key = crypto.randomBytes(64);
  const seal = await sealer(key);
  const packets = [10, 20, 30].map((n) => seal(crypto.randomBytes(n)));
  const stream = Buffer.concat(packets);
  let calls = 0;
  const d = new ChachaPolyDecipher({
    inSeqno: 0,
    _onPayload: () => (++calls === 2 ? false : undefined),
    _decKeyMain: key.subarray(0, 32),
    _decKeyPktLen: key.subarray(32),
  });
  assert.equal(d.decrypt(stream, 0, stream.length), packets[0].length + packets[1].length);
  assert.equal(calls, 2);
  assert.equal(d.inSeqno, 2, "counted before the handler ran, so a handler may reset it");
  // the rest goes on from there (here with the same decipher)
  assert.equal(d.decrypt(stream, packets[0].length + packets[1].length, stream.length), undefined);
  assert.equal(calls, 3);
  const numeric = new ChachaPolyDecipher({
    inSeqno: 0,
    _onPayload: () => 12345,
    _decKeyMain: key.subarray(0, 32),
    _decKeyPktLen: key.subarray(32),
  });
  assert.equal(numeric.decrypt(stream, 0, stream.length), 12345);
});

/** `packet` with its last 16 bytes replaced by `mac` (a 128-bit little-endian number). */
function withMac(packet: Buffer, mac: bigint): Buffer {
  const out = Buffer.from(packet);
  for (let i = 0; i < 16; i++) out[out.length - 16 + i] = Number((mac >> BigInt(8 * i)) & 0xffn);
  return out;
}

const le128 = (b: Uint8Array) => b.reduceRight((v, x) => (v << 8n) | BigInt(x), 0n);
const M128 = (1n << 128n) - 1n;

Deno.test("only the exact MAC is accepted: plus or minus 1 or 5 and every single-bit flip are refused", async () => {
  // The decipher used to accept a genuine packet's tag ± 5 as well (one of
  // the two per packet); a keyless proxy could alter MAC bytes and log in.
  const key = crypto.randomBytes(64);
  const seal = await sealer(key);
  const opens = (packet: Buffer, seqno: number) => {
    const { d, got } = opener(key, seqno);
    try {
      d.decrypt(packet, 0, packet.length);
    } catch (error) {
      assert.ok(isIntegrityFailure(error), String(error));
      assert.equal(got.length, 0, "nothing delivered before the MAC check");
      return false;
    }
    assert.equal(got.length, 1);
    return true;
  };
  for (let seqno = 0; seqno < 200; seqno++) {
    const packet = seal(crypto.randomBytes(crypto.randomInt(1, 3000)));
    const tag = le128(packet.subarray(packet.length - 16));
    assert.ok(opens(packet, seqno), `packet ${seqno}: the genuine MAC`);
    for (const delta of [1n, -1n, 5n, -5n, 10n, -10n, 1n << 127n]) {
      assert.ok(!opens(withMac(packet, (tag + delta) & M128), seqno), `packet ${seqno}, delta ${delta}`);
    }
    if (seqno < 4) {
      for (let bit = 0; bit < 128; bit++) {
        assert.ok(!opens(withMac(packet, tag ^ (1n << BigInt(bit))), seqno), `packet ${seqno}, bit ${bit}`);
      }
    }
  }
});

Deno.test("a check failure carries the integrity field; an error of the payload handler does not", async () => {
  const key = crypto.randomBytes(64);
  const seal = await sealer(key);
  const packet = seal(crypto.randomBytes(64));
  const bad = Buffer.from(packet);
  bad[10] ^= 4;
  assert.throws(() => opener(key, 0).d.decrypt(bad, 0, bad.length), (e) => isIntegrityFailure(e));
  const boom = new Error("handler failed");
  const d = new ChachaPolyDecipher({
    inSeqno: 0,
    _onPayload: () => {
      throw boom;
    },
    _decKeyMain: key.subarray(0, 32),
    _decKeyPktLen: key.subarray(32),
  });
  assert.throws(() => d.decrypt(packet, 0, packet.length), (e) => e === boom && !isIntegrityFailure(e));
  assert.ok(!isIntegrityFailure(new Error("Invalid MAC")), "a message alone proves nothing");
});

Deno.test("ssh2's AES-GCM decipher, once installed, marks a wrong tag as an integrity failure", async () => {
  await ssh2Crypto.init;
  const name = "aes128-gcm@openssh.com";
  const key = crypto.randomBytes(16);
  const iv = crypto.randomBytes(12);
  const out: Buffer[] = [];
  const cipher = ssh2Crypto.createCipher({
    outbound: {
      onWrite: (b: Buffer) => out.push(Buffer.from(b)),
      cipherInfo: ssh2Crypto.CIPHER_INFO[name],
      cipherKey: key,
      cipherIV: Buffer.from(iv),
      seqno: 0,
      forceNative: true,
    },
  });
  const seal = (payload: Uint8Array) => {
    const packet = cipher.allocPacket(payload.length);
    packet.set(payload, 5);
    cipher.encrypt(packet);
    return Buffer.concat(out.splice(0));
  };
  type Installed = { decrypt(d: Buffer, p: number, l: number): unknown; _onPayload: (p: Buffer) => unknown };
  const install = (onPayload: (p: Buffer) => unknown): Installed => {
    const protocol: { _decipher: unknown } = { _decipher: undefined };
    assert.ok(useFastDecipher({ _protocol: protocol }));
    protocol._decipher = ssh2Crypto.createDecipher({
      inbound: {
        onPayload,
        seqno: 0,
        decipherInfo: ssh2Crypto.CIPHER_INFO[name],
        decipherKey: key,
        decipherIV: Buffer.from(iv),
        forceNative: true,
      },
    });
    return protocol._decipher as Installed;
  };
  const first = seal(Buffer.from("hello"));
  const second = seal(Buffer.from("world"));
  const got: string[] = [];
  const d = install((p) => void got.push(p.toString()));
  assert.ok(ownsNoInput(d), "it keeps no view of its input, so the socket may lend its buffer");
  d.decrypt(first, 0, first.length);
  assert.deepEqual(got, ["hello"]);
  const altered = Buffer.from(second);
  altered[altered.length - 3] ^= 1;
  assert.throws(() => d.decrypt(altered, 0, altered.length), (e) => isIntegrityFailure(e));
  // a handler swapped in later (as kex.js does) is wrapped too: what it throws stays unmarked
  const boom = new Error("protocol error");
  const e = install(() => undefined);
  e._onPayload = () => {
    throw boom;
  };
  assert.throws(() => e.decrypt(first, 0, first.length), (x) => x === boom && !isIntegrityFailure(x));
});

Deno.test("free() wipes the keys: nothing opens afterwards", async () => {
  const key = crypto.randomBytes(64);
  const seal = await sealer(key);
  const packet = seal(crypto.randomBytes(40));
  const { d } = opener(key, 0);
  d.free();
  assert.throws(() => d.decrypt(packet, 0, packet.length), /Invalid MAC|Bad packet length/);
});
