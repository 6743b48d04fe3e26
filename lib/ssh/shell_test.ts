import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { EventEmitter } from "node:events";
import type { SshConnection } from "./connection.ts";
import { Shell } from "./shell.ts";

// A channel that delivers what the test pushes, as ssh2's does, with no network.
class FakeChannel extends EventEmitter {
  stderr = new EventEmitter();
  writableLength = 0;
  #close: () => void;
  constructor(close: () => void) {
    super();
    this.#close = close;
  }
  write(): boolean {
    return true;
  }
  setWindow(): void {}
  pause(): void {}
  resume(): void {}
  close(): void {
    this.#close();
  }
}

async function fakeShell(bufferBytes = 2_000_000): Promise<{ shell: Shell; output(text: string): void }> {
  let closed!: () => void;
  const closedPromise = new Promise<void>((resolve) => closed = resolve);
  const channel = new FakeChannel(() => closed());
  const connection = {
    shell: () =>
      Promise.resolve({ channel, status: { code: null, signal: null }, exited: closedPromise, closed: closedPromise }),
  } as unknown as SshConnection;
  const shell = await Shell.open(connection, "t", { bufferBytes });
  return { shell, output: (text) => channel.emit("data", Buffer.from(text)) };
}

Deno.test("Shell.wait() searches a big window with a big pattern in slices, letting other work run", async () => {
  const { shell, output } = await fakeShell();
  try {
    output("a".repeat(200_000) + "x");
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 0);
    const started = performance.now();
    const w = await shell.wait({ pattern: "(.*a){20}x", regex: true, timeoutMs: 60_000, maxBytes: 100 }).finally(
      () => clearInterval(ticker),
    );
    // The property: timers ran while the search went on (V8's engine, or one
    // unsliced search, would have answered without letting any run).
    assert.equal(w.reason, "matched");
    assert.ok(w.match?.endsWith("aax"));
    assert.ok(ticks > 0, "no timer ran during the search");
    console.log(`64 KB window, /(.*a){20}x/: ${(performance.now() - started).toFixed(0)} ms, ${ticks} timer turns`);
  } finally {
    shell.close();
  }
});

Deno.test("Shell.wait() answers at its deadline on a pathological pattern over 1 MB of output", async () => {
  const { shell, output } = await fakeShell();
  try {
    for (let i = 0; i < 16; i++) output("A".repeat(65536));
    const w = await shell.wait({ pattern: "(A+)+B", regex: true, timeoutMs: 300, maxBytes: 10 });
    assert.equal(w.reason, "timeout");
    assert.equal(w.match, null);
  } finally {
    shell.close();
  }
});

Deno.test("Shell.wait() finds a match split across chunks and ends closed only after searching the last output", async () => {
  const { shell, output } = await fakeShell();
  const w = shell.wait({ pattern: "^rea+dy \\d+$", regex: true, timeoutMs: 60_000, maxBytes: 1000 });
  output("noise\nre");
  output("aaa");
  output("dy 42\nrest");
  const r = await w;
  assert.equal(r.reason, "matched");
  assert.equal(r.match, "reaaady 42");
  assert.equal(r.output, "noise\nreaaady 42");

  // Output and the close in one turn: the match in the last output wins.
  const last = shell.wait({ pattern: "bye", timeoutMs: 60_000, maxBytes: 1000 });
  output("\nbye\n");
  shell.close();
  assert.equal((await last).reason, "matched");
});

Deno.test("Shell.wait() refuses a pattern it cannot run in linear time before waiting", async () => {
  const { shell } = await fakeShell();
  try {
    await assert.rejects(
      shell.wait({ pattern: "(a)\\1", regex: true, timeoutMs: 60_000, maxBytes: 10 }),
      /\[?INVALID_ARGUMENT|backreference/,
    );
  } finally {
    shell.close();
  }
});
