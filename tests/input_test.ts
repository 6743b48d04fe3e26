/**
 * End to end: hostile tool input is rejected with a clear error, nothing
 * runs that should not, and the server keeps serving.
 */

import assert from "node:assert/strict";
import { call, callOk, startServer } from "./fixtures/mcp.ts";
import { sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable();

Deno.test({ name: "hostile inputs are rejected and the server stays up", ignore: skip }, async (t) => {
  await using sshd = await startSshd();
  const kh = await sshd.writeKnownHosts();
  await using server = await startServer({ args: ["--known-hosts", kh] });
  const c = server.client;
  // The canary's directory is writable by the remote user too, so an injection that ran would succeed.
  const dir = await Deno.makeTempDir({ prefix: "mcp-canary-" });
  await Deno.chmod(dir, 0o777);
  const canary = `${dir}/pwned`;
  const good = { host: sshd.host, port: sshd.port, username: sshd.user, private_key_path: sshd.keys.ed25519.path };
  const id = (await callOk(c, "ssh_connect", good)).structured.session_id;

  async function assertAlive() {
    const r = await callOk(c, "ssh_execute", { session_id: id, command: "echo alive" });
    assert.equal(r.structured.stdout, "alive\n");
  }

  try {
    await t.step("hosts that look like options or carry metacharacters", async () => {
      for (
        const host of [
          `-oProxyCommand=touch ${canary}`,
          `127.0.0.1;touch ${canary}`,
          `$(touch ${canary})`,
          "`id`",
          "127.0.0.1\nevil",
          "127.0.0.1\0",
          " 127.0.0.1",
          "x".repeat(300),
        ]
      ) {
        const r = await call(c, "ssh_connect", { ...good, host });
        assert.ok(r.isError, JSON.stringify(host));
        assert.match(r.text, /host/i, r.text);
      }
    });

    await t.step("users that look like options or carry metacharacters", async () => {
      for (const username of [`-oProxyCommand=touch ${canary}`, `u;touch ${canary}`, "$(id)", "a b", "a\nb", ""]) {
        const r = await call(c, "ssh_connect", { ...good, username });
        assert.ok(r.isError, JSON.stringify(username));
        assert.match(r.text, /username/i, r.text);
      }
    });

    await t.step("ports and timeouts out of range or of the wrong type", async () => {
      for (const port of [0, 65536, -1, 22.5, "22;id", "22", null]) {
        const r = await call(c, "ssh_connect", { ...good, port });
        assert.ok(r.isError, JSON.stringify(port));
        assert.match(r.text, /port/, r.text);
      }
      for (const connect_timeout of [-5, 0, 1e9, "10"]) {
        const r = await call(c, "ssh_connect", { ...good, connect_timeout });
        assert.ok(r.isError, JSON.stringify(connect_timeout));
      }
      for (const timeout of [-1, 0, 1e12, "5", Infinity]) {
        const r = await call(c, "ssh_execute", { session_id: id, command: "true", timeout });
        assert.ok(r.isError, JSON.stringify(timeout));
        assert.match(r.text, /timeout/, r.text);
      }
    });

    await t.step("a 10 MB command, NUL in cwd, bad env names and __proto__ keys", async () => {
      const huge = await call(c, "ssh_execute", { session_id: id, command: "x".repeat(10 * 1024 * 1024) });
      assert.ok(huge.isError);
      assert.match(huge.text, /command/);
      const nul = await call(c, "ssh_execute", { session_id: id, command: "pwd", cwd: "/tmp\0/x" });
      assert.ok(nul.isError);
      assert.match(nul.text, /NUL/);
      const badEnv = await call(c, "ssh_execute", {
        session_id: id,
        command: "true",
        env: { [`A;touch ${canary}`]: "1" },
      });
      assert.ok(badEnv.isError);
      const proto = await c.callTool({
        name: "ssh_execute",
        arguments: JSON.parse(`{"session_id":"${id}","command":"env","env":{"__proto__":{"X":"1"}}}`),
      });
      assert.equal(proto.isError, true);
      assert.match(JSON.stringify(proto.content), /__proto__ is not allowed/);
      assert.equal(({} as Record<string, unknown>).X, undefined);
    });

    await t.step("unknown and malformed session ids", async () => {
      for (const session_id of ["s-0000000000000000", "__proto__", "constructor", "x".repeat(1000), ""]) {
        const r = await call(c, "ssh_execute", { session_id, command: "true" });
        assert.ok(r.isError, session_id.slice(0, 20));
        if (session_id.length > 0 && session_id.length <= 64) assert.equal(r.code, "SESSION_NOT_FOUND", r.text);
      }
    });

    await t.step("structured values that reach the remote shell arrive as one literal", async () => {
      for (
        const value of [
          `x; touch ${canary}`,
          `$(touch ${canary})`,
          `\`touch ${canary}\``,
          `a\ntouch ${canary}`,
          `'; touch ${canary}; '`,
          `-rf`,
        ]
      ) {
        const r = await callOk(c, "ssh_execute", {
          session_id: id,
          command: `printf '%s' "$V"`,
          env: { V: value },
          cwd: "/",
        });
        assert.equal(r.structured.stdout, value);
        const cwd = await call(c, "ssh_execute", { session_id: id, command: "pwd", cwd: value });
        assert.equal(cwd.code, "CWD_FAILED", cwd.text);
      }
    });

    await t.step("nothing was injected and the server still serves", async () => {
      await assertAlive();
      await assert.rejects(Deno.stat(canary), Deno.errors.NotFound);
      // Control: the remote user can create the canary when asked to, so its absence means something.
      await callOk(c, "ssh_execute", { session_id: id, command: `touch '${canary}'` });
      await Deno.stat(canary);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
