import assert from "node:assert/strict";
import { lastLine, OutputCapture } from "./output.ts";

const enc = new TextEncoder();

Deno.test("OutputCapture keeps everything under the cap byte-exact", () => {
  const c = new OutputCapture(100);
  c.push(enc.encode("héllo "));
  c.push(enc.encode("wörld"));
  const out = c.finish();
  assert.deepEqual(out, { text: "héllo wörld", totalBytes: 13, droppedBytes: 0, truncated: false });
});

Deno.test("OutputCapture joins a character split across chunks", () => {
  const bytes = enc.encode("€uro");
  const c = new OutputCapture(100);
  for (const b of bytes) c.push(new Uint8Array([b]));
  assert.equal(c.finish().text, "€uro");
});

Deno.test("OutputCapture keeps head and tail and counts what it dropped", () => {
  const c = new OutputCapture(10);
  const data = "0123456789abcdefghijklmnopqrstuvwxyz";
  for (const ch of data) c.push(enc.encode(ch));
  const out = c.finish();
  assert.equal(out.totalBytes, 36);
  assert.equal(out.droppedBytes, 26);
  assert.ok(out.truncated);
  assert.ok(out.text.startsWith("01234\n"), out.text);
  assert.ok(out.text.endsWith("\nvwxyz"), out.text);
  assert.match(out.text, /26 bytes omitted of 36 total/);
});

Deno.test("OutputCapture handles chunks larger than the cap", () => {
  const c = new OutputCapture(8);
  c.push(enc.encode("abcdefghijklmnopqrstuvwxyz"));
  c.push(enc.encode("12"));
  const out = c.finish();
  assert.ok(out.text.startsWith("abcd\n"));
  assert.ok(out.text.endsWith("\nyz12"));
  assert.equal(out.droppedBytes, 28 - 8);
});

Deno.test("OutputCapture never splits a multi-byte character at the cut", () => {
  const c = new OutputCapture(9);
  c.push(enc.encode("€€€€€€€€€€")); // 30 bytes, 3 per character
  const out = c.finish();
  assert.ok(!out.text.includes("\uFFFD"), out.text);
  const [head, , tail] = out.text.split("\n");
  assert.equal(head, "€");
  assert.equal(tail, "€");
  assert.equal(out.droppedBytes, 30 - 6);
});

Deno.test("OutputCapture stays within its cap for large streams", () => {
  const c = new OutputCapture(1024);
  const chunk = new Uint8Array(65536).fill(121);
  for (let i = 0; i < 1000; i++) c.push(chunk);
  const out = c.finish();
  assert.equal(out.totalBytes, 65536 * 1000);
  assert.ok(out.text.length < 1200);
});

Deno.test("OutputCapture refuses a cap that cannot hold head and tail", () => {
  assert.throws(() => new OutputCapture(1), RangeError);
  assert.throws(() => new OutputCapture(Number.NaN), RangeError);
});

Deno.test("OutputCapture.recent() gives the last bytes seen, before and after the cap cut the middle", () => {
  const dec = (b: Uint8Array) => new TextDecoder().decode(b);
  const c = new OutputCapture(16);
  assert.equal(dec(c.recent(4)), "");
  c.push(enc.encode("abc"));
  assert.equal(dec(c.recent(2)), "bc");
  assert.equal(dec(c.recent(10)), "abc");
  c.push(enc.encode("defghijklmnopqrstuvwxyz")); // head keeps 8, tail the last 8
  assert.equal(dec(c.recent(5)), "vwxyz");
  assert.equal(dec(c.recent(100)), "stuvwxyz");
});

Deno.test("lastLine() gives the last non-empty line, trimmed and shortened", () => {
  assert.equal(lastLine("a\nb  \r\n\n"), "b");
  assert.equal(lastLine("one\rtwo"), "two");
  assert.equal(lastLine(""), "");
  assert.equal(lastLine("x".repeat(150)), "x".repeat(99) + "…");
});
