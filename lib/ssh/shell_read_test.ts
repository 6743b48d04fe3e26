import assert from "node:assert/strict";
import { readableEnd } from "./shell_read.ts";

const enc = (s: string) => new TextEncoder().encode(s);

// Simulates a shell's reads: bytes arrive in two packets cut at `cut`, and
// the agent reads (with `limit`) after each packet, from where it left off.
function readAcross(bytes: Uint8Array, cut: number, limit: number): { text: string; fffd: boolean } {
  let cursor = 0;
  let text = "";
  for (const arrived of [cut, bytes.length]) {
    for (let guard = 0; guard < bytes.length + 2; guard++) {
      const window = bytes.subarray(cursor, arrived);
      const end = readableEnd(window, { start: 0, limit: Math.min(window.length, limit) });
      if (end === 0) break;
      text += new TextDecoder("utf-8", { fatal: true }).decode(window.subarray(0, end));
      cursor += end;
    }
  }
  return { text, fffd: text.includes("\uFFFD") };
}

Deno.test("readableEnd() never splits a 4-byte character cut at any offset, at any byte limit", () => {
  const bytes = enc("a😀b€c😀");
  for (let cut = 0; cut <= bytes.length; cut++) {
    for (const limit of [1, 2, 3, 5, 65536]) {
      const r = readAcross(bytes, cut, limit);
      assert.equal(r.text, "a😀b€c😀", `cut ${cut} limit ${limit}`);
    }
  }
});

Deno.test("readableEnd() holds back a character still arriving, unless the stream has ended", () => {
  const head = enc("😀").subarray(0, 2);
  assert.equal(readableEnd(head, { start: 0, limit: 2 }), 0);
  assert.equal(readableEnd(head, { start: 0, limit: 2, final: true }), 2);
  assert.equal(readableEnd(enc("ab\xf0"), { start: 0, limit: 3 }), 2);
});

Deno.test("readableEnd() hands out invalid bytes rather than waiting for them forever", () => {
  const bad = Uint8Array.of(0xf0, 0x9f, 0x41, 0x42); // a lead and one continuation, then "AB"
  assert.equal(readableEnd(bad, { start: 0, limit: 1 }), 2);
  assert.equal(readableEnd(Uint8Array.of(0xff), { start: 0, limit: 1 }), 1);
});

Deno.test("readableEnd() keeps escape sequences whole", () => {
  const seq = enc("ab\x1b[1;31mr");
  assert.equal(readableEnd(seq, { start: 0, limit: 4 }), 2);
  assert.equal(readableEnd(seq, { start: 2, limit: 3 }), 9);
  assert.equal(readableEnd(enc("\x1b[1;3"), { start: 0, limit: 5 }), 0);
});
