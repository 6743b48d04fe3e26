import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
// ssh2's own protocol code, driven without a socket.
import protocolModule from "ssh2/lib/protocol/Protocol.js";
import zlibModule from "ssh2/lib/protocol/zlib.js";
import { type PacketWriterLike, patchPacketWriter } from "./rekey_fix.ts";

// deno-lint-ignore no-explicit-any
const { PacketWriter } = zlibModule as any;
// deno-lint-ignore no-explicit-any
const Protocol = protocolModule as any;

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

function queuedWindowAdjust(): string {
  const proto = protocolInRekey();
  Protocol.prototype.channelWindowAdjust.call(proto, 7, 0x01020304);
  return Buffer.from(proto._queue[0]).toString("hex");
}

// SSH_MSG_CHANNEL_WINDOW_ADJUST (93 = 0x5d), recipient channel 7, 0x01020304 bytes.
const EXPECTED = "5d" + "00000007" + "01020304";

Deno.test("ssh2 unpatched queues a corrupt payload during a rekey (the bug this fix exists for)", () => {
  // Runs first, before the prototype is patched.
  assert.notEqual(queuedWindowAdjust(), EXPECTED);
});

Deno.test("patchPacketWriter() makes packets queued during a rekey carry their exact payload", () => {
  assert.equal(patchPacketWriter(PacketWriter.prototype as PacketWriterLike), true);
  assert.equal(queuedWindowAdjust(), EXPECTED);
  // Outside a rekey packets are framed by the cipher as before.
  const proto = protocolInRekey();
  proto._kexinit = undefined;
  // deno-lint-ignore no-explicit-any
  const w = proto._packetRW.write as any;
  assert.equal(w.alloc(9).length, 5 + 9);
});

Deno.test("patchPacketWriter() refuses a class it was not written for", () => {
  class Other {}
  assert.equal(patchPacketWriter(Other.prototype as unknown as PacketWriterLike), false);
});
