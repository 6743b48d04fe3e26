import assert from "node:assert/strict";
import { NAME_MAX, randomHex, tempName, truncateUtf8 } from "./random.ts";

const bytes = (s: string) => new TextEncoder().encode(s).length;

Deno.test("randomHex() gives two hex characters per byte", () => {
  assert.match(randomHex(6), /^[0-9a-f]{12}$/);
});

Deno.test("tempName() keeps short names whole, hidden and recognisable", () => {
  assert.match(tempName("report.txt"), /^\.report\.txt\.mcp-[0-9a-f]{12}\.tmp$/);
});

Deno.test("tempName() stays within NAME_MAX bytes for names of 233 to 255 bytes, ASCII and multi-byte", () => {
  const names = [
    "a".repeat(233),
    "a".repeat(254),
    "a".repeat(255),
    "é".repeat(127) + "a", // 2-byte characters, 255 bytes
    "日本".repeat(42) + "abc", // 3-byte characters, 255 bytes
    "😀".repeat(63) + "abc", // 4-byte characters (surrogate pairs in UTF-16), 255 bytes
  ];
  for (const name of names) {
    const temp = tempName(name);
    assert.ok(bytes(temp) <= NAME_MAX, `${bytes(temp)} bytes for a ${bytes(name)}-byte name`);
    assert.match(temp, /^\..+\.mcp-[0-9a-f]{12}\.tmp$/);
    assert.ok(name.startsWith(temp.slice(1, temp.lastIndexOf(".mcp-"))), "the kept part is the start of the name");
    assert.equal(new TextDecoder("utf-8", { fatal: true }).decode(new TextEncoder().encode(temp)), temp);
  }
});

Deno.test("truncateUtf8() never splits a character", () => {
  assert.equal(truncateUtf8("aé", 2), "a");
  assert.equal(truncateUtf8("aé", 3), "aé");
  assert.equal(truncateUtf8("😀😀", 7), "😀");
  assert.equal(truncateUtf8("日本", 5), "日");
  assert.equal(truncateUtf8("abc", 0), "");
});
