import assert from "node:assert/strict";
import { RollingBuffer } from "./rolling_buffer.ts";
import { utf8LeadingContinuations, utf8SafeEnd } from "./utf8.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

Deno.test("RollingBuffer keeps the newest bytes by absolute offset", () => {
  const b = new RollingBuffer(10);
  b.push(enc.encode("0123456"));
  b.push(enc.encode("789ab"));
  assert.equal(b.start, 2);
  assert.equal(b.end, 12);
  assert.equal(dec.decode(b.slice(0, 100)), "23456789ab");
  assert.equal(dec.decode(b.slice(5, 8)), "567");
  b.push(enc.encode("x".repeat(25)));
  assert.equal(b.start, 27);
  assert.equal(b.end, 37);
  assert.equal(dec.decode(b.slice(0, 37)), "x".repeat(10));
});

Deno.test("RollingBuffer copies what it is given", () => {
  const b = new RollingBuffer(100);
  const chunk = enc.encode("abc");
  b.push(chunk);
  chunk[0] = 120;
  assert.equal(dec.decode(b.slice(0, 3)), "abc");
});

Deno.test("RollingBuffer stays within its capacity over many pushes", () => {
  const b = new RollingBuffer(1000);
  for (let i = 0; i < 10_000; i++) b.push(new Uint8Array(97).fill(i % 256));
  assert.equal(b.end - b.start, 1000);
  assert.equal(b.slice(b.start, b.end).length, 1000);
});

Deno.test("utf8SafeEnd() and utf8LeadingContinuations() never cut a character", () => {
  const euro = enc.encode("a€"); // 61 e2 82 ac
  assert.equal(utf8SafeEnd(euro), 4);
  assert.equal(utf8SafeEnd(euro, 3), 1);
  assert.equal(utf8SafeEnd(euro, 2), 1);
  assert.equal(utf8LeadingContinuations(euro.subarray(2)), 2);
  assert.equal(utf8LeadingContinuations(euro), 0);
});
