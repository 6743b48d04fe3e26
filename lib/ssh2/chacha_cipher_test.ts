import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import crypto from "node:crypto";
import "./chacha_fix.ts";
// @ts-types="./ssh2_crypto.d.ts"
import ssh2Crypto from "ssh2/lib/protocol/crypto.js";
import { poly1305HeapBytes, poly1305Tag, prepareFastDecipher } from "./chacha_decipher.ts";
import {
  ChachaPolyCipher,
  fastCipherSelfTest,
  isSsh2ChachaCipher,
  type Ssh2ChachaCipher,
  useFastCipher,
} from "./chacha_cipher.ts";

await prepareFastDecipher();
await ssh2Crypto.init;

const NAME = "chacha20-poly1305@openssh.com";

function outbound(name: string, key: Buffer, seqno: number, onWrite: (b: Buffer) => void) {
  return {
    outbound: {
      onWrite,
      cipherInfo: ssh2Crypto.CIPHER_INFO[name],
      cipherKey: key,
      cipherIV: crypto.randomBytes(12),
      macInfo: undefined,
      seqno,
      forceNative: true,
    },
  };
}

/** ssh2's own cipher and ours on the same key and sequence number, each with the pieces it wrote. */
function pair(key: Buffer, seqno: number) {
  const theirs: Buffer[] = [];
  const ours: Buffer[] = [];
  const ssh2Cipher = ssh2Crypto.createCipher(outbound(NAME, key, seqno, (b) => void theirs.push(Buffer.from(b))));
  const made = ssh2Crypto.createCipher(outbound(NAME, key, seqno, () => {}));
  assert.ok(isSsh2ChachaCipher(made));
  const cipher = new ChachaPolyCipher(made);
  // What the socket gets, by reference (the socket keeps references too): a later packet must not change it.
  cipher._onWrite = (b) => void ours.push(b);
  return { ssh2Cipher, cipher, theirs, ours };
}

/** Sets a packet's padding (random from allocPacket) from its payload, so two ciphers' packets can be compared. */
function fill(packet: Buffer, payload: Uint8Array): void {
  packet.set(payload, 5);
  for (let i = 5 + payload.length; i < packet.length; i++) packet[i] = (i * 31 + payload.length) & 0xff;
}

/** What ssh2's own chacha20-poly1305 decipher opens of `wire`. */
function ssh2Opens(key: Buffer, seqno: number, wire: Buffer): Buffer[] {
  const got: Buffer[] = [];
  const decipher = ssh2Crypto.createDecipher({
    inbound: {
      onPayload: (p: Buffer) => void got.push(Buffer.from(p)),
      decipherInfo: ssh2Crypto.CIPHER_INFO[NAME],
      decipherKey: key,
      seqno,
      forceNative: true,
    },
  }) as { decrypt(d: Buffer, p: number, l: number): unknown };
  decipher.decrypt(wire, 0, wire.length);
  return got;
}

Deno.test("the cipher seals exactly what ssh2's cipher seals, one write per packet, across a seqno wrap", () => {
  const key = crypto.randomBytes(64);
  const start = 0xfffffff0;
  const { ssh2Cipher, cipher, theirs, ours } = pair(key, start);
  const sizes = Array.from({ length: 400 }, (_, i) => i < 40 ? i + 1 : crypto.randomInt(1, 32777 + 1));
  sizes.push(32777, 36 * 1024, 50_000); // a full channel packet, and two past the lent buffer
  const payloads = sizes.map((n) => crypto.randomBytes(n));
  for (const payload of payloads) {
    for (const c of [ssh2Cipher, cipher]) {
      const packet = c.allocPacket(payload.length);
      fill(packet, payload);
      c.encrypt(packet);
    }
  }
  assert.equal(ours.length, payloads.length);
  assert.ok(
    Buffer.concat(ours).equals(Buffer.concat(theirs)),
    `sealed otherwise than ssh2: ${firstDiff(ours, theirs)}`,
  );
  assert.equal(cipher.outSeqno, (start + payloads.length) >>> 0);
  // ssh2's decipher takes packets up to 35000 bytes: the last two are for peers that allow more.
  assert.deepEqual(ssh2Opens(key, start, Buffer.concat(ours.slice(0, -2))), payloads.slice(0, -2));
});

Deno.test("allocPacket() pads as ssh2 does: 4 to 11 random bytes, to a multiple of 8 past the length", () => {
  const { cipher } = pair(crypto.randomBytes(64), 0);
  for (let n = 1; n <= 64; n++) {
    const packet = cipher.allocPacket(n);
    const padding = packet[4];
    assert.ok(padding >= 4 && padding < 12, `payload ${n}: padding ${padding}`);
    assert.equal(packet.length, 4 + 1 + n + padding);
    assert.equal(packet.readUInt32BE(0), packet.length - 4);
    assert.equal((packet.length - 4) % 8, 0);
    cipher.encrypt(packet);
  }
});

Deno.test("one plaintext buffer is lent per cipher; a packet allocated before the last was sealed gets its own", () => {
  const key = crypto.randomBytes(64);
  const { ssh2Cipher, cipher, theirs, ours } = pair(key, 9);
  const a = cipher.allocPacket(1000);
  const b = cipher.allocPacket(2000); // before `a` is sealed: must not share its bytes
  assert.notEqual(a.buffer, b.buffer);
  const payloads = [crypto.randomBytes(1000), crypto.randomBytes(2000)];
  fill(a, payloads[0]);
  fill(b, payloads[1]);
  cipher.encrypt(a);
  cipher.encrypt(b);
  const c = cipher.allocPacket(10);
  assert.equal(c.buffer, a.buffer, "the lent buffer is back once its packet is sealed");
  payloads.push(crypto.randomBytes(10));
  fill(c, payloads[2]);
  cipher.encrypt(c);
  for (const payload of payloads) {
    const packet = ssh2Cipher.allocPacket(payload.length);
    fill(packet, payload);
    ssh2Cipher.encrypt(packet);
  }
  // By reference, after later packets: what was handed to the socket was not reused.
  assert.ok(
    Buffer.concat(ours).equals(Buffer.concat(theirs)),
    `sealed otherwise than ssh2: ${firstDiff(ours, theirs)}`,
  );
  const written = Buffer.from(ours[2]);
  const next = cipher.allocPacket(10);
  fill(next, crypto.randomBytes(10));
  cipher.encrypt(next);
  assert.ok(ours[2].equals(written), "a written packet changed when the next one was sealed");
});

Deno.test("free() wipes the keys and the plaintext buffer, and sends nothing more", () => {
  const { cipher, ours } = pair(crypto.randomBytes(64), 0);
  const packet = cipher.allocPacket(100);
  fill(packet, new Uint8Array(100).fill(0x5a)); // a password, say
  cipher.encrypt(packet);
  assert.equal(ours.length, 1);
  assert.ok(packet.every((b) => b === 0), "the sealed packet's plaintext stayed in the lent buffer");
  cipher.free();
  assert.equal(cipher._dead, true);
  assert.ok(new Uint8Array(packet.buffer).every((b) => b === 0), "the lent plaintext buffer was not wiped");
  cipher.encrypt(cipher.allocPacket(10));
  assert.equal(ours.length, 1);
});

/** Where two packet lists first differ, for a failure message (a deepEqual of megabytes would exhaust memory). */
function firstDiff(a: Uint8Array[], b: Uint8Array[]): string {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] === undefined || b[i] === undefined || !Buffer.from(a[i]).equals(Buffer.from(b[i]))) {
      return `packet ${i} of ${a.length} vs ${b.length}`;
    }
  }
  return "no packet differs";
}

Deno.test("useFastCipher swaps in this cipher for ssh2's chacha20-poly1305 only, keeping the sequence number", () => {
  const protocol: { _cipher: unknown } = { _cipher: "null cipher" };
  assert.ok(useFastCipher({ _protocol: protocol }));
  assert.equal(protocol._cipher, "null cipher");
  const writes: Buffer[] = [];
  const ssh2Cipher = ssh2Crypto.createCipher(outbound(NAME, crypto.randomBytes(64), 5, (b) => void writes.push(b)));
  protocol._cipher = ssh2Cipher;
  const installed = protocol._cipher as ChachaPolyCipher;
  assert.ok(installed instanceof ChachaPolyCipher);
  assert.equal(installed.outSeqno, 5);
  assert.equal((ssh2Cipher as unknown as Ssh2ChachaCipher)._dead, true, "ssh2's own one is retired");
  installed.encrypt(installed.allocPacket(3));
  assert.equal(writes.length, 1, "it writes where ssh2's cipher wrote");
  const gcm = ssh2Crypto.createCipher(outbound("aes128-gcm@openssh.com", crypto.randomBytes(16), 0, () => {}));
  protocol._cipher = gcm;
  assert.equal(protocol._cipher, gcm);
  assert.ok(!useFastCipher({}), "no protocol: nothing to patch");
});

Deno.test("fastCipherSelfTest() passes on ssh2 1.17 and fails when the cipher seals otherwise", async () => {
  assert.equal(await fastCipherSelfTest(), null);
  const encrypt = ChachaPolyCipher.prototype.encrypt;
  ChachaPolyCipher.prototype.encrypt = function (this: ChachaPolyCipher, packet: Buffer) {
    packet[packet.length - 1] ^= 1; // one padding byte differs from what ssh2's cipher was given
    encrypt.call(this, packet);
  };
  try {
    assert.match(String(await fastCipherSelfTest()), /otherwise than ssh2's cipher/);
  } finally {
    ChachaPolyCipher.prototype.encrypt = encrypt;
  }
});

Deno.test("poly1305Tag() over ever larger packets keeps one large area: the shared wasm memory stays bounded", () => {
  const key = crypto.randomBytes(32);
  const big = crypto.randomBytes(270_000);
  const first = new Uint8Array(16);
  poly1305Tag(big.subarray(0, 35_100), key, first);
  const before = poly1305HeapBytes();
  // A hostile server's maxPacket lets each packet be a little longer than the last.
  for (let size = 35_200; size <= 260_000; size += 100) poly1305Tag(big.subarray(0, size), key, new Uint8Array(16));
  const grown = poly1305HeapBytes() - before;
  assert.ok(grown <= 1024 * 1024, `the wasm heap grew by ${grown} bytes over 2,250 growing packets`);
  const again = new Uint8Array(16);
  poly1305Tag(big.subarray(0, 35_100), key, again);
  assert.deepEqual(again, first, "the same packet, the same tag, after the area moved");
});
