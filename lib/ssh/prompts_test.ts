import assert from "node:assert/strict";
import { SshMcpError } from "../errors.ts";
import { type ConnectPrompts, PausableTimer, timedPrompts } from "./prompts.ts";

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("PausableTimer does not expire while paused, and expires after resume", async () => {
  let expired = false;
  let onExpire!: () => void;
  const fired = new Promise<void>((resolve) => (onExpire = resolve));
  const timer = new PausableTimer(30, () => {
    expired = true;
    onExpire();
  });
  const resume = timer.pause();
  await delay(200); // several times the timer's length
  assert.equal(expired, false);
  resume();
  resume(); // a second call does nothing
  await fired;
  assert.equal(expired, true);
  timer.clear();
});

Deno.test("PausableTimer.clear() stops it for good", async () => {
  let expired = false;
  const timer = new PausableTimer(10, () => (expired = true));
  timer.clear();
  timer.pause()();
  await delay(100);
  assert.equal(expired, false);
});

function never(seen: { signal?: AbortSignal }): ConnectPrompts {
  return {
    unknownHostKey: (_info, signal) => {
      seen.signal = signal;
      return new Promise(() => {});
    },
    keyboardInteractive: (_info, signal) => {
      seen.signal = signal;
      return new Promise(() => {});
    },
  };
}

const question = {
  host: "h",
  port: 22,
  keyType: "ssh-ed25519",
  fingerprint: "SHA256:x",
  canRecord: true,
  matchesExpected: false,
};

Deno.test("timedPrompts() pauses the clock during a question and ends it at its own bound", async () => {
  const seen: { signal?: AbortSignal } = {};
  let paused = 0;
  let resumed = 0;
  const clock = {
    pause: () => {
      paused++;
      return () => void resumed++;
    },
  };
  const ask = timedPrompts(never(seen), { clock, signal: new AbortController().signal, timeoutMs: 20 });
  await assert.rejects(
    ask.unknownHostKey(question),
    (e) => e instanceof SshMcpError && e.code === "CONNECT_TIMEOUT" && /host key question/.test(e.message),
  );
  assert.deepEqual([paused, resumed], [1, 1]);
  assert.equal(seen.signal?.aborted, true); // the client's question is cancelled too
});

Deno.test("timedPrompts() ends an open question when the connect ends", async () => {
  const seen: { signal?: AbortSignal } = {};
  const stop = new AbortController();
  const ask = timedPrompts(never(seen), { clock: { pause: () => () => {} }, signal: stop.signal });
  const asked = ask.keyboardInteractive({
    host: "h",
    port: 22,
    username: "u",
    name: "",
    instructions: "",
    prompts: [{ prompt: "Code: ", echo: false }],
  });
  const reason = new Error("connect over");
  stop.abort(reason);
  await assert.rejects(asked, (e) => e === reason);
  assert.equal(seen.signal?.aborted, true);
});
