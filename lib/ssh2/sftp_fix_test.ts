import assert from "node:assert/strict";
import {
  ASCII_GREETING,
  feedSftp,
  KEPT_BYTES,
  sftpFirstBytes,
  sftpFixSelfTest,
  UTF8_GREETING,
  VERSION_PACKET,
} from "./sftp_fix.ts";

const encode = (text: string) => new TextEncoder().encode(text);

/** The parser's error, its first bytes as text, and how the channel ended. */
function failure(chunks: Uint8Array[]) {
  const outcome = feedSftp(chunks);
  assert.equal(outcome.threw, null, "push() must not throw: ssh2 would drop the connection");
  assert.equal(outcome.errors.length, 1, `one error, got ${outcome.errors.map((e) => e.message).join(" | ")}`);
  const [err] = outcome.errors;
  assert.equal((err as { level?: unknown }).level, "sftp-protocol", "the level ../ssh/sftp_open.ts maps");
  const bytes = sftpFirstBytes(err);
  return { ...outcome, err, text: bytes === null ? null : new TextDecoder().decode(bytes) };
}

// Runs first, before the self-test patches ssh2's SFTP class: the defects are there to fix.
Deno.test("ssh2 unpatched throws on UTF-8 text before SFTP (the connection-killing defect)", () => {
  const outcome = feedSftp([UTF8_GREETING]);
  assert.match(outcome.threw ?? "", /TypeError/);
});

Deno.test("ssh2 unpatched reserves the bogus length of a too long first packet when more data comes", () => {
  // One byte over 256 KiB, not text: ASCII text would make ssh2 reserve ~2 GB here.
  const outcome = feedSftp([Uint8Array.of(0x00, 0x04, 0x00, 0x01, 0x02), encode("more")]);
  assert.equal(outcome.errors.length, 1);
  assert.equal(outcome.held, 0x40001);
});

Deno.test("sftpFixSelfTest() passes on ssh2 1.17 and stays on when run again", () => {
  assert.equal(sftpFixSelfTest(), null);
  assert.equal(sftpFixSelfTest(), null);
});

Deno.test("UTF-8 text before SFTP fails the channel with its first bytes, without throwing", () => {
  const got = failure([UTF8_GREETING, VERSION_PACKET]);
  assert.equal(got.text, "élan — bienvenue\n");
  assert.equal(got.closed, true, "the channel is closed, as after any SFTP parser error");
  assert.equal(got.ready, false, "a VERSION after the text does not open it");
  // An emoji greeting too: its first byte is 0xf0.
  assert.equal(failure([encode("🚀 deploy box\n")]).text, "🚀 deploy box\n");
});

Deno.test("ASCII text before SFTP fails once in ssh2's words, and what follows is neither parsed nor buffered", () => {
  const before = Deno.memoryUsage().external;
  const got = failure([ASCII_GREETING, encode("more text from the login files\n"), VERSION_PACKET]);
  // ../ssh/sftp_open.ts reads the length back from this message when the repair is off.
  assert.equal(got.err.message, "Packet length 2003135587 exceeds max length of 262144");
  assert.equal(got.text, "welcome to the box\n");
  assert.equal(got.held, 0, "ssh2 would hold a 2 GB buffer for the packet here");
  assert.ok(Deno.memoryUsage().external - before < 64 * 1024 * 1024, "no buffer of the bogus length");
});

Deno.test("a first packet that is not VERSION, or too short for one, fails the channel", () => {
  assert.equal(failure([Uint8Array.of(0, 0, 0, 5, 101, 0, 0, 0, 3)]).err.message, "Expected VERSION packet, got 101");
  assert.match(failure([Uint8Array.of(0, 0, 0, 1, 2)]).err.message, /^Invalid packet length 1/);
  assert.match(failure([Uint8Array.of(0, 0, 0, 0, 2)]).err.message, /^Invalid packet length 0/);
});

Deno.test("the first bytes kept are capped, and the header may arrive a byte at a time", () => {
  const long = encode("A".repeat(500));
  assert.equal(failure([long]).text, "A".repeat(KEPT_BYTES));
  const bytewise = failure([...UTF8_GREETING.subarray(0, 6)].map((b) => Uint8Array.of(b)));
  assert.deepEqual(sftpFirstBytes(bytewise.err), UTF8_GREETING.subarray(0, 5));
});

Deno.test("a VERSION packet still opens the channel, whole, split or followed by more packets", () => {
  for (
    const chunks of [
      [VERSION_PACKET],
      [...VERSION_PACKET].map((b) => Uint8Array.of(b)),
      [VERSION_PACKET.subarray(0, 4), VERSION_PACKET.subarray(4)],
      // A STATUS for a request nobody made is ignored by ssh2.
      [Uint8Array.of(...VERSION_PACKET, 0, 0, 0, 9, 101, 0, 0, 0, 7, 0, 0, 0, 0)],
    ]
  ) {
    const outcome = feedSftp(chunks);
    assert.equal(outcome.threw, null);
    assert.deepEqual(outcome.errors, []);
    assert.equal(outcome.ready, true);
    assert.equal(outcome.closed, false);
  }
});

Deno.test("after VERSION, a length with its top bit set fails the channel instead of throwing", () => {
  const got = failure([VERSION_PACKET, Uint8Array.of(0x80, 0, 0, 0), Uint8Array.of(1, 2, 3), encode("more")]);
  assert.equal(got.ready, true);
  assert.equal(got.err.message, "Packet length 2147483648 exceeds max length of 262144");
  assert.equal(got.text, null, "bytes are kept only for a bad first packet");
  assert.equal(got.held, 0);
});

Deno.test("sftpFirstBytes() is null for errors the repair did not make", () => {
  assert.equal(sftpFirstBytes(new Error("Packet length 2003135587 exceeds max length of 262144")), null);
  assert.equal(sftpFirstBytes("not an error"), null);
});
