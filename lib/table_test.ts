import assert from "node:assert/strict";
import { SshMcpError } from "./errors.ts";
import { Table, type TableChange } from "./table.ts";

class Thing {
  closed = 0;
  constructor(readonly id: string, readonly fail = false) {}
  close(): Promise<void> {
    this.closed++;
    return this.fail ? Promise.reject(new Error("close failed")) : Promise.resolve();
  }
}

function shells(limit = 3): Table<Thing> {
  return new Table<Thing>({
    kind: "shell",
    owner: "Session s-1",
    notFound: "SHELL_NOT_FOUND",
    notFoundHint: "Open one with ssh_shell_open",
    limit,
    limitCode: "SHELL_LIMIT",
  });
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    if (error instanceof SshMcpError) return error.code;
    throw error;
  }
  return undefined;
}

// Resolves when released: an open that waits for the test.
function gate(): { wait: Promise<void>; open(): void } {
  const { promise, resolve } = Promise.withResolvers<void>();
  return { wait: promise, open: () => resolve() };
}

Deno.test("Table parallel opens without an id get different ids", async () => {
  const table = shells(8);
  const g = gate();
  const opens = Array.from({ length: 5 }, () =>
    table.open(undefined, async (id) => {
      await g.wait;
      return new Thing(id);
    }));
  assert.equal(table.reserved, 5);
  assert.equal(table.size, 0);
  g.open();
  const opened = await Promise.all(opens);
  assert.deepEqual(opened.map((t) => t.id).sort(), ["shell-1", "shell-2", "shell-3", "shell-4", "shell-5"]);
  assert.equal(table.size, 5);
  assert.equal(table.reserved, 0);
});

Deno.test("Table parallel opens of one id: the second is refused while the first is still opening", async () => {
  const table = shells();
  const g = gate();
  const first = table.open("main", async (id) => {
    await g.wait;
    return new Thing(id);
  });
  await assert.rejects(
    table.open("main", (id) => Promise.resolve(new Thing(id))),
    (e) => e instanceof SshMcpError && e.code === "INVALID_ARGUMENT" && /"main" is already open/.test(e.message),
  );
  g.open();
  assert.equal((await first).id, "main");
  assert.equal(codeOf(() => table.reserve("main")), "INVALID_ARGUMENT");
});

Deno.test("Table reserved slots count against the limit before their open completes", async () => {
  const table = shells(2);
  const g = gate();
  const opens = [1, 2].map(() =>
    table.open(undefined, async (id) => {
      await g.wait;
      return new Thing(id);
    })
  );
  assert.equal(codeOf(() => table.reserve()), "SHELL_LIMIT");
  g.open();
  await Promise.all(opens);
  assert.equal(codeOf(() => table.reserve()), "SHELL_LIMIT");
  table.delete("shell-1");
  assert.equal(table.reserve().id, "shell-1");
});

Deno.test("Table a failed open gives its slot back", async () => {
  const table = shells(1);
  await assert.rejects(table.open("a", () => Promise.reject(new Error("no channel"))), /no channel/);
  assert.equal(table.reserved, 0);
  assert.equal((await table.open("a", (id) => Promise.resolve(new Thing(id)))).id, "a");
});

Deno.test("Table lookup() of an unknown id throws the table's NOT_FOUND code", () => {
  const table = shells();
  table.set("a", new Thing("a"));
  assert.equal(table.lookup("a").id, "a");
  assert.throws(
    () => table.lookup("__proto__"),
    (e) =>
      e instanceof SshMcpError && e.code === "SHELL_NOT_FOUND" &&
      e.message === 'Session s-1 has no shell "__proto__"' &&
      e.hint === "Open one with ssh_shell_open",
  );
  assert.equal(table.get("constructor"), undefined);
  assert.equal(table.has("toString"), false);
});

Deno.test("Table closeAll() closes every entry, even past a failing close, and refuses new ones", async () => {
  const table = shells(5);
  const things = [new Thing("a"), new Thing("b", true), new Thing("c")];
  for (const t of things) table.set(t.id, t);
  await table.closeAll();
  assert.deepEqual(things.map((t) => t.closed), [1, 1, 1]);
  assert.equal(table.size, 0);
  assert.equal(codeOf(() => table.reserve()), "CONNECTION_LOST");
  const late = new Thing("late");
  assert.equal(codeOf(() => table.set("late", late)), "CONNECTION_LOST");
  assert.equal(late.closed, 1, "a value that can no longer be kept is closed, not leaked");
});

Deno.test("Table closeAll() during an open closes what that open brings", async () => {
  const table = shells();
  const g = gate();
  let opened: Thing | undefined;
  const open = table.open("x", async (id) => {
    await g.wait;
    return opened = new Thing(id);
  });
  await table.closeAll();
  g.open();
  await assert.rejects(open, (e) => e instanceof SshMcpError && e.code === "CONNECTION_LOST");
  assert.equal(opened?.closed, 1);
  assert.equal(table.size, 0);
});

Deno.test("Table tells listeners of opens and closes, and reads like a Map", async () => {
  const table = shells();
  const changes: TableChange[] = [];
  const off = table.onChange((c) => changes.push(c));
  await table.open("a", (id) => Promise.resolve(new Thing(id)));
  table.set("b", new Thing("b"));
  assert.deepEqual([...table.keys()], ["a", "b"]);
  assert.deepEqual([...table].map(([id]) => id), ["a", "b"]);
  assert.deepEqual([...table.values()].map((t) => t.id), ["a", "b"]);
  assert.equal(table.delete("a"), true);
  assert.equal(table.delete("a"), false);
  await table.closeAll();
  off();
  assert.deepEqual(changes, [
    { type: "open", id: "a" },
    { type: "open", id: "b" },
    { type: "close", id: "a" },
    { type: "close", id: "b" },
  ]);
});

Deno.test("Table a reservation is filled once; release after fill changes nothing", () => {
  const table = shells();
  const slot = table.reserve("a");
  slot.fill(new Thing("a"));
  slot.release();
  assert.equal(table.has("a"), true);
  assert.throws(() => slot.fill(new Thing("a")), /already filled or released/);
});
