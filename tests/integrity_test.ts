/**
 * End to end: a keyless proxy between the client and a real sshd alters
 * encrypted packets from the server (see ./fixtures/tamper_proxy.ts). The
 * server under test runs with the shipped permission set (`deno run -P`).
 *
 * The MAC is changed by +5 on some connections and by -5 on others (as a
 * 128-bit little-endian number). The old decipher accepted, for every
 * packet, exactly one of the two, each half the time; a proxy without keys
 * cannot tell which, so over 8 connections of each sign all 16 are refused
 * by the old code with odds of 2^-16, and the first one it let in ran a
 * command. (Even then the old code failed here: it called the refusal
 * HANDSHAKE_FAILED, retryable.) OpenSSH's client through the same proxy is
 * the control.
 */

import assert from "node:assert/strict";
import { call, callOk, startServer, type TestServer } from "./fixtures/mcp.ts";
import { exists, tempDir } from "./fixtures/process.ts";
import { opensshArgs, type Sshd, sshdAvailable, startSshd } from "./fixtures/sshd.ts";
import { startTamperProxy, type TamperMode, type TamperProxy } from "./fixtures/tamper_proxy.ts";

const skip = !sshdAvailable();

// chacha20-poly1305 only: the cipher whose MAC check was loose, whatever our
// client prefers.
const SSHD_CONFIG = "Ciphers chacha20-poly1305@openssh.com\n";

/** A known_hosts file trusting the sshd's keys at the proxy's port. */
async function knownHostsFor(sshd: Sshd, port: number, path: string): Promise<string> {
  await Deno.writeTextFile(path, sshd.hostKeys.map((k) => `[127.0.0.1]:${port} ${k.publicKeyLine}\n`).join(""));
  await Deno.chmod(path, 0o600);
  return path;
}

/** A tool call's error code and retryable flag, as an agent sees them in `_meta`. */
async function callMeta(server: TestServer, name: string, args: Record<string, unknown>) {
  const r = await server.client.callTool({ name, arguments: args });
  const meta = r._meta as { code?: string; retryable?: boolean } | undefined;
  const text = (r.content as { text?: string }[]).map((c) => c.text ?? "").join("\n");
  return { isError: r.isError === true, code: meta?.code, retryable: meta?.retryable, text, r };
}

function connectArgs(sshd: Sshd, proxy: TamperProxy) {
  return { host: "127.0.0.1", port: proxy.port, username: sshd.user, private_key_path: sshd.keys.ed25519.path };
}

Deno.test(
  { name: "a packet altered on the path ends the connection with INTEGRITY_FAILED and nothing runs", ignore: skip },
  async (t) => {
    await using sshd = await startSshd({ extraConfig: SSHD_CONFIG });
    await using proxy = startTamperProxy({ host: sshd.host, port: sshd.port });
    await using dir = await tempDir("mcp-integrity-");
    // The login user (not root when the tests run as root) must be able to create the canary.
    await Deno.chmod(dir.path, 0o1777);
    const canary = `${dir.path}/pwned`;
    const knownHosts = await knownHostsFor(sshd, proxy.port, `${dir.path}/known_hosts`);
    await using server = await startServer({ args: ["--known-hosts", knownHosts] });

    await t.step("an unaltered connection through the proxy works (the proxy itself is transparent)", async () => {
      proxy.next("none");
      const session = (await callOk(server.client, "ssh_connect", connectArgs(sshd, proxy))).structured.session_id;
      const r = await callOk(server.client, "ssh_execute", { session_id: session, command: "echo through" });
      assert.equal(r.structured.stdout, "through\n");
      await callOk(server.client, "ssh_close_session", { session_id: session });
    });

    for (const [mode, rounds] of [["mac+5", 8], ["mac-5", 8], ["flip", 2]] as const) {
      await t.step(`${mode} on the first encrypted packet: ssh_connect fails, not retryable, no command`, async () => {
        for (let round = 0; round < rounds; round++) {
          proxy.next(mode);
          const r = await callMeta(server, "ssh_connect", connectArgs(sshd, proxy));
          const ran = `${canary}-${mode}-${round}`;
          if (!r.isError) {
            // The old decipher let this through: show that a command would run.
            const session = (r.r.structuredContent as { session_id: string }).session_id;
            await call(server.client, "ssh_execute", { session_id: session, command: `touch ${ran}` });
          }
          assert.ok(proxy.connections.at(-1)!.altered, "the proxy changed a byte");
          assert.ok(!exists(ran), `connection ${round + 1} of ${rounds} logged in and ran a command`);
          assert.equal(r.code, "INTEGRITY_FAILED", r.text);
          assert.equal(r.retryable, false);
          assert.match(r.text, /altered in transit/);
        }
      });
    }

    await t.step("a bit flipped on an established session: the call and later calls say INTEGRITY_FAILED", async () => {
      proxy.next("none");
      const session = (await callOk(server.client, "ssh_connect", connectArgs(sshd, proxy))).structured.session_id;
      await callOk(server.client, "ssh_execute", { session_id: session, command: "true" });
      proxy.armLate("flip");
      const first = await callMeta(server, "ssh_execute", { session_id: session, command: "echo hi" });
      assert.ok(proxy.connections.at(-1)!.altered, "the proxy changed a byte");
      assert.equal(first.code, "INTEGRITY_FAILED", first.text);
      assert.equal(first.retryable, false);
      const later = await callMeta(server, "ssh_execute", { session_id: session, command: `touch ${canary}` });
      assert.equal(later.code, "INTEGRITY_FAILED", later.text);
      assert.equal(later.retryable, false);
      assert.ok(!exists(canary), "no command ran");
      await callOk(server.client, "ssh_close_session", { session_id: session });
    });

    await t.step("control: OpenSSH's client through the same proxy fails the same way", async () => {
      for (const mode of ["mac+5", "mac-5", "flip"] as TamperMode[]) {
        proxy.next(mode);
        const args = opensshArgs({ host: "127.0.0.1", port: proxy.port, user: sshd.user }, {
          knownHosts,
          key: sshd.keys.ed25519.path,
          extra: ["-c", "chacha20-poly1305@openssh.com"],
        });
        const out = await new Deno.Command("ssh", {
          // ssh reports the MAC failure at level INFO (ssh_dispatch_run_fatal), which LogLevel=ERROR hides.
          args: [...args.map((a) => a === "LogLevel=ERROR" ? "LogLevel=INFO" : a), `touch ${canary}`],
          stdin: "null",
          stdout: "null",
          stderr: "piped",
        }).output();
        const stderr = new TextDecoder().decode(out.stderr);
        assert.ok(proxy.connections.at(-1)!.altered, `${mode}: the proxy changed a byte`);
        assert.equal(out.code, 255, `${mode}: ${stderr}`);
        assert.match(stderr, /Corrupted MAC|message authentication code incorrect/i, `${mode}: ${stderr}`);
        assert.ok(!exists(canary), "no command ran");
      }
    });
  },
);
