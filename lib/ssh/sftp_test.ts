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
