import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import crypto from "node:crypto";
import "./chacha_fix.ts";
// @ts-types="./ssh2_crypto.d.ts"
import ssh2Crypto from "ssh2/lib/protocol/crypto.js";
import { chachaBlock, ChachaPolyDecipher, MAX_PACKET_LENGTH, ownsNoInput, useFastDecipher } from "./chacha_decipher.ts";

const INFO = ssh2Crypto.CIPHER_INFO["chacha20-poly1305@openssh.com"];

/** Packets as ssh2's own pure-JS cipher frames them (the peer's side). */
async function sealer(key: Buffer, seqno = 0) {
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
  // The MAC is derived from the AEAD's tag in one of two ways, each half the
  // time; dropping either one fails here.
  const key = crypto.randomBytes(64);
  const seal = await sealer(key, 0xfffffff0); // the sequence number wraps on the way
  const { d, got } = opener(key, 0xfffffff0);
  const sizes = Array.from({ length: 3000 }, (_, i) => i < 64 ? i : crypto.randomInt(0, 32769));
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
  assert.ok(!ownsNoInput(protocol._decipher));
  assert.ok(!useFastDecipher({}), "no protocol: nothing to patch");
});
