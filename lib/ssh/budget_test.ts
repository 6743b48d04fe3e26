import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { SshMcpError } from "../errors.ts";
import { ChannelBudget } from "./budget.ts";

function fakeChannel() {
  return new EventEmitter() as EventEmitter & { once(e: "close", l: () => void): unknown };
}

Deno.test("ChannelBudget queues opens beyond its size until a channel closes", async () => {
  const budget = new ChannelBudget(2);
  const a = await budget.run(undefined, () => Promise.resolve(fakeChannel()));
  await budget.run(undefined, () => Promise.resolve(fakeChannel()));
  let third = false;
  const p = budget.run(undefined, () => Promise.resolve(fakeChannel())).then(() => (third = true));
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(third, false);
  assert.equal(budget.waiting, 1);
  a.emit("close");
  await p;
  assert.equal(third, true);
  assert.equal(budget.inUse, 2);
});

Deno.test("ChannelBudget retries a refused open after another channel closes", async () => {
  const budget = new ChannelBudget(5);
  const first = await budget.run(undefined, () => Promise.resolve(fakeChannel()));
  let tries = 0;
  const p = budget.run(undefined, () => {
    tries++;
    return tries === 1
      ? Promise.reject(new SshMcpError("CHANNEL_OPEN_FAILED", "refused"))
      : Promise.resolve(fakeChannel());
  });
  await new Promise((r) => setTimeout(r, 10));
  first.emit("close");
  await p;
  assert.equal(tries, 2);
});

Deno.test("ChannelBudget fails waiters when the connection is gone", async () => {
  const budget = new ChannelBudget(1);
  await budget.run(undefined, () => Promise.resolve(fakeChannel()));
  const waiting = budget.run(undefined, () => Promise.resolve(fakeChannel()));
  const reason = new SshMcpError("CONNECTION_LOST", "gone");
  budget.fail(reason);
  await assert.rejects(waiting, (e) => e === reason);
  await assert.rejects(budget.run(undefined, () => Promise.resolve(fakeChannel())), (e) => e === reason);
});

Deno.test("ChannelBudget stops waiting when the signal aborts", async () => {
  const budget = new ChannelBudget(1);
  await budget.run(undefined, () => Promise.resolve(fakeChannel()));
  const ac = new AbortController();
  const waiting = budget.run(ac.signal, () => Promise.resolve(fakeChannel()));
  ac.abort(new Error("stop"));
  await assert.rejects(waiting, /stop/);
  assert.equal(budget.waiting, 0);
});
