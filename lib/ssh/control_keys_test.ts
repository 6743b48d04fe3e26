import assert from "node:assert/strict";
import { controlKeyBytes } from "./control_keys.ts";

Deno.test("controlKeyBytes() maps every spelling of Ctrl+letter to its control byte", () => {
  for (const key of ["ctrl+c", "Ctrl+C", "CTRL-C", "control+c", "^C", "^c", "C-c", "c", "ctrl c"]) {
    assert.equal(controlKeyBytes(key), "\x03", key);
  }
  assert.equal(controlKeyBytes("ctrl+a"), "\x01");
  assert.equal(controlKeyBytes("ctrl+z"), "\x1a");
  assert.equal(controlKeyBytes("ctrl+d"), "\x04");
  assert.equal(controlKeyBytes("ctrl+["), "\x1b");
  assert.equal(controlKeyBytes("ctrl+\\"), "\x1c");
});

Deno.test("controlKeyBytes() knows the named keys", () => {
  assert.equal(controlKeyBytes("Esc"), "\x1b");
  assert.equal(controlKeyBytes("Tab"), "\t");
  assert.equal(controlKeyBytes("Enter"), "\r");
  assert.equal(controlKeyBytes("up"), "\x1b[A");
  assert.equal(controlKeyBytes("Left"), "\x1b[D");
  assert.equal(controlKeyBytes("Home"), "\x1b[H");
  assert.equal(controlKeyBytes("End"), "\x1b[F");
  assert.equal(controlKeyBytes("PageUp"), "\x1b[5~");
  assert.equal(controlKeyBytes("page_down"), "\x1b[6~");
  assert.equal(controlKeyBytes("F1"), "\x1bOP");
  assert.equal(controlKeyBytes("f12"), "\x1b[24~");
});

Deno.test("controlKeyBytes() refuses what it does not know", () => {
  for (const key of ["", "ctrl+1", "f13", "hyper+x", "__proto__", "constructor", "ctrl+ctrl", "ab"]) {
    assert.equal(controlKeyBytes(key), null, key);
  }
});
