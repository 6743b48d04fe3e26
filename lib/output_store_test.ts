import assert from "node:assert/strict";
import { OutputStore } from "./output_store.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

Deno.test("OutputStore reads any byte range of either stream, exactly", () => {
  const store = new OutputStore(1024);
  const kept = store.open("s-1");
  kept.push("stdout", bytes("hello "));
  kept.push("stderr", bytes("oops"));
  kept.push("stdout", bytes("world"));
  assert.equal(text(kept.read("stdout", 0, 100).bytes), "hello world");
  assert.equal(text(kept.read("stdout", 3, 5).bytes), "lo wo");
  assert.deepEqual({ ...kept.read("stdout", 11, 5), bytes: undefined }, {
    bytes: undefined,
    offset: 11,
    totalBytes: 11,
    droppedBytes: 0,
  });
  assert.equal(text(kept.read("stderr", 1, 100).bytes), "ops");
  assert.equal(kept.read("stdout", 500, 10).offset, 11, "past the end reads as the end");
  assert.equal(store.usedBytes, 15);
});

Deno.test("OutputStore keeps the budget by dropping the oldest bytes first, and says so", () => {
  const KiB = 1024;
  const store = new OutputStore(8 * KiB); // blocks of 1 KiB
  const fill = (c: string, n: number) => bytes(c.repeat(n));
  const first = store.open("s-1");
  first.push("stdout", fill("a", 4 * KiB));
  first.push("stdout", fill("b", 4 * KiB));
  const second = store.open("s-1");
  second.push("stdout", fill("c", KiB)); // 9 KiB > 8: the first's oldest block goes
  assert.equal(store.usedBytes, 8 * KiB);
  const r = first.read("stdout", 0, 100 * KiB);
  assert.equal(r.offset, KiB);
  assert.equal(r.droppedBytes, KiB);
  assert.equal(text(r.bytes), "a".repeat(3 * KiB) + "b".repeat(4 * KiB));
  second.push("stdout", fill("d", 8 * KiB)); // the first goes whole, then the second's own oldest
  assert.equal(first.read("stdout", 0, 100 * KiB).bytes.length, 0);
  const d = second.read("stdout", 0, 100 * KiB);
  assert.equal(text(d.bytes), "d".repeat(8 * KiB));
  assert.equal(d.droppedBytes, KiB);
  assert.ok(store.usedBytes <= 8 * KiB);
});

Deno.test("OutputStore streams far more than its budget through the same blocks", () => {
  const store = new OutputStore(64 * 1024);
  const kept = store.open("s-1");
  const chunk = bytes("y\n".repeat(16 * 1024));
  for (let i = 0; i < 1000; i++) kept.push("stdout", chunk); // 32 MiB through 64 KiB
  const r = kept.read("stdout", 0, 1 << 20);
  assert.equal(r.totalBytes, 1000 * chunk.length);
  assert.equal(r.offset + r.bytes.length, r.totalBytes);
  assert.ok(r.bytes.length <= 64 * 1024 && r.bytes.length > 32 * 1024, `${r.bytes.length} kept`);
  assert.ok(store.usedBytes <= 64 * 1024);
});

Deno.test("OutputStore gives an output only to its session, and drops a session's outputs when it closes", () => {
  const store = new OutputStore(100);
  const a = store.open("s-a");
  a.push("stdout", bytes("secret of a"));
  assert.equal(store.get(a.id, "s-b"), undefined);
  assert.equal(store.get(a.id, "s-a"), a);
  store.dropOwner("s-a");
  assert.equal(store.get(a.id, "s-a"), undefined);
  assert.equal(store.usedBytes, 0);
  a.push("stdout", bytes("late")); // a command still running after its session closed keeps nothing
  assert.equal(store.usedBytes, 0);
});
