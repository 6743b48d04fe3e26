import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import crypto from "node:crypto";
import { enableLeakFix, leakFixSelfTest } from "./chacha_fix.ts";

const key = Buffer.alloc(32, 7);
const iv = Buffer.alloc(16, 1);

Deno.test("chacha_fix finishes nothing until it is enabled", () => {
  enableLeakFix(false);
  const c = crypto.createCipheriv("chacha20", key, iv);
  c.update(Buffer.from("a"));
  c.update(Buffer.from("b")); // still usable: not finished
  assert.notEqual(leakFixSelfTest(), null);
});

Deno.test("chacha_fix finishes a chacha20 cipher after its update without changing its output", () => {
  enableLeakFix(true);
  try {
    const data = Buffer.from("the quick brown fox jumps over the lazy dog");
    const enc = crypto.createCipheriv("chacha20", key, iv).update(data);
    const dec = crypto.createDecipheriv("chacha20", key, iv).update(enc);
    assert.deepEqual(dec, data);
    // Finished: native state is released, so a second update is refused.
    const once = crypto.createDecipheriv("chacha20", key, iv);
    once.update(enc);
    assert.throws(() => once.update(enc));
    assert.equal(leakFixSelfTest(), null);
  } finally {
    enableLeakFix(false);
  }
});

Deno.test("chacha_fix leaves other ciphers alone", () => {
  enableLeakFix(true);
  try {
    const gcm = crypto.createCipheriv("aes-128-gcm", Buffer.alloc(16), Buffer.alloc(12));
    gcm.update(Buffer.from("a"));
    gcm.update(Buffer.from("b"));
    gcm.final();
    assert.equal(gcm.getAuthTag().length, 16);
  } finally {
    enableLeakFix(false);
  }
});
