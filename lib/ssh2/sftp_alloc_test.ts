import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  dataResponse,
  READ_CUTS,
  readScenario,
  sftpChannel,
  sftpReadSelfTest,
  sftpWriteSelfTest,
} from "./sftp_alloc.ts";
import { sftpFixSelfTest } from "./sftp_fix.ts";

const HANDLE = Buffer.from("h-01");
const data = (length: number) => Buffer.from(Uint8Array.from({ length }, (_, i) => (i * 13 + 5) & 0xff));

/** SSH_FXP_WRITE as the protocol spells it: length, type 6, id, handle, uint64 offset, data. */
function wire(id: number, offset: number, bytes: Buffer): Buffer {
  const head = Buffer.alloc(4 + 1 + 4 + 4 + HANDLE.length + 8 + 4);
  head.writeUInt32BE(head.length - 4 + bytes.length, 0);
  head[4] = 6;
  head.writeUInt32BE(id, 5);
  head.writeUInt32BE(HANDLE.length, 9);
  HANDLE.copy(head, 13);
  head.writeBigUInt64BE(BigInt(offset), 13 + HANDLE.length);
  head.writeUInt32BE(bytes.length, 21 + HANDLE.length);
  return Buffer.concat([head, bytes]);
}

// Runs first, before the self-test patches ssh2's SFTP class: the copy is there to remove.
Deno.test("ssh2 unpatched copies a write's data into a request buffer", () => {
  const ch = sftpChannel(2 * 1024 * 1024);
  const buf = data(200 * 1024);
  ch.sftp.write(HANDLE, buf, 0, buf.length, 0);
  assert.ok(ch.given.every((c) => c.buffer !== buf.buffer));
});

/** Reads 100 KiB at 4096; the answer arrives in 32 KiB chunks. Returns the parser's largest packet buffer. */
function streamedRead() {
  const ch = sftpChannel(2 * 1024 * 1024);
  const buf = Buffer.alloc(100 * 1024 + 8);
  const got: unknown[] = [];
  ch.sftp.read(HANDLE, buf, 8, 100 * 1024, 4096, (err, n, bytes, position) => got.push(err ?? [n, bytes, position]));
  const answer = data(100 * 1024);
  const stream = dataResponse(ch.sftp._writeReqid, answer);
  let held = 0;
  for (let p = 0; p < stream.length; p += 32 * 1024) {
    ch.sftp.push(Buffer.from(stream.subarray(p, p + 32 * 1024)));
    held = Math.max(held, ch.sftp._pkt?.length ?? 0);
  }
  assert.equal(got.length, 1);
  const [n, bytes, position] = got[0] as [number, Buffer, number];
  assert.equal(n, answer.length);
  assert.ok(bytes.equals(answer) && buf.subarray(8).equals(answer), "the answer, in the read's buffer");
  assert.equal(position, 4096);
  return held;
}

// Runs before the self-test patches ssh2's SFTP class: the gathering is there to remove.
Deno.test("ssh2 unpatched gathers a DATA answer in a packet buffer of its size, then copies it", () => {
  assert.ok(streamedRead() >= 100 * 1024);
});

Deno.test("sftpWriteSelfTest() passes on ssh2 1.17 and stays on when run again", () => {
  assert.equal(sftpWriteSelfTest(), null);
  assert.equal(sftpWriteSelfTest(), null);
});

Deno.test("a large write sends the caller's bytes without a copy, in the same packets", () => {
  assert.equal(sftpWriteSelfTest(), null);
  const ch = sftpChannel(2 * 1024 * 1024);
  // 200 KiB: under ssh2's limit until limits@openssh.com raises it (to 255 KiB with OpenSSH).
  const buf = data(200 * 1024 + 100);
  const results: unknown[] = [];
  ch.sftp.write(HANDLE, buf, 100, 200 * 1024, 2 ** 40 + 3, (err, n) => results.push(err ?? n));
  const id = ch.sftp._writeReqid;
  const expected = wire(id, 2 ** 40 + 3, buf.subarray(100));
  assert.ok(Buffer.concat(ch.sent).equals(expected), "the bytes of an SSH_FXP_WRITE");
  // ssh2 cut its copy into channel packets of 32 KiB; the same cuts, all but the first viewing `buf`.
  assert.deepEqual(ch.sent.map((c) => c.length), [...Array(6).fill(32 * 1024), expected.length - 6 * 32 * 1024]);
  assert.ok(ch.given.slice(1).every((c) => c.buffer === buf.buffer), "no copy of the data after the first packet");
  ch.ok(id);
  assert.deepEqual(results, [100 + 200 * 1024]);
});

Deno.test("a buffer answered before it was all sent can be reused: what is still queued was copied", () => {
  assert.equal(sftpWriteSelfTest(), null);
  const ch = sftpChannel(50_000);
  const buf = data(200 * 1024);
  const original = Buffer.from(buf);
  let answered = 0;
  ch.sftp.write(HANDLE, buf, 0, buf.length, 0, () => answered++);
  const id = ch.sftp._writeReqid;
  assert.ok(ch.sftp._buffer.length > 0, "the window ran out");
  ch.ok(id); // a server answering early, or the channel closing
  assert.equal(answered, 1);
  buf.fill(0); // the caller reuses it at once
  while (ch.sftp._buffer.length > 0) ch.adjust(32 * 1024);
  assert.ok(Buffer.concat(ch.sent).equals(wire(id, 0, original)));
});

Deno.test("small writes and writes ssh2 splits still go through ssh2's own write", () => {
  assert.equal(sftpWriteSelfTest(), null);
  const ch = sftpChannel(2 * 1024 * 1024);
  const small = data(1000);
  ch.sftp.write(HANDLE, small, 0, small.length, 7);
  assert.ok(Buffer.concat(ch.sent).equals(wire(ch.sftp._writeReqid, 7, small)));
  assert.equal(ch.sent.length, 1);
  assert.notEqual(ch.given[0].buffer, small.buffer);
});

Deno.test("sftpReadSelfTest() passes on ssh2 1.17 and stays on when run again", () => {
  assert.equal(sftpFixSelfTest(), null);
  assert.equal(sftpReadSelfTest(), null);
  assert.equal(sftpReadSelfTest(), null);
});

Deno.test("a DATA answer larger than a chunk goes straight into the read's buffer", () => {
  assert.equal(sftpReadSelfTest(), null);
  assert.equal(streamedRead(), 0);
});

Deno.test("reads get ssh2's answers however the stream is cut (whole, short, unknown, too long, trailing, EOF, closed)", () => {
  assert.equal(sftpReadSelfTest(), null);
  for (const [first, size, streams, unit] of READ_CUTS) {
    const { results, held } = readScenario(first, size, unit);
    assert.deepEqual(results.map((r) => r.split(" ").slice(0, 2).join(" ")), [
      `whole ${100 * unit}`,
      `short ${40 * unit}`,
      `long ${20 * unit}`,
      `trailing ${30 * unit}`,
      "eof 0",
      "closed No",
      "requests left",
    ]);
    if (streams) assert.equal(held, false, `cut ${first}/${size}`);
  }
});

Deno.test("the self-tests leave ssh2's write and push in place when ssh2 behaves otherwise", async () => {
  // A fresh process, with ssh2's SFTP class altered as another ssh2 might be: writes that encode
  // their offset otherwise, and a parser that keeps its state in other fields.
  const here = (file: string) => new URL(file, import.meta.url).href;
  const script = `
    import sftpModule from "ssh2/lib/protocol/SFTP.js";
    import { sftpReadSelfTest, sftpWriteSelfTest } from "${here("./sftp_alloc.ts")}";
    const proto = sftpModule.SFTP.prototype;
    const write = proto.write;
    proto.write = function (h, b, o, l, p, cb) { return write.call(this, h, b, o, l, p + 1, cb); };
    const altered = proto.write;
    const push = proto.push;
    // A parser whose length counter is not where 1.17 keeps it (a rename): _pktLenBytes reads undefined.
    proto.push = function (data) {
      this._pktLenBytes = this.lenBytes ?? 0;
      const result = push.call(this, data);
      this.lenBytes = this._pktLenBytes;
      this._pktLenBytes = undefined;
      return result;
    };
    const pushed = proto.push;
    const write1 = sftpWriteSelfTest();
    const read1 = sftpReadSelfTest();
    console.log(JSON.stringify({ write1, writeKept: proto.write === altered, read1, pushKept: proto.push === pushed }));
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", "--frozen", "--config", new URL("../../deno.json", import.meta.url).pathname, script],
    stderr: "inherit",
  }).output();
  assert.equal(out.code, 0);
  const got = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.equal(got.write1, "a write sent other bytes or packets than ssh2's");
  assert.equal(got.writeKept, true);
  assert.equal(got.read1, "a DATA answer still gathered in a packet buffer");
  assert.equal(got.pushKept, true);
});
