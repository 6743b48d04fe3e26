import assert from "node:assert/strict";
import { ChannelBudget } from "./budget.ts";

const tick = () => new Promise((r) => setTimeout(r, 5));

Deno.test("ChannelBudget queues acquires beyond its size until a slot is released", async () => {
  const budget = new ChannelBudget(2);
  const releaseA = await budget.acquire();
  await budget.acquire();
  let third = false;
  const p = budget.acquire().then(() => (third = true));
  await tick();
  assert.equal(third, false);
  assert.equal(budget.waiting, 1);
  releaseA();
  await p;
  assert.equal(budget.inUse, 2);
});

Deno.test("ChannelBudget never exceeds its size when releases and new acquires race", async () => {
  const budget = new ChannelBudget(3);
  let open = 0;
  let maxOpen = 0;
  await Promise.all(Array.from({ length: 40 }, async () => {
    const release = await budget.acquire();
    open++;
    maxOpen = Math.max(maxOpen, open);
    await tick();
    open--;
    release();
  }));
  assert.equal(maxOpen, 3);
  assert.equal(budget.inUse, 0);
});

Deno.test("ChannelBudget release is idempotent", async () => {
  const budget = new ChannelBudget(1);
  const release = await budget.acquire();
  release();
  release();
  assert.equal(budget.inUse, 0);
  await budget.acquire();
  assert.equal(budget.inUse, 1);
});

Deno.test("ChannelBudget nextRelease resolves on the next release without taking a slot", async () => {
  const budget = new ChannelBudget(5);
  const release = await budget.acquire();
  let heard = false;
  const p = budget.nextRelease().then(() => (heard = true));
  await tick();
  assert.equal(heard, false);
  release();
  await p;
  assert.equal(budget.inUse, 0);
});

Deno.test("ChannelBudget fails waiters and later calls when the connection is gone", async () => {
  const budget = new ChannelBudget(1);
  await budget.acquire();
  const waiting = budget.acquire();
  const reason = new Error("gone");
  budget.fail(reason);
  await assert.rejects(waiting, (e) => e === reason);
  await assert.rejects(budget.acquire(), (e) => e === reason);
});

Deno.test("ChannelBudget stops waiting when the signal aborts", async () => {
  const budget = new ChannelBudget(1);
  await budget.acquire();
  const ac = new AbortController();
  const waiting = budget.acquire(ac.signal);
  ac.abort(new Error("stop"));
  await assert.rejects(waiting, /stop/);
  assert.equal(budget.waiting, 0);
});

Deno.test("ChannelBudget refuses at once a wait whose signal is already aborted", async () => {
  const budget = new ChannelBudget(1);
  await budget.acquire();
  const aborted = AbortSignal.abort(new Error("already"));
  // Without the check these never settle: an abort event does not come twice.
  await assert.rejects(budget.nextRelease(aborted), /already/);
  await assert.rejects(budget.acquire(aborted), /already/);
  assert.equal(budget.waiting, 0);
});
