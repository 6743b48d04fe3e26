/**
 * End to end: ssh-agent keys matched to ~/.ssh/config IdentityFiles as ssh
 * matches them, through the real server under its shipped permissions (-P),
 * against a real sshd. An IdentityFile that is only a public key (the setup of
 * 1Password and Secretive agents) logs in with the agent's copy; the agent's
 * copy of an IdentityFile is offered before the agent's other keys, so a busy
 * agent no longer exhausts MaxAuthTries; under IdentitiesOnly the agent's
 * other keys are never offered (sshd's log is the witness).
 */

import assert from "node:assert/strict";
import { call, callOk, startServer, type TestServer, writeSshConfig } from "./fixtures/mcp.ts";
import { type Sshd, sshdAvailable, startAgent, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable();
if (skip) console.warn("SKIP agent identity tests: no sshd on this machine (apt-get install openssh-server)");

/** A key pair made for one test: its files and its fingerprint as sshd logs it. */
interface TestKey {
  path: string;
  fingerprint: string;
}

async function keygen(dir: string, name: string): Promise<TestKey> {
  const path = `${dir}/${name}`;
  const out = await new Deno.Command("ssh-keygen", {
    args: ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return { path, fingerprint: await fingerprintOf(`${path}.pub`) };
}

/** `SHA256:...` of a public key file, as sshd writes it in "Failed publickey" lines. */
async function fingerprintOf(pubPath: string): Promise<string> {
  const out = await new Deno.Command("ssh-keygen", { args: ["-l", "-f", pubPath], stdout: "piped" }).output();
  assert.ok(out.success);
  return new TextDecoder().decode(out.stdout).split(" ")[1];
}

/** `count` keys that are not in authorized_keys, in `dir` (the caller removes it). */
async function unrelatedKeys(dir: string, count: number): Promise<TestKey[]> {
  return await Promise.all(Array.from({ length: count }, (_, i) => keygen(dir, `unrelated${i}`)));
}

/** Writes the server's ~/.ssh/config with one host `target` for `sshd` and the given lines. */
async function writeConfig(server: TestServer, sshd: Sshd, lines: string[]): Promise<void> {
  const text = ["Host target", "  HostName 127.0.0.1", `  Port ${sshd.port}`, `  User ${sshd.user}`, ...lines, ""];
  await writeSshConfig(server, text.join("\n"));
}

/** The fingerprints among `keys` that sshd says it was offered (failed or accepted). */
function offered(sshd: Sshd, keys: TestKey[]): string[] {
  const log = sshd.logs();
  return keys.filter((k) => log.includes(k.fingerprint)).map((k) => k.fingerprint);
}

Deno.test(
  { name: "IdentityFile naming only a public key logs in with the agent's copy under IdentitiesOnly", ignore: skip },
  async () => {
    await using sshd = await startSshd();
    const dir = await Deno.makeTempDir({ prefix: "mcp-agent-ids-" });
    try {
      const others = await unrelatedKeys(dir, 2);
      // The private key is only in the agent, after two keys sshd does not know.
      await using agent = await startAgent([...others.map((k) => k.path), sshd.keys.ed25519.path]);
      const pub = `${dir}/login.pub`;
      await Deno.writeTextFile(pub, sshd.keys.ed25519.publicKey + "\n");
      const kh = await sshd.writeKnownHosts();
      await using server = await startServer({ args: ["--known-hosts", kh], env: { SSH_AUTH_SOCK: agent.socket } });
      await writeConfig(server, sshd, [`  IdentityFile ${pub}`, "  IdentitiesOnly yes"]);
      const r = await call(server.client, "ssh_connect", { host: "target" });
      assert.equal(r.isError, false, r.text);
      assert.equal(r.structured.auth_method, "agent");
      const who = await callOk(server.client, "ssh_execute", {
        session_id: r.structured.session_id,
        command: "id -un",
      });
      assert.equal(who.structured.stdout.trim(), sshd.user);
      assert.deepEqual(offered(sshd, others), [], sshd.logs());
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  { name: "the agent's copy of an IdentityFile goes first, so seven agent keys fit MaxAuthTries 3", ignore: skip },
  async () => {
    await using sshd = await startSshd({ maxAuthTries: 3 });
    const dir = await Deno.makeTempDir({ prefix: "mcp-agent-ids-" });
    try {
      const others = await unrelatedKeys(dir, 6);
      // The authorized key is the agent's last: offered in the agent's order, three wrong ones end the connection.
      await using agent = await startAgent([...others.map((k) => k.path), sshd.keys.ed25519.path]);
      const pub = `${dir}/login.pub`;
      await Deno.writeTextFile(pub, sshd.keys.ed25519.publicKey + "\n");
      const kh = await sshd.writeKnownHosts();
      await using server = await startServer({ args: ["--known-hosts", kh], env: { SSH_AUTH_SOCK: agent.socket } });
      await writeConfig(server, sshd, [`  IdentityFile ${pub}`]);
      const r = await call(server.client, "ssh_connect", { host: "target" });
      assert.equal(r.isError, false, r.text);
      assert.equal(r.structured.auth_method, "agent");
      assert.deepEqual(offered(sshd, others), [], sshd.logs());
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  { name: "IdentitiesOnly never offers the agent's other keys when the IdentityFile is absent", ignore: skip },
  async () => {
    await using sshd = await startSshd();
    const dir = await Deno.makeTempDir({ prefix: "mcp-agent-ids-" });
    try {
      const others = await unrelatedKeys(dir, 3);
      await using agent = await startAgent(others.map((k) => k.path));
      const kh = await sshd.writeKnownHosts();
      await using server = await startServer({ args: ["--known-hosts", kh], env: { SSH_AUTH_SOCK: agent.socket } });
      await writeConfig(server, sshd, [`  IdentityFile ${dir}/absent`, "  IdentitiesOnly yes"]);
      const r = await call(server.client, "ssh_connect", { host: "target" });
      assert.ok(r.code === "AUTH_METHOD_MISSING" || r.code === "AUTH_FAILED", r.text);
      assert.deepEqual(offered(sshd, others), [], sshd.logs());
      // The same agent without IdentitiesOnly does offer them: sshd's log would show an offer.
      await writeConfig(server, sshd, [`  IdentityFile ${dir}/absent`]);
      const all = await call(server.client, "ssh_connect", { host: "target" });
      assert.equal(all.code, "AUTH_FAILED", all.text);
      assert.deepEqual(offered(sshd, others), others.map((k) => k.fingerprint), sshd.logs());
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
