/**
 * End to end: long calls report progress (issue 16), on the shipped
 * permission set against a real sshd. A client whose request timeout is
 * shorter than the command, and which resets it on progress (the SDK's
 * `resetTimeoutOnProgress`), completes `ssh_execute` and shell waits; without
 * a progress token nothing is sent.
 */

import assert from "node:assert/strict";
// @ts-types="@modelcontextprotocol/sdk/types"
import type { Progress } from "@modelcontextprotocol/sdk/types.js";
import { connectWithKey } from "./fixtures/mcp.ts";
import { startInProcessServer } from "./fixtures/in_process.ts";
import { sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable();

// The client's request timeout: far shorter than the commands below, far longer than the 2 s between reports.
const CLIENT_TIMEOUT_MS = 4000;

Deno.test({ name: "long calls keep a client with a short timeout waiting by progress", ignore: skip }, async (t) => {
  await using sshd = await startSshd();
  const kh = await sshd.writeKnownHosts();
  await using server = await startInProcessServer({ args: ["--known-hosts", kh] });
  const c = server.client;
  const sid = await connectWithKey(c, sshd);
  const stray: unknown[] = [];
  c.fallbackNotificationHandler = (n) => {
    if (n.method === "notifications/progress") stray.push(n);
    return Promise.resolve();
  };

  await t.step(
    "ssh_execute of 10 s completes under a 4 s timeout, told elapsed time, bytes and last line",
    async () => {
      const seen: Progress[] = [];
      const r = await c.callTool(
        {
          name: "ssh_execute",
          arguments: { session_id: sid, command: "printf 'step-1 \\033[31mred\\n'; sleep 10; echo done" },
        },
        undefined,
        { onprogress: (p) => void seen.push(p), timeout: CLIENT_TIMEOUT_MS, resetTimeoutOnProgress: true },
      );
      assert.equal(r.isError, undefined, JSON.stringify(r.content));
      const out = r.structuredContent as { exit_code: number; stdout: string };
      assert.equal(out.exit_code, 0);
      assert.equal(out.stdout, "step-1 \x1b[31mred\ndone\n");
      assert.ok(seen.length >= 3, `${seen.length} progress notifications`);
      for (let i = 1; i < seen.length; i++) assert.ok(seen[i].progress > seen[i - 1].progress, "progress increases");
      const last = seen.at(-1)!.message ?? "";
      assert.match(last, /^\d+ s: \d+ bytes on stdout, 0 on stderr; last: step-1 /);
      // Remote text in a progress message is escaped, as in every text a model reads.
      assert.ok(last.includes("step-1 \\x1b[31mred") && !last.includes("\x1b"), last);
    },
  );

  await t.step("the same timeout without progress ends the call: the timeout is real", async () => {
    await assert.rejects(
      c.callTool({ name: "ssh_execute", arguments: { session_id: sid, command: "sleep 10" } }, undefined, {
        timeout: CLIENT_TIMEOUT_MS,
      }),
      /timed out/i,
    );
  });

  await t.step("a shell wait of 8 s completes under the 4 s timeout", async () => {
    await c.callTool({ name: "ssh_shell_open", arguments: { session_id: sid } });
    const seen: Progress[] = [];
    const r = await c.callTool(
      {
        name: "ssh_shell_send",
        arguments: { session_id: sid, data: "echo tick-$((1+1)); sleep 8; echo fin-$((2+2))", wait_for: "fin-4" },
      },
      undefined,
      { onprogress: (p) => void seen.push(p), timeout: CLIENT_TIMEOUT_MS, resetTimeoutOnProgress: true },
    );
    assert.equal((r.structuredContent as { reason: string }).reason, "matched", JSON.stringify(r.content));
    assert.ok(seen.length >= 2, `${seen.length} progress notifications`);
    assert.match(seen.at(-1)!.message ?? "", /bytes of output so far; last: tick-2/);
  });

  await t.step("without a progress token, no progress is sent", async () => {
    const r = await c.callTool({ name: "ssh_execute", arguments: { session_id: sid, command: "sleep 5; echo ok" } });
    assert.equal((r.structuredContent as { exit_code: number }).exit_code, 0);
    assert.deepEqual(stray, []);
  });
});
