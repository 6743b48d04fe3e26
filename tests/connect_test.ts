/**
 * End to end: authentication and host key verification through the MCP
 * client, against a real sshd.
 */

import assert from "node:assert/strict";
import { call, callOk, startServer } from "./fixtures/mcp.ts";
import { opensshArgs, type Sshd, sshdAvailable, startAgent, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable();
if (skip) console.warn("SKIP connect tests: no sshd on this machine (apt-get install openssh-server)");

function count(haystack: string, needle: string): number {
  return haystack.split(needle).length - 1;
}

function base(sshd: Sshd) {
  return { host: sshd.host, port: sshd.port, username: sshd.user };
}

Deno.test({ name: "ssh_connect authenticates with password, keys and agent", ignore: skip }, async (t) => {
  await using sshd = await startSshd();
  const kh = await sshd.writeKnownHosts();
  await using agent = await startAgent([sshd.keys.ed25519.path]);
  await using server = await startServer({ args: ["--known-hosts", kh], env: { SSH_AUTH_SOCK: agent.socket } });
  const c = server.client;

  async function whoami(sessionId: string): Promise<string> {
    const r = await callOk(c, "ssh_execute", { session_id: sessionId, command: "id -un" });
    return r.structured.stdout.trim();
  }

  await t.step({
    name: "password",
    ignore: sshd.passwordUser === null,
    fn: async () => {
      const r = await callOk(c, "ssh_connect", { ...base(sshd), password: sshd.passwordUser!.password });
      assert.equal(r.structured.auth_method, "password");
      assert.equal(r.structured.host_key_type, "ssh-ed25519");
      assert.equal(r.structured.host_key_fingerprint, sshd.hostKeys.find((k) => k.type === "ssh-ed25519")!.fingerprint);
      assert.match(r.structured.server_version, /OpenSSH/);
      assert.equal(r.structured.host_key_added, false);
      assert.equal(await whoami(r.structured.session_id), sshd.user);
    },
  });

  await t.step("ed25519 key", async () => {
    const r = await callOk(c, "ssh_connect", { ...base(sshd), private_key_path: sshd.keys.ed25519.path });
    assert.equal(r.structured.auth_method, "publickey");
    assert.equal(await whoami(r.structured.session_id), sshd.user);
  });

  await t.step("a key path under ~/ is read from the server's home directory", async () => {
    await Deno.mkdir(`${server.home}/.ssh`, { recursive: true });
    await Deno.copyFile(sshd.keys.ed25519.path, `${server.home}/.ssh/id_ed25519`);
    const r = await callOk(c, "ssh_connect", { ...base(sshd), private_key_path: "~/.ssh/id_ed25519" });
    assert.equal(await whoami(r.structured.session_id), sshd.user);
  });

  await t.step("rsa key", async () => {
    const r = await callOk(c, "ssh_connect", { ...base(sshd), private_key_path: sshd.keys.rsa.path });
    assert.equal(await whoami(r.structured.session_id), sshd.user);
  });

  await t.step("passphrase-protected key", async () => {
    const key = sshd.keys.passphrase;
    const r = await callOk(c, "ssh_connect", { ...base(sshd), private_key_path: key.path, passphrase: key.passphrase });
    assert.equal(await whoami(r.structured.session_id), sshd.user);
  });

  await t.step("ssh-agent from SSH_AUTH_SOCK", async () => {
    const r = await callOk(c, "ssh_connect", base(sshd));
    assert.equal(r.structured.auth_method, "agent");
    assert.equal(await whoami(r.structured.session_id), sshd.user);
  });

  await t.step("ssh_list_sessions shows every session and ssh_close_session ends one", async () => {
    const list = await callOk(c, "ssh_list_sessions");
    const sessions = list.structured.sessions as { session_id: string; connected: boolean }[];
    assert.equal(sessions.length, sshd.passwordUser ? 6 : 5);
    assert.ok(sessions.every((s) => s.connected));
    const id = sessions[0].session_id;
    await callOk(c, "ssh_close_session", { session_id: id });
    const again = await call(c, "ssh_execute", { session_id: id, command: "true" });
    assert.equal(again.code, "SESSION_NOT_FOUND");
    const closeAgain = await call(c, "ssh_close_session", { session_id: id });
    assert.equal(closeAgain.code, "SESSION_NOT_FOUND");
  });

  await t.step({
    name: "wrong password is AUTH_FAILED naming the password",
    ignore: sshd.passwordUser === null,
    fn: async () => {
      const r = await call(c, "ssh_connect", { ...base(sshd), password: "not-the-password" });
      assert.equal(r.code, "AUTH_FAILED", r.text);
      assert.match(r.text, /rejected the password/);
      assert.ok(!r.text.includes("not-the-password"));
    },
  });

  await t.step("key not in authorized_keys is AUTH_FAILED naming the key", async () => {
    const r = await call(c, "ssh_connect", { ...base(sshd), private_key_path: sshd.keys.unauthorized.path });
    assert.equal(r.code, "AUTH_FAILED", r.text);
    assert.match(r.text, /rejected the key/);
  });

  await t.step("wrong passphrase is KEY_PASSPHRASE_WRONG, missing one KEY_PASSPHRASE_REQUIRED", async () => {
    const key = sshd.keys.passphrase;
    const wrong = await call(c, "ssh_connect", { ...base(sshd), private_key_path: key.path, passphrase: "nope" });
    assert.equal(wrong.code, "KEY_PASSPHRASE_WRONG", wrong.text);
    const missing = await call(c, "ssh_connect", { ...base(sshd), private_key_path: key.path });
    assert.equal(missing.code, "KEY_PASSPHRASE_REQUIRED", missing.text);
    assert.ok(!wrong.text.includes(key.passphrase!) && !missing.text.includes(key.passphrase!));
  });

  await t.step("a missing key file is KEY_UNREADABLE", async () => {
    const r = await call(c, "ssh_connect", { ...base(sshd), private_key_path: `${sshd.dir}/no-such-key` });
    assert.equal(r.code, "KEY_UNREADABLE", r.text);
  });

  await t.step("a closed port is CONNECT_REFUSED", async () => {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    l.close();
    const r = await call(c, "ssh_connect", { ...base(sshd), port, private_key_path: sshd.keys.ed25519.path });
    assert.equal(r.code, "CONNECT_REFUSED", r.text);
  });

  await t.step("a server that accepts but never sends a banner is CONNECT_TIMEOUT within connect_timeout", async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    const held: Deno.Conn[] = [];
    const accepting = (async () => {
      for await (const conn of listener) held.push(conn); // keep it open, say nothing
    })();
    try {
      const r = await call(c, "ssh_connect", {
        ...base(sshd),
        port,
        private_key_path: sshd.keys.ed25519.path,
        connect_timeout: 1,
      });
      assert.equal(r.code, "CONNECT_TIMEOUT", r.text);
      assert.match(r.text, /within 1 s/);
    } finally {
      listener.close();
      await accepting.catch(() => {});
      for (const conn of held) conn.close();
    }
  });

  await t.step("no secret reached the server's stderr", () => {
    const log = server.stderr();
    if (sshd.passwordUser) assert.ok(!log.includes(sshd.passwordUser.password));
    assert.ok(!log.includes(sshd.keys.passphrase.passphrase!));
  });

  await t.step("sessions used the fast chacha20-poly1305 decipher (no fallback to ssh2's was logged)", () => {
    assert.doesNotMatch(server.stderr(), /slower decipher/);
  });
});

Deno.test({ name: "host keys are verified before authentication", ignore: skip }, async (t) => {
  await using sshd = await startSshd();
  const dir = await Deno.makeTempDir({ prefix: "mcp-kh-" });
  try {
    const secret = sshd.passwordUser
      ? { password: sshd.passwordUser.password }
      : { private_key_path: sshd.keys.ed25519.path };
    const authLines = () => count(sshd.logs(), "Failed ") + count(sshd.logs(), "Accepted ");

    await t.step("strict: an unknown host is refused before any credential is sent", async () => {
      const empty = `${dir}/empty_known_hosts`;
      await Deno.writeTextFile(empty, "");
      await using server = await startServer({ args: ["--known-hosts", empty] });
      const before = authLines();
      const r = await call(server.client, "ssh_connect", { ...base(sshd), ...secret });
      assert.equal(r.code, "HOST_KEY_UNKNOWN", r.text);
      const fp = sshd.hostKeys.find((k) => k.type === "ssh-ed25519")!.fingerprint;
      assert.ok(r.text.includes(fp), r.text);
      assert.match(r.text, /appending this line to .*empty_known_hosts: \[127\.0\.0\.1\]:\d+ ssh-ed25519 AAAA/);
      assert.match(r.text, /accept-new/);
      assert.equal(authLines(), before, "sshd saw an authentication attempt");
      assert.equal(await Deno.readTextFile(empty), "");
      // Control: a connection that does authenticate is visible in the same log.
      const kh = await sshd.writeKnownHosts(`${dir}/good`);
      await using good = await startServer({ args: ["--known-hosts", kh] });
      await callOk(good.client, "ssh_connect", { ...base(sshd), private_key_path: sshd.keys.ed25519.path });
      assert.ok(authLines() > before, "auth attempts are not logged; the check above proves nothing");
    });

    await t.step("accept-new writes one line that OpenSSH accepts, then connects silently", async () => {
      const file = `${dir}/new/known_hosts`;
      await using server = await startServer({ args: ["--known-hosts", file, "--host-key-policy", "accept-new"] });
      const first = await callOk(server.client, "ssh_connect", { ...base(sshd), ...secret });
      assert.equal(first.structured.host_key_added, true);
      const text = await Deno.readTextFile(file);
      const lines = text.split("\n").filter((l) => l !== "");
      assert.equal(lines.length, 1);
      assert.ok(lines[0].startsWith(`[127.0.0.1]:${sshd.port} ssh-ed25519 `), lines[0]);
      assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
      const second = await callOk(server.client, "ssh_connect", { ...base(sshd), ...secret });
      assert.equal(second.structured.host_key_added, false);
      assert.equal(await Deno.readTextFile(file), text);
      const ssh = await new Deno.Command("ssh", {
        args: [...opensshArgs(sshd, { knownHosts: file, key: sshd.keys.ed25519.path }), "echo accepted"],
        stdin: "null",
      }).output();
      assert.equal(new TextDecoder().decode(ssh.stdout).trim(), "accepted", new TextDecoder().decode(ssh.stderr));
    });

    await t.step("a changed key is refused in both policies and known_hosts is untouched", async () => {
      const file = `${dir}/changed_known_hosts`;
      // The host "has" a key, but not the one it presents.
      const wrong = sshd.keys.unauthorized.publicKey.split(" ").slice(0, 2).join(" ");
      const content = `[127.0.0.1]:${sshd.port} ${wrong}\n`;
      await Deno.writeTextFile(file, content);
      for (const policy of ["strict", "accept-new"]) {
        await using server = await startServer({ args: ["--known-hosts", file, "--host-key-policy", policy] });
        const before = authLines();
        const r = await call(server.client, "ssh_connect", { ...base(sshd), ...secret });
        assert.equal(r.code, "HOST_KEY_MISMATCH", r.text);
        const presented = sshd.hostKeys.find((k) => k.type === "ssh-ed25519")!.fingerprint;
        assert.ok(r.text.includes(presented), r.text);
        assert.match(r.text, /expected ssh-ed25519 SHA256:/);
        assert.match(r.text, /line 1/);
        assert.equal(authLines(), before);
        assert.equal(await Deno.readTextFile(file), content);
      }
    });

    await t.step("no tool argument can turn host key checking off", async () => {
      const empty = `${dir}/empty2`;
      await Deno.writeTextFile(empty, "");
      await using server = await startServer({ args: ["--known-hosts", empty] });
      const tools = await server.client.listTools();
      const connect = tools.tools.find((x) => x.name === "ssh_connect")!;
      const props = Object.keys(connect.inputSchema.properties ?? {});
      // host_key_fingerprint only adds a check (a different key is refused): tests/elicitation_test.ts.
      const loosening = props.filter((p) => p !== "host_key_fingerprint");
      assert.ok(!loosening.some((p) => /host_?key|strict|known/i.test(p)), props.join());
      const r = await call(server.client, "ssh_connect", {
        ...base(sshd),
        ...secret,
        StrictHostKeyChecking: "no",
        host_key_policy: "accept-new",
      });
      assert.equal(r.code, "HOST_KEY_UNKNOWN", r.text);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({ name: "an agent with more keys than MaxAuthTries fails fast with AUTH_FAILED", ignore: skip }, async () => {
  await using sshd = await startSshd({ maxAuthTries: 2 });
  const dir = await Deno.makeTempDir({ prefix: "mcp-agentkeys-" });
  try {
    const keys: string[] = [];
    for (let i = 0; i < 4; i++) {
      const path = `${dir}/k${i}`;
      const out = await new Deno.Command("ssh-keygen", { args: ["-q", "-t", "ed25519", "-N", "", "-f", path] })
        .output();
      assert.equal(out.code, 0);
      keys.push(path);
    }
    await using agent = await startAgent(keys);
    const kh = await sshd.writeKnownHosts();
    await using server = await startServer({ args: ["--known-hosts", kh], env: { SSH_AUTH_SOCK: agent.socket } });
    const r = await call(server.client, "ssh_connect", base(sshd));
    assert.equal(r.code, "AUTH_FAILED", r.text);
    assert.match(r.text, /closed the connection during authentication/);
    assert.match(r.text, /MaxAuthTries/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test(
  { name: "accept-new: two racing first connects cannot both record a key for one host", ignore: skip },
  async () => {
    // One address, two servers with different host keys: the first TCP
    // connection goes to sshd A, the second to sshd B (a man in the middle).
    await using a = await startSshd();
    await using b = await startSshd({ freshHostKeys: true });
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    const open: Deno.Conn[] = [];
    let n = 0;
    const proxying = (async () => {
      for await (const inbound of listener) {
        const target = n++ % 2 === 0 ? a : b;
        const outbound = await Deno.connect({ hostname: target.host, port: target.port });
        open.push(inbound, outbound);
        inbound.readable.pipeTo(outbound.writable).catch(() => {});
        outbound.readable.pipeTo(inbound.writable).catch(() => {});
      }
    })();
    const dir = await Deno.makeTempDir({ prefix: "mcp-race-" });
    try {
      const file = `${dir}/known_hosts`;
      await using server = await startServer({ args: ["--known-hosts", file, "--host-key-policy", "accept-new"] });
      // The password user and the run's client keys are shared by both servers; only the host keys differ.
      const secret = a.passwordUser ? { password: a.passwordUser.password } : { private_key_path: a.keys.ed25519.path };
      const args = { host: "127.0.0.1", port, username: a.user, ...secret };
      const results = await Promise.all([
        call(server.client, "ssh_connect", args),
        call(server.client, "ssh_connect", args),
      ]);
      const codes = results.map((r) => r.isError ? r.code : "OK").sort();
      const text = results.map((r) => r.text).join("\n");
      // Whichever server won recorded its key and logged in; the other is refused as changed.
      assert.deepEqual(codes, ["HOST_KEY_MISMATCH", "OK"], text);
      const lines = (await Deno.readTextFile(file)).split("\n").filter((l) => l !== "");
      assert.equal(lines.length, 1, lines.join("\n"));
    } finally {
      listener.close();
      await proxying.catch(() => {});
      for (const c of open) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      await Deno.remove(dir, { recursive: true });
    }
  },
);
