import assert from "node:assert/strict";
import type { SFTPWrapper } from "../ssh2/mod.ts";
import { SshMcpError } from "../errors.ts";
import { call, failRequestsWhen, isAbandoned, request, setRequestDeadline } from "./sftp_request.ts";

/** A stand-in SFTP session whose requests are sent but never answered, and whose connection then ends. */
function lostSession(): SFTPWrapper {
  const sftp = {} as SFTPWrapper;
  failRequestsWhen(
    sftp,
    Promise.reject(new SshMcpError("CONNECTION_LOST", "Connection lost", { hint: "Call ssh_connect again" })),
  );
  return sftp;
}

Deno.test("call() says a change cut off by a lost connection may have been made, and is not retryable", async () => {
  for (const action of ["write", "rename", "remove", "chmod", "create directory", "replace"]) {
    await assert.rejects(call<void>(lostSession(), "/srv/f", action, () => {}), (e: unknown) => {
      assert.ok(e instanceof SshMcpError);
      assert.equal(e.code, "CONNECTION_LOST");
      assert.equal(e.retryable, false, action);
      assert.match(e.hint ?? "", /^The change may have been made: check the remote path/);
      return true;
    });
  }
});

Deno.test("call() keeps a read cut off by a lost connection retryable", async () => {
  for (const action of ["stat", "read", "list", "open", "close"]) {
    await assert.rejects(call<void>(lostSession(), "/srv/f", action, () => {}), (e: unknown) => {
      assert.ok(e instanceof SshMcpError);
      assert.equal(e.retryable, true, action);
      return true;
    });
  }
});

type Callback = (err: Error | undefined | null, value?: unknown) => void;

/**
 * A stand-in SFTP session that records requests and answers only when told
 * (`answer`), and records whether it was ended.
 */
function fakeSession() {
  const waiting: Callback[] = [];
  const state = { ended: false };
  const sftp = {
    stat: (_path: string, cb: Callback) => waiting.push(cb),
    unlink: (_path: string, cb: Callback) => waiting.push(cb),
    end: () => (state.ended = true),
  } as unknown as SFTPWrapper;
  return { sftp, waiting, state };
}

/** Resolves once `condition` holds, checking every few milliseconds. */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5));
}

Deno.test("a request the server never answers fails with SFTP_TIMEOUT at its deadline and the channel is abandoned", async () => {
  const { sftp, waiting, state } = fakeSession();
  setRequestDeadline(sftp, 200);
  const stuck = call<unknown>(sftp, "/srv/fifo", "open", (cb) => sftp.stat("/srv/fifo", cb));
  // Queued behind it on the same channel: a read and a change.
  const read = call<unknown>(sftp, "/srv/a", "stat", (cb) => sftp.stat("/srv/a", cb));
  const change = call<void>(sftp, "/srv/b", "remove", (cb) => sftp.unlink("/srv/b", cb));
  await assert.rejects(stuck, (e: unknown) => {
    assert.ok(e instanceof SshMcpError);
    assert.equal(e.code, "SFTP_TIMEOUT");
    assert.match(e.message, /^Cannot open \/srv\/fifo: the server answered nothing for 0\.2 s$/);
    assert.match(e.hint ?? "", /^The SFTP channel was reset; the next file call opens a new one/);
    return true;
  });
  await assert.rejects(read, (e: unknown) => {
    assert.ok(e instanceof SshMcpError);
    assert.equal(e.code, "SFTP_CHANNEL_RESET");
    assert.equal(e.retryable, true);
    return true;
  });
  await assert.rejects(change, (e: unknown) => {
    assert.ok(e instanceof SshMcpError);
    assert.equal(e.code, "SFTP_CHANNEL_RESET");
    assert.equal(e.retryable, false);
    assert.match(e.hint ?? "", /^The change may have been made/);
    return true;
  });
  assert.equal(state.ended, true, "the stuck channel was not closed");
  assert.equal(isAbandoned(sftp), true);
  // Answers that come after all are ignored, and nothing more is sent on the channel.
  for (const cb of waiting) cb(null, {});
  const sent = waiting.length;
  await assert.rejects(call<unknown>(sftp, "/srv/c", "stat", (cb) => sftp.stat("/srv/c", cb)), /channel was reset/);
  assert.equal(waiting.length, sent);
});

Deno.test("a channel that keeps answering is never abandoned, however long its queue takes", async () => {
  const { sftp, waiting, state } = fakeSession();
  setRequestDeadline(sftp, 1000);
  // Twenty requests in flight, answered one every 100 ms: the last waits 2 s, twice the deadline.
  const all = Promise.all(
    Array.from({ length: 20 }, (_, i) => call<unknown>(sftp, `/srv/${i}`, "stat", (cb) => sftp.stat("/srv", cb))),
  );
  for (let i = 0; i < 20; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    waiting[i](null, { i });
  }
  assert.deepEqual((await all).map((v) => (v as { i: number }).i), Array.from({ length: 20 }, (_, i) => i));
  assert.equal(state.ended, false);
  assert.equal(isAbandoned(sftp), false);
});

Deno.test("request() calls back exactly once: with the answer, or with the reset error", async () => {
  const { sftp, waiting } = fakeSession();
  setRequestDeadline(sftp, 100);
  const answers: unknown[] = [];
  request<unknown>(sftp, { path: "/srv/x", action: "read" }, (cb) => sftp.stat("/srv/x", cb), (err, value) => {
    answers.push(err?.code ?? value);
  });
  waiting[0](null, "first");
  waiting[0](null, "again");
  const late: unknown[] = [];
  request<unknown>(sftp, { path: "/srv/y", action: "write" }, (cb) => sftp.stat("/srv/y", cb), (err, value) => {
    late.push(err ?? value);
  });
  await until(() => late.length > 0);
  waiting[1](null, "too late");
  assert.deepEqual(answers, ["first"]);
  assert.equal(late.length, 1);
  assert.ok(late[0] instanceof SshMcpError && late[0].code === "SFTP_TIMEOUT" && !late[0].retryable);
});

Deno.test("call() fails at once when its signal aborts, and the channel's deadline still covers the request", async () => {
  const { sftp, waiting, state } = fakeSession();
  setRequestDeadline(sftp, 300);
  const stop = new AbortController();
  const pending = call<unknown>(sftp, "/srv/fifo", "open", (cb) => sftp.stat("/srv/fifo", cb), stop.signal);
  stop.abort(new SshMcpError("CANCELLED", "Cancelled"));
  await assert.rejects(pending, (e: unknown) => e instanceof SshMcpError && e.code === "CANCELLED");
  assert.equal(waiting.length, 1, "the request was sent");
  await until(() => state.ended);
  assert.equal(isAbandoned(sftp), true);
});

Deno.test({
  name: "call() keeps nothing of an answered request while the connection lives",
  ignore: (globalThis as { gc?: unknown }).gc === undefined, // needs --v8-flags=--expose-gc, as `deno task test` runs
}, async () => {
  const sftp = {} as SFTPWrapper;
  failRequestsWhen(sftp, new Promise<never>(() => {})); // a connection that stays up
  const answers: WeakRef<object>[] = [];
  for (let i = 0; i < 50; i++) {
    const stats = { size: i };
    const failure = Object.assign(new Error("no such file"), { code: 2 });
    answers.push(new WeakRef(stats), new WeakRef(failure));
    await call(sftp, "/srv/f", "stat", (cb) => cb(null, stats));
    await call(sftp, "/srv/f", "write", (cb) => cb(failure, undefined)).catch(() => {});
  }
  // WeakRef targets stay alive until the current job ends.
  await new Promise((resolve) => setTimeout(resolve, 0));
  (globalThis as unknown as { gc(): void }).gc();
  const kept = answers.filter((a) => a.deref() !== undefined).length;
  assert.equal(kept, 0, `${kept} of ${answers.length} answers still reachable`);
});
