/**
 * End to end through the MCP server under its shipped permissions: a host
 * defined in ~/.ssh/config behind one and two ProxyJump bastions, reached by
 * its alias. The bastion listens on a network namespace's veth address; the
 * second bastion and the inner host listen on the namespace's own 127.0.0.1,
 * which only the bastions' sshd processes can reach.
 * Needs root and `ip`; skipped with a message otherwise.
 */

import assert from "node:assert/strict";
import { call, callOk, startServer, writeSshConfig } from "./fixtures/mcp.ts";
import { createNetns, httpGet, type Netns, netnsAvailable, startHttpService } from "./fixtures/netns.ts";
import { randomHex, run, waitFor } from "./fixtures/process.ts";
import { readPid, type Sshd, sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable() || !(await netnsAvailable());
if (skip) console.warn("SKIP jump MCP tests: they need sshd, root and `ip` (network namespaces)");

/** Established TCP connections to `port`, seen from inside `ns` or from here. */
async function established(port: number, ns?: Netns): Promise<number> {
  const args = ["-tnH", "state", "established", `( sport = :${port} or dport = :${port} )`];
  const out = ns === undefined ? await run("ss", args) : await ns.run("ss", args);
  return out.stdout.split("\n").filter((line) => line.trim() !== "").length;
}

/** Lines of an sshd log that show an authentication attempt. */
function authLines(sshd: Sshd): string[] {
  return sshd.logs().split("\n").filter((l) => /(Accepted|Failed|Postponed) (publickey|password)|userauth/.test(l));
}

function hostBlock(alias: string, sshd: Sshd, extra: string[] = []): string {
  return [
    `Host ${alias}`,
    `  HostName ${sshd.host}`,
    `  Port ${sshd.port}`,
    `  User ${sshd.user}`,
    `  IdentityFile ${sshd.keys.ed25519.path}`,
    ...extra.map((l) => `  ${l}`),
    "",
  ].join("\n");
}

Deno.test(
  { name: "ssh_connect by alias through ProxyJump: every tool works, close leaves nothing", ignore: skip },
  async (t) => {
    await using ns = await createNetns();
    await using bastion = await startSshd({ netns: { name: ns.name, address: ns.nsAddr } });
    await using bastion2 = await startSshd({ netns: { name: ns.name, address: "127.0.0.1" } });
    // Fresh keys: the bastion's key listed for the inner host (and back) must be a mismatch.
    await using inner = await startSshd({ netns: { name: ns.name, address: "127.0.0.1" }, freshHostKeys: true });
    // One known_hosts file that trusts all three, as a user's would.
    const kh = `${inner.dir}/known_hosts-all`;
    await Deno.writeTextFile(
      kh,
      (await Promise.all(
        [bastion, bastion2, inner].map(async (s) => await Deno.readTextFile(await s.writeKnownHosts())),
      ))
        .join(""),
    );
    await using server = await startServer({ args: ["--known-hosts", kh] });
    const c = server.client;
    await writeSshConfig(
      server,
      hostBlock("bastion", bastion) +
        hostBlock("bastion2", bastion2) +
        hostBlock("inner", inner, ["ProxyJump bastion"]) +
        hostBlock("deep", inner, ["ProxyJump bastion,bastion2"]),
    );

    await t.step("the inner host cannot be reached directly", async () => {
      const r = await call(c, "ssh_connect", {
        host: "127.0.0.1",
        port: inner.port,
        username: inner.user,
        private_key_path: inner.keys.ed25519.path,
        connect_timeout: 5,
      });
      assert.ok(r.isError, r.text);
    });

    const connected = await callOk(c, "ssh_connect", { host: "inner" });
    const sid = connected.structured.session_id as string;

    await t.step("the result names the jump host and the config lines", () => {
      assert.deepEqual(connected.structured.jumps.map((j: { host: string; port: number }) => `${j.host}:${j.port}`), [
        `${bastion.host}:${bastion.port}`,
      ]);
      assert.equal(connected.structured.jumps[0].host_key_fingerprint, bastion.hostKeys[0].fingerprint);
      assert.equal(connected.structured.host_key_fingerprint, inner.hostKeys[0].fingerprint);
      assert.ok((connected.structured.ssh_config as string[]).some((l) => l.endsWith("ProxyJump bastion")));
      assert.match(connected.text, new RegExp(`via ${bastion.user}@${bastion.host.replaceAll(".", "\\.")}:`));
    });

    await t.step("ssh_execute runs on the inner host, from the bastion", async () => {
      const r = await callOk(c, "ssh_execute", { session_id: sid, command: "echo $SSH_CONNECTION" });
      assert.match(r.structured.stdout, new RegExp(`^127\\.0\\.0\\.1 \\d+ 127\\.0\\.0\\.1 ${inner.port}\\n$`));
    });

    await t.step("files: write, read back, remove", async () => {
      const path = `/tmp/mcp-jump-mcp-${randomHex(6)}`;
      try {
        await callOk(c, "ssh_write_remote_file", { session_id: sid, remote_path: path, content: "through the jump\n" });
        const r = await callOk(c, "ssh_read_remote_file", { session_id: sid, remote_path: path });
        assert.equal(r.structured.content, "through the jump\n");
      } finally {
        await Deno.remove(path).catch(() => {});
      }
    });

    await t.step("a shell answers", async () => {
      await callOk(c, "ssh_shell_open", { session_id: sid });
      const r = await callOk(c, "ssh_shell_send", {
        session_id: sid,
        data: "echo jump-$((40+2))",
        wait_for: "jump-42",
        timeout: 20,
      });
      assert.equal(r.structured.reason, "matched", r.text);
    });

    await t.step("a local forward reaches a service on the inner host's loopback", async () => {
      await using service = await startHttpService({ netns: ns, host: "127.0.0.1" });
      const f = await callOk(c, "ssh_forward_port", {
        session_id: sid,
        remote_host: "127.0.0.1",
        remote_port: service.port,
      });
      assert.equal((await httpGet("127.0.0.1", f.structured.listen.port)).text, service.body);
    });

    await t.step("closing the session leaves no connection on any hop", async () => {
      assert.ok(await established(bastion.port, ns) > 0, "the check sees the bastion's connection");
      assert.ok(await established(inner.port, ns) > 0, "the check sees the inner connection");
      await callOk(c, "ssh_close_session", { session_id: sid });
      await waitFor(async () => await established(bastion.port) === 0, "no connection to the bastion here");
      await waitFor(async () => await established(bastion.port, ns) === 0, "no connection at the bastion");
      await waitFor(async () => await established(inner.port, ns) === 0, "no connection at the inner host");
    });

    await t.step("two hops: bastion, then bastion2, then the inner host", async () => {
      const r = await callOk(c, "ssh_connect", { host: "deep" });
      assert.deepEqual(r.structured.jumps.map((j: { port: number }) => j.port), [bastion.port, bastion2.port]);
      const id = await callOk(c, "ssh_execute", {
        session_id: r.structured.session_id,
        command: "echo $SSH_CONNECTION",
      });
      assert.match(id.structured.stdout, new RegExp(` 127\\.0\\.0\\.1 ${inner.port}\\n$`));
      const deep = r.structured.session_id;
      const path = `/tmp/mcp-jump-deep-${randomHex(6)}`;
      try {
        await callOk(c, "ssh_write_remote_file", { session_id: deep, remote_path: path, content: "two hops\n" });
        const read = await callOk(c, "ssh_read_remote_file", { session_id: deep, remote_path: path });
        assert.equal(read.structured.content, "two hops\n");
      } finally {
        await Deno.remove(path).catch(() => {});
      }
      await callOk(c, "ssh_shell_open", { session_id: deep });
      const shell = await callOk(c, "ssh_shell_send", {
        session_id: deep,
        data: "echo deep-$((6*7))",
        wait_for: "deep-42",
      });
      assert.equal(shell.structured.reason, "matched", shell.text);
      await using service = await startHttpService({ netns: ns, host: "127.0.0.1" });
      const f = await callOk(c, "ssh_forward_port", {
        session_id: deep,
        remote_host: "127.0.0.1",
        remote_port: service.port,
      });
      assert.equal((await httpGet("127.0.0.1", f.structured.listen.port)).text, service.body);
      await callOk(c, "ssh_close_session", { session_id: deep });
      for (const port of [bastion.port, bastion2.port, inner.port]) {
        await waitFor(async () => await established(port, ns) === 0, `no connection at port ${port}`);
      }
    });

    await t.step("cancelling ssh_connect mid-chain (bastion up, inner handshake hanging) leaves nothing", async () => {
      await writeSshConfig(server, hostBlock("bastion", bastion) + hostBlock("inner", inner, ["ProxyJump bastion"]));
      // The inner sshd stopped: its kernel still accepts the tunnelled TCP connection, no banner ever comes.
      const pid = readPid(`${inner.dir}/sshd.pid`)!;
      Deno.kill(pid, "SIGSTOP");
      try {
        const cancel = new AbortController();
        const connecting = c.callTool(
          { name: "ssh_connect", arguments: { host: "inner", connect_timeout: 300 } },
          undefined,
          { signal: cancel.signal },
        ).then(() => "connected", () => "cancelled");
        await waitFor(async () => await established(inner.port, ns) > 0, "the tunnelled connection to the inner host");
        assert.ok(await established(bastion.port) > 0, "the bastion connection is up");
        cancel.abort();
        assert.equal(await connecting, "cancelled");
        await waitFor(async () => await established(bastion.port) === 0, "no connection to the bastion here");
        await waitFor(async () => await established(bastion.port, ns) === 0, "no connection at the bastion");
        await waitFor(async () => await established(inner.port, ns) === 0, "no tunnelled connection at the inner host");
      } finally {
        Deno.kill(pid, "SIGCONT");
      }
      const list = await callOk(c, "ssh_list_sessions");
      assert.deepEqual(list.structured.sessions, []);
    });

    await t.step("a wrong inner host key is refused before any credential reaches the inner host", async () => {
      await waitFor(async () => (await inner.childPids()).length === 0, "the inner sshd to be idle");
      const before = authLines(inner).length;
      assert.ok(authLines(inner).some((l) => l.includes("Accepted publickey")), "the log shows authentications");
      // A server whose known_hosts trusts the bastion, and lists the bastion's key for the inner host.
      const wrong = `${inner.dir}/known_hosts-wrong`;
      await Deno.writeTextFile(
        wrong,
        await Deno.readTextFile(await bastion.writeKnownHosts(`${bastion.dir}/kh-${randomHex(4)}`)) +
          `[127.0.0.1]:${inner.port} ${bastion.hostKeys[0].publicKeyLine}\n`,
      );
      await using other = await startServer({ args: ["--known-hosts", wrong] });
      await writeSshConfig(other, hostBlock("bastion", bastion) + hostBlock("inner", inner, ["ProxyJump bastion"]));
      const r = await call(other.client, "ssh_connect", { host: "inner" });
      assert.equal(r.code, "HOST_KEY_MISMATCH", r.text);
      assert.match(r.text, /via jump host/);
      await waitFor(async () => (await inner.childPids()).length === 0, "the inner sshd to be idle");
      assert.equal(authLines(inner).length, before, inner.logs());
    });

    await t.step(
      "an unknown inner host key under strict: HOST_KEY_UNKNOWN, nothing sent to the inner host",
      async () => {
        await waitFor(async () => (await inner.childPids()).length === 0, "the inner sshd to be idle");
        const before = authLines(inner).length;
        // known_hosts trusts the bastion only.
        const bastionOnly = await bastion.writeKnownHosts(`${bastion.dir}/kh-${randomHex(4)}`);
        await using other = await startServer({ args: ["--known-hosts", bastionOnly] });
        await writeSshConfig(other, hostBlock("bastion", bastion) + hostBlock("inner", inner, ["ProxyJump bastion"]));
        const r = await call(other.client, "ssh_connect", { host: "inner" });
        assert.equal(r.code, "HOST_KEY_UNKNOWN", r.text);
        assert.match(r.text, /via jump host/);
        await waitFor(async () => (await inner.childPids()).length === 0, "the inner sshd to be idle");
        assert.equal(authLines(inner).length, before, inner.logs());
      },
    );

    await t.step("a wrong bastion key: refused at hop 1, nothing sent to the bastion or beyond", async () => {
      await waitFor(async () => (await bastion.childPids()).length === 0, "the bastion to be idle");
      const [bastionBefore, innerBefore] = [authLines(bastion).length, authLines(inner).length];
      const wrong = `${bastion.dir}/kh-wrong-${randomHex(4)}`;
      await Deno.writeTextFile(
        wrong,
        `[${bastion.host}]:${bastion.port} ${inner.hostKeys[0].publicKeyLine}\n` +
          await Deno.readTextFile(await inner.writeKnownHosts(`${inner.dir}/kh-${randomHex(4)}`)),
      );
      await using other = await startServer({ args: ["--known-hosts", wrong] });
      await writeSshConfig(other, hostBlock("bastion", bastion) + hostBlock("inner", inner, ["ProxyJump bastion"]));
      const r = await call(other.client, "ssh_connect", { host: "inner" });
      assert.equal(r.code, "HOST_KEY_MISMATCH", r.text);
      assert.match(r.text, /Jump host .*\(hop 1 of 1\)/);
      await waitFor(async () => (await bastion.childPids()).length === 0, "the bastion to be idle");
      assert.equal(authLines(bastion).length, bastionBefore, bastion.logs());
      assert.equal(authLines(inner).length, innerBefore, inner.logs());
    });

    await t.step("the target's password never reaches the bastion", async () => {
      await waitFor(async () => (await bastion.childPids()).length === 0, "the bastion to be idle");
      const bastionBefore = authLines(bastion).length;
      // The bastion has no key in the config and no default key exists: only a leaked password could be tried.
      await writeSshConfig(
        server,
        `Host bastion\n  HostName ${bastion.host}\n  Port ${bastion.port}\n  User ${bastion.user}\n` +
          hostBlock("inner", inner, ["ProxyJump bastion"]),
      );
      const secret = bastion.passwordUser?.password ?? `pw-${randomHex(8)}`;
      const r = await call(c, "ssh_connect", { host: "inner", password: secret });
      assert.equal(r.code, "AUTH_METHOD_MISSING", r.text);
      assert.match(r.text, /Jump host .*\(hop 1 of 1\)/);
      await waitFor(async () => (await bastion.childPids()).length === 0, "the bastion to be idle");
      const lines = authLines(bastion).slice(bastionBefore);
      assert.ok(!lines.some((l) => /password/i.test(l)), lines.join("\n"));
      assert.ok(!server.stderr().includes(secret), "the password was logged");
    });
  },
);
