import assert from "node:assert/strict";
import { decodeNoise } from "./exec.ts";

Deno.test("decodeNoise() shows escape sequences of login files as text and caps the length", () => {
  const enc = new TextEncoder();
  assert.equal(decodeNoise(enc.encode("\x1b[1mhi\tthere\n"), enc.encode("err\r\n")), "\\x1b[1mhi\tthere\nerr\\x0d\n");
  assert.ok(decodeNoise(enc.encode("x".repeat(5000)), new Uint8Array(0)).endsWith("…"));
});
