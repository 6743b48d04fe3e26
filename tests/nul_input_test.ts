/**
 * End to end against a real sshd: input that SSH cannot carry is refused
 * before anything is sent, naming the field, and never costs the connection.
 * A NUL in an exec request made sshd drop the whole connection (its shells
 * with it); here a shell opened first is still usable after every refusal.
 * Also: a host given as host:port, or an IPv6 literal that does not parse,
 * is an INVALID_ARGUMENT that says to use `port`, not a lost connection.
 */

import assert from "node:assert/strict";
import { call, callOk, connectWithKey, startServer } from "./fixtures/mcp.ts";
import { sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable();

/** One refused call: the tool, its arguments, and the field the error must name. */
interface Refusal {
  tool: string;
  args: Record<string, unknown>;
  field: string;
  why?: RegExp;
}

Deno.test(
  { name: "NUL and other unsendable input is refused up front and the session lives on", ignore: skip },
  async (t) => {
    await using sshd = await startSshd();
    const kh = await sshd.writeKnownHosts();
    await using server = await startServer({ args: ["--known-hosts", kh] });
    const c = server.client;
    const id = await connectWithKey(c, sshd);
    await callOk(c, "ssh_shell_open", { session_id: id, shell_id: "nul" });
    const shellSays = async (word: string) => {
      await callOk(c, "ssh_shell_send", { session_id: id, shell_id: "nul", data: `echo ${word}-$((20+22))` });
      const r = await callOk(c, "ssh_shell_wait", {
        session_id: id,
        shell_id: "nul",
        pattern: `${word}-42`,
        timeout: 30,
      });
      assert.equal(r.structured.reason, "matched", r.text);
    };
    await shellSays("before");

    const refusals: Refusal[] = [
      { tool: "ssh_execute", args: { command: "echo a\0b" }, field: "command" },
      { tool: "ssh_execute", args: { command: "pwd", cwd: "/tmp\0/x" }, field: "cwd" },
      { tool: "ssh_execute", args: { command: "true", env: { "A\0B": "1" } }, field: "env" },
      { tool: "ssh_execute", args: { command: "true", env: { V: "a\0b" } }, field: "env.V" },
      { tool: "ssh_sudo_execute", args: { command: "id\0" }, field: "command" },
      { tool: "ssh_sudo_execute", args: { command: "id", password: "pw\0x" }, field: "password" },
      {
        tool: "ssh_sudo_execute",
        args: { command: "id", password: "wrong\nright" },
        field: "password",
        why: /one line/,
      },
      { tool: "ssh_sudo_execute", args: { command: "id", cwd: "/\0" }, field: "cwd" },
      { tool: "ssh_read_remote_file", args: { remote_path: "/etc/hostname\0x" }, field: "remote_path" },
      { tool: "ssh_write_remote_file", args: { remote_path: "/tmp/x\0y", content: "z" }, field: "remote_path" },
      { tool: "ssh_list_remote_dir", args: { remote_path: "/\0" }, field: "remote_path" },
      {
        tool: "ssh_manage_remote",
        args: { action: "rename", remote_path: "/tmp/a", to_path: "/tmp/b\0" },
        field: "to_path",
      },
      { tool: "ssh_upload_file", args: { local_path: "deno.json\0x", remote_path: "/tmp/u" }, field: "local_path" },
      { tool: "ssh_download_file", args: { remote_path: "/etc/hostname", local_path: "x\0y" }, field: "local_path" },
      { tool: "ssh_forward_port", args: { remote_host: "db\0", remote_port: 5432 }, field: "remote_host" },
    ];
    await t.step("a NUL in ssh_shell_wait's pattern is matched here, never sent: not refused", async () => {
      const r = await callOk(c, "ssh_shell_wait", { session_id: id, shell_id: "nul", pattern: "a\0", timeout: 1 });
      assert.notEqual(r.structured.reason, "matched", r.text);
    });
    for (const r of refusals) {
      await t.step(`${r.tool} ${JSON.stringify(r.args)}: INVALID_ARGUMENT naming ${r.field}`, async () => {
        const result = await call(c, r.tool, { session_id: id, ...r.args });
        assert.equal(result.code, "INVALID_ARGUMENT", result.text);
        assert.ok(result.text.includes(r.field), `${r.field} not named: ${result.text}`);
        assert.match(result.text, r.why ?? /NUL/);
      });
    }

    await t.step("ssh_connect with NUL in private_key_path or password: INVALID_ARGUMENT, nothing opened", async () => {
      const good = { host: sshd.host, port: sshd.port, username: sshd.user };
      for (
        const [field, extra] of [["private_key_path", { private_key_path: "/tmp/k\0" }], ["password", {
          password: "p\0",
        }]] as const
      ) {
        const result = await call(c, "ssh_connect", { ...good, ...extra });
        assert.equal(result.code, "INVALID_ARGUMENT", result.text);
        assert.ok(result.text.includes(field), result.text);
      }
      const list = await callOk(c, "ssh_list_sessions");
      assert.equal(list.structured.sessions.length, 1);
    });

    await t.step("a command and env bigger than sshd takes in one packet run, and the connection stays", async () => {
      // 131,000 characters pass the schema's length limit but are 393 KB in UTF-8: in the exec request sshd
      // dropped the connection. The wrapper sends a script this big on stdin instead.
      const big = await callOk(c, "ssh_execute", { session_id: id, command: `echo ${"€".repeat(131_000)} | wc -c` });
      assert.equal(big.structured.stdout.trim(), String(131_000 * 3 + 1));
      const env = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`V${i}`, "x".repeat(32_000)]));
      const bigEnv = await callOk(c, "ssh_execute", { session_id: id, command: 'printf %s "$V0$V11" | wc -c', env });
      assert.equal(bigEnv.structured.stdout.trim(), "64000");
    });

    await t.step("where NUL is data it is sent: stdin of ssh_execute", async () => {
      const r = await callOk(c, "ssh_execute", { session_id: id, command: "wc -c", stdin: "a\0b" });
      assert.equal(r.structured.stdout.trim(), "3");
    });

    await t.step("afterwards the same session works: the shell opened before, and a new command", async () => {
      await shellSays("after");
      const r = await callOk(c, "ssh_execute", { session_id: id, command: "echo alive" });
      assert.equal(r.structured.stdout, "alive\n");
      const list = await callOk(c, "ssh_list_sessions");
      assert.equal(list.structured.sessions[0].connected, true);
    });
  },
);

Deno.test("a host given as host:port, or an IPv6 literal that does not parse, is INVALID_ARGUMENT", async () => {
  await using server = await startServer();
  const c = server.client;
  const args = { port: 22, username: "nobody", password: "x", connect_timeout: 5 };
  const withPort = await call(c, "ssh_connect", { ...args, host: "127.0.0.1:2222" });
  assert.equal(withPort.code, "INVALID_ARGUMENT", withPort.text);
  assert.match(withPort.text, /host must not include a port/);
  assert.match(withPort.text, /Hint: Call again with host "127\.0\.0\.1" and port 2222/);
  for (const host of [":::::", "1::2::3", "127.0.0.1:2222:1"]) {
    const r = await call(c, "ssh_connect", { ...args, host });
    assert.equal(r.code, "INVALID_ARGUMENT", `${host}: ${r.text}`);
    assert.match(r.text, /not a valid IPv6 address/);
  }
  const bracketed = await call(c, "ssh_connect", { ...args, host: "[::1]:2222" });
  assert.equal(bracketed.code, "INVALID_ARGUMENT", bracketed.text);
  assert.match(bracketed.text, /Hint: Call again with host "::1" and port 2222/);
});
