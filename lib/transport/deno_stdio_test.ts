import assert from "node:assert/strict";
import { DenoStdioTransport } from "./deno_stdio.ts";

const enc = new TextEncoder();

/** Feeds the given chunks, then EOF; optionally waits before EOF. */
function input(chunks: (string | Uint8Array)[], hold?: Promise<void>) {
  const queue = chunks.map((c) => (typeof c === "string" ? enc.encode(c) : c));
  return {
    async read(p: Uint8Array): Promise<number | null> {
      const next = queue.shift();
      if (next === undefined) {
        await hold;
        return null;
      }
      p.set(next);
      return next.length;
    },
  };
}

function collect(t: DenoStdioTransport) {
  const messages: unknown[] = [];
  const errors: string[] = [];
  t.onmessage = (m) => messages.push(m);
  t.onerror = (e) => errors.push(e.message);
  const closed = new Promise<void>((r) => (t.onclose = r));
  return { messages, errors, closed };
}

const ping = (id: number) => JSON.stringify({ jsonrpc: "2.0", id, method: "ping" });

Deno.test("DenoStdioTransport splits messages across and within chunks, CRLF included", async () => {
  const whole = `${ping(1)}\n${ping(2)}\r\n${ping(3)}\n`;
  const t = new DenoStdioTransport({
    drainMs: 20,
    input: input([whole.slice(0, 10), whole.slice(10, 50), whole.slice(50)]),
  });
  const { messages, closed } = collect(t);
  await t.start();
  await closed;
  assert.deepEqual(messages.map((m) => (m as { id: number }).id), [1, 2, 3]);
  assert.equal(t.closeReason, "stdin closed");
});

Deno.test("DenoStdioTransport answers a bad line itself, reports it and keeps reading", async () => {
  const written: string[] = [];
  const output = { write: (p: Uint8Array) => (written.push(new TextDecoder().decode(p)), Promise.resolve(p.length)) };
  const bad = `not json\n{"jsonrpc":"2.0"}\n{"jsonrpc":"2.0","id":5,"method":"ping","params":null}\n`;
  const t = new DenoStdioTransport({ drainMs: 20, input: input([`${bad}${ping(7)}\n`]), output });
  const { messages, errors, closed } = collect(t);
  await t.start();
  await closed;
  assert.equal(errors.length, 3);
  assert.deepEqual(messages.map((m) => (m as { id: number }).id), [7]);
  // Each written whole, one per line: the request with an id gets it back.
  assert.deepEqual(written.map((w) => [JSON.parse(w).id, JSON.parse(w).error.code]), [
    [null, -32700],
    [null, -32600],
    [5, -32600],
  ]);
});

Deno.test("DenoStdioTransport answers a message over the limit with -32600 and reads on", async () => {
  const written: string[] = [];
  const t = new DenoStdioTransport({
    maxMessageBytes: 100,
    drainMs: 20,
    input: input(["x".repeat(60), "y".repeat(60), "z".repeat(200), "\n", ping(3), "\n"]),
    output: {
      write: (bytes: Uint8Array) => {
        written.push(new TextDecoder().decode(bytes));
        return Promise.resolve(bytes.length);
      },
    },
  });
  const { messages, errors, closed } = collect(t);
  await t.start();
  await closed;
  assert.equal(t.closeReason, "stdin closed");
  assert.match(errors[0], /larger than 100 bytes/);
  assert.deepEqual(messages.map((m) => (m as { id: number }).id), [3]);
  assert.deepEqual(written.map((w) => [JSON.parse(w).id, JSON.parse(w).error.code]), [[null, -32600]]);
});

Deno.test("DenoStdioTransport writes messages whole and in order, and closes when stdout fails", async () => {
  let release!: () => void;
  const hold = new Promise<void>((r) => (release = r));
  const written: string[] = [];
  let fail = false;
  const t = new DenoStdioTransport({
    input: input([], hold),
    output: {
      write(p: Uint8Array) {
        if (fail) return Promise.reject(new Deno.errors.BrokenPipe("EPIPE"));
        // Short writes: one byte at a time.
        written.push(String.fromCharCode(p[0]));
        return Promise.resolve(1);
      },
    },
  });
  const { closed } = collect(t);
  await t.start();
  await Promise.all([t.send({ jsonrpc: "2.0", id: 1, result: {} }), t.send({ jsonrpc: "2.0", id: 2, result: {} })]);
  assert.equal(written.join(""), `{"jsonrpc":"2.0","id":1,"result":{}}\n{"jsonrpc":"2.0","id":2,"result":{}}\n`);
  fail = true;
  await assert.rejects(t.send({ jsonrpc: "2.0", id: 3, result: {} }));
  await closed;
  assert.equal(t.closeReason, "stdout closed");
  release();
});

Deno.test("DenoStdioTransport answers requests read before stdin EOF, then closes", async () => {
  const written: string[] = [];
  const output = {
    async write(p: Uint8Array): Promise<number> {
      await new Promise((r) => setTimeout(r, 5)); // a slow pipe
      written.push(new TextDecoder().decode(p));
      return p.length;
    },
  };
  const t = new DenoStdioTransport({ drainMs: 1000, input: input([`${ping(1)}\n${ping(2)}\n`]), output });
  const closed = new Promise<void>((r) => (t.onclose = r));
  // Answers arrive after EOF, one of them late: both must be written before the close.
  t.onmessage = (m) => {
    const id = (m as { id: number }).id;
    setTimeout(() => t.send({ jsonrpc: "2.0", id, result: {} }), id * 30);
  };
  await t.start();
  await closed;
  assert.deepEqual(written.map((w) => JSON.parse(w).id), [1, 2]);
  assert.equal(t.closeReason, "stdin closed");
});

Deno.test("DenoStdioTransport does not wait at EOF for a request its client cancelled", async () => {
  const cancel = JSON.stringify({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 1 } });
  // The drain would otherwise wait a minute: the test would fail by its own deadline below.
  const t = new DenoStdioTransport({ drainMs: 60_000, input: input([`${ping(1)}\n${cancel}\n`]) });
  const closed = new Promise<string>((r) => (t.onclose = () => r("closed")));
  let timer = 0;
  const deadline = new Promise<string>((r) => (timer = Number(setTimeout(() => r("still waiting"), 30_000))));
  await t.start();
  assert.equal(await Promise.race([closed, deadline]), "closed");
  clearTimeout(timer);
});
