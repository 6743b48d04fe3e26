/**
 * End to end: connection faults. A frozen peer is detected by keepalives
 * and does not hold up other sessions.
 */

import assert from "node:assert/strict";
import { call, callOk, startServer } from "./fixtures/mcp.ts";
import { sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable();

function signalAll(pids: number[], signal: Deno.Signal): void {
  for (const pid of pids) {
    try {
      Deno.kill(pid, signal);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e; // already gone
    }
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
      await using server = await startServer({ args: ["--known-hosts", kh, "--config", config] });
      const c = server.client;
      const args = { host: sshd.host, port: sshd.port, username: sshd.user, private_key_path: sshd.keys.ed25519.path };
      const a = (await callOk(c, "ssh_connect", args)).structured.session_id;
      // After a first command the connection's sshd processes are the lasting ones
      // (the pre-auth child is gone); these are the ones to freeze.
      await callOk(c, "ssh_execute", { session_id: a, command: "true" });
      await new Promise((r) => setTimeout(r, 200));
      const aPids = await sshd.childPids();
      const b = (await callOk(c, "ssh_connect", args)).structured.session_id;

      const pending = call(c, "ssh_execute", { session_id: a, command: "sleep 30", timeout: 20 });
      await new Promise((r) => setTimeout(r, 300));
      frozen = aPids;
      signalAll(frozen, "SIGSTOP"); // TCP stays up, the peer says nothing

      const other = await callOk(c, "ssh_execute", { session_id: b, command: "echo still here" });
      assert.equal(other.structured.stdout, "still here\n");

      const r = await pending;
      assert.equal(r.code, "CONNECTION_LOST", r.text);
      assert.match(r.text, /not responding \(keepalive timeout\)/);
      const again = await call(c, "ssh_execute", { session_id: a, command: "true" });
      assert.equal(again.code, "CONNECTION_LOST");
      assert.match(again.text, /ssh_connect/);
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
