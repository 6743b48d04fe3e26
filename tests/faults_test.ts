/**
 * End to end: connection faults. A frozen peer is detected by keepalives
 * and does not hold up other sessions; a command cut off by a lost
 * connection is never called retryable.
 */

import assert from "node:assert/strict";
// @ts-types="@modelcontextprotocol/sdk/client/index"
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { call, callOk, connectWithKey } from "./fixtures/mcp.ts";
import { startInProcessServer } from "./fixtures/in_process.ts";
import { findInPath } from "./fixtures/process.ts";
import { signalAll, sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable();

/** A tool error's code and retry advice, as an agent reads them from `_meta`. */
async function failure(
  c: Client,
  name: string,
  args: Record<string, unknown>,
): Promise<{ code?: string; retryable?: boolean; hint?: string; text: string }> {
  const r = await c.callTool({ name, arguments: args });
  const meta = r._meta as { code?: string; retryable?: boolean; hint?: string } | undefined;
  const text = (r.content as { text?: string }[]).map((x) => x.text ?? "").join("\n");
  assert.equal(r.isError, true, `${name} succeeded: ${text}`);
  return { code: meta?.code, retryable: meta?.retryable, hint: meta?.hint, text };
}

/** Waits until a file exists (the remote side is this machine): the command has started. */
async function waitForFile(path: string, pending: Promise<unknown>): Promise<void> {
  let done = false;
  pending.finally(() => (done = true));
  for (;;) {
    try {
      await Deno.lstat(path);
      return;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    if (done) throw new Error(`the command ended before it created ${path}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test(
  { name: "a frozen peer is reported lost by keepalive and other sessions keep working", ignore: skip },
  async () => {
    await using sshd = await startSshd();
    const dir = await Deno.makeTempDir({ prefix: "mcp-faults-" });
    let frozen: number[] = [];
    try {
      const kh = await sshd.writeKnownHosts(`${dir}/kh`);
      const config = `${dir}/config.json`;
      await Deno.writeTextFile(config, JSON.stringify({ keepalive_interval: 1, keepalive_count_max: 2 }));
      await using server = await startInProcessServer({ args: ["--known-hosts", kh, "--config", config] });
      const c = server.client;
      const args = { host: sshd.host, port: sshd.port, username: sshd.user, private_key_path: sshd.keys.ed25519.path };
      const a = (await callOk(c, "ssh_connect", args)).structured.session_id;
      // After a first command the connection's sshd processes are the lasting ones
      // (the pre-auth child is gone); these are the ones to freeze.
      await callOk(c, "ssh_execute", { session_id: a, command: "true" });
      const aPids = await sshd.sessionPids([]);
      const b = (await callOk(c, "ssh_connect", args)).structured.session_id;

      const started = `/tmp/mcp-faults-${crypto.randomUUID()}`;
      const pending = call(c, "ssh_execute", { session_id: a, command: `touch ${started}; sleep 30`, timeout: 20 });
      await waitForFile(started, pending);
      await Deno.remove(started);
      frozen = aPids;
      signalAll(frozen, "SIGSTOP"); // TCP stays up, the peer says nothing

      const other = await callOk(c, "ssh_execute", { session_id: b, command: "echo still here" });
      assert.equal(other.structured.stdout, "still here\n");

      const r = await pending;
      assert.equal(r.code, "CONNECTION_LOST", r.text);
      assert.match(r.text, /not responding \(keepalive timeout\)/);
      const again = await failure(c, "ssh_execute", { session_id: a, command: "true" });
      assert.equal(again.code, "CONNECTION_LOST");
      assert.match(again.text, /ssh_connect/);
      // Lost before this call sent anything: nothing ran, so it may be repeated after reconnecting.
      assert.equal(again.retryable, true);
      const list = await callOk(c, "ssh_list_sessions");
      const lost = list.structured.sessions.find((s: { session_id: string }) => s.session_id === a);
      assert.equal(lost.connected, false);
      assert.match(lost.error, /keepalive/);
    } finally {
      signalAll(frozen, "SIGCONT");
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  { name: "a command cut off by a lost connection is CONNECTION_LOST and not retryable", ignore: skip },
  async (t) => {
    await using sshd = await startSshd();
    const dir = await Deno.makeTempDir({ prefix: "mcp-unknown-" });
    const started = `/tmp/mcp-unknown-${crypto.randomUUID()}`;
    try {
      const kh = await sshd.writeKnownHosts(`${dir}/kh`);
      await using server = await startInProcessServer({ args: ["--known-hosts", kh] });
      const c = server.client;

      // Kills the connection's sshd processes once the command has really started.
      const cutWhileRunning = async (name: string, args: (sid: string) => Record<string, unknown>) => {
        const before = await sshd.childPids();
        const sid = await connectWithKey(c, sshd);
        await callOk(c, "ssh_execute", { session_id: sid, command: "true" });
        const pids = await sshd.sessionPids(before);
        const pending = failure(c, name, args(sid));
        await waitForFile(started, pending);
        await Deno.remove(started);
        signalAll(pids, "SIGKILL");
        return { sid, result: await pending };
      };

      await t.step("ssh_execute", async () => {
        const { sid, result } = await cutWhileRunning("ssh_execute", (sid) => ({
          session_id: sid,
          command: `echo x >> ${started}; sleep 30`,
          timeout: 60,
        }));
        assert.equal(result.code, "CONNECTION_LOST", result.text);
        assert.equal(result.retryable, false, "an agent would run `echo x >> f` twice");
        assert.match(result.text, /outcome is unknown/);
        assert.match(result.hint!, /may have run: check the remote state before running it again/);
        // The next call on the lost session sent nothing: that one may be repeated.
        const next = await failure(c, "ssh_execute", { session_id: sid, command: "true" });
        assert.equal(next.code, "CONNECTION_LOST");
        assert.equal(next.retryable, true);
      });

      const sudo = sshd.passwordUser !== null && findInPath("sudo") !== null;
      await t.step({
        name: "ssh_sudo_execute",
        ignore: !sudo,
        fn: async () => {
          const { result } = await cutWhileRunning("ssh_sudo_execute", (sid) => ({
            session_id: sid,
            command: `touch ${started}; sleep 30`,
            password: sshd.passwordUser!.password,
            timeout: 40,
          }));
          assert.equal(result.code, "CONNECTION_LOST", result.text);
          assert.equal(result.retryable, false);
        },
      });
      if (!sudo) console.warn("SKIP the sudo case: no sudo here, or no password user (not root)");
    } finally {
      await Deno.remove(started).catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test({ name: "a connect refused before anything reaches the server stays retryable" }, async () => {
  await using server = await startInProcessServer();
  // A port nobody listens on: refused at connect.
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = probe.addr.port;
  probe.close();
  const refused = await failure(server.client, "ssh_connect", {
    host: "127.0.0.1",
    port,
    username: "nobody",
    password: "x",
  });
  assert.equal(refused.code, "CONNECT_REFUSED", refused.text);
  assert.equal(refused.retryable, true);
});
