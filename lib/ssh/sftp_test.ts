import assert from "node:assert/strict";
import type { SFTPWrapper } from "../ssh2/mod.ts";
import { SshMcpError } from "../errors.ts";
import { call, failRequestsWhen } from "./sftp.ts";

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
