/**
 * Jump hosts (ProxyJump) on the SSH layer, end to end against real sshd's in
 * a network namespace: the jump host listens on the namespace's veth address
 * (reachable from here), the inner hosts on the namespace's own 127.0.0.1,
 * which only processes inside it (the jump host's sshd) can reach.
 * Needs root and `ip`; skipped with a message otherwise.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { SshMcpError } from "../lib/errors.ts";
import { silentLogger } from "../lib/log.ts";
import { type ConnectOptions, SshConnection } from "../lib/ssh/connection.ts";
import { execCommand } from "../lib/ssh/exec.ts";
import { Forward } from "../lib/ssh/forward.ts";
import { Shell } from "../lib/ssh/shell.ts";
import { createNetns, httpGet, type Netns, netnsAvailable, startHttpService } from "./fixtures/netns.ts";
import { randomHex, run, waitFor } from "./fixtures/process.ts";
import { freePort, type Sshd, sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable() || !(await netnsAvailable());
if (skip) console.warn("SKIP jump tests: they need sshd, root and `ip` (network namespaces)");

/** A namespace with a jump host on its veth address and an inner host on its loopback. */
interface World extends AsyncDisposable {
  ns: Netns;
  jump: Sshd;
  inner: Sshd;
}

async function world(jumpOptions: { allowTcpForwarding?: boolean } = {}): Promise<World> {
  const ns = await createNetns();
  const started: Sshd[] = [];
  try {
    started.push(await startSshd({ ...jumpOptions, netns: { name: ns.name, address: ns.nsAddr } }));
    // Fresh keys: tests list the jump host's key for the inner host and expect a mismatch.
    started.push(await startSshd({ netns: { name: ns.name, address: "127.0.0.1" }, freshHostKeys: true }));
    return {
      ns,
      jump: started[0],
      inner: started[1],
      async [Symbol.asyncDispose]() {
        for (const sshd of started) await sshd.stop();
        await ns.remove();
      },
    };
  } catch (error) {
    for (const sshd of started) await sshd.stop();
    await ns.remove();
    throw error;
  }
}

/** Connect options for `sshd` as its user with its ed25519 key, its host keys trusted strictly. */
async function hop(sshd: Sshd, extra: Partial<ConnectOptions> = {}): Promise<ConnectOptions> {
  const kh = await sshd.writeKnownHosts(`${sshd.dir}/kh-${randomHex(4)}`);
  return {
    host: sshd.host,
    port: sshd.port,
    username: sshd.user,
    privateKeyPath: sshd.keys.ed25519.path,
    knownHosts: { files: [kh], writeFile: kh, policy: "strict" },
    connectTimeoutMs: 20_000,
    logger: silentLogger,
    ...extra,
  };
}

/** Established TCP connections to `port` seen from inside `ns` (the sshd's side), or from here. */
async function established(port: number, ns?: Netns): Promise<number> {
  const args = ["-tnH", "state", "established", `( sport = :${port} or dport = :${port} )`];
  const out = ns === undefined ? await run("ss", args) : await ns.run("ss", args);
  return out.stdout.split("\n").filter((line) => line.trim() !== "").length;
}

/** Waits until the sshd has no per-connection process left: its log of the last connection is complete. */
async function idle(sshd: Sshd): Promise<void> {
  await waitFor(async () => (await sshd.childPids()).length === 0, `sshd ${sshd.port} to have no connection`);
}

/** Lines of the sshd log that show an authentication attempt (VERBOSE logs each). */
function authLines(sshd: Sshd): string[] {
  return sshd.logs().split("\n").filter((l) => /(Accepted|Failed|Postponed) (publickey|password)|userauth/.test(l));
}

async function rejectsWith(promise: Promise<unknown>, code: string, message: RegExp): Promise<SshMcpError> {
  let caught: unknown;
  await promise.then(() => assert.fail(`expected ${code}`), (error) => (caught = error));
  assert.ok(caught instanceof SshMcpError, `not coded: ${caught}`);
  assert.equal(caught.code, code, caught.message);
  assert.match(caught.message, message);
  return caught;
}

Deno.test(
  { name: "exec, SFTP, a shell and a forward reach a host only the jump host can reach", ignore: skip },
  async (t) => {
    await using w = await world();
    const { ns, jump, inner } = w;

    await t.step("the inner host is not reachable from here", async () => {
      await assert.rejects(SshConnection.open(await hop(inner, { connectTimeoutMs: 5000 })));
    });

    const conn = await SshConnection.open({ ...await hop(inner), jump: await hop(jump) });
    try {
      await t.step("info names the target and the jump host with its host key", () => {
        assert.equal(conn.info.host, "127.0.0.1");
        assert.equal(conn.info.port, inner.port);
        assert.equal(conn.info.hostKeyFingerprint, inner.hostKeys[0].fingerprint);
        assert.deepEqual(conn.info.jumps, [{
          host: jump.host,
          port: jump.port,
          username: jump.user,
          hostKeyType: "ssh-ed25519",
          hostKeyFingerprint: jump.hostKeys[0].fingerprint,
          hostKeyAdded: false,
        }]);
      });

      await t.step("exec runs on the inner host, connected from the jump host", async () => {
        const r = await execCommand(conn, { command: "echo $SSH_CONNECTION", timeoutMs: 20_000, maxOutputBytes: 4096 });
        assert.equal(r.exitCode, 0);
        // Client 127.0.0.1 (the jump host's sshd), server 127.0.0.1 port inner.port.
        assert.match(r.stdout, new RegExp(`^127\\.0\\.0\\.1 \\d+ 127\\.0\\.0\\.1 ${inner.port}\\n$`));
      });

      await t.step("SFTP writes and reads back a file", async () => {
        const sftp = await conn.sftp();
        const path = `/tmp/mcp-jump-${randomHex(6)}`;
        const data = Buffer.concat(Array.from({ length: 4 }, () => crypto.getRandomValues(new Uint8Array(50_000))));
        try {
          await new Promise<void>((ok, fail) => sftp.writeFile(path, data, (e) => e ? fail(e) : ok()));
          const back = await new Promise<Buffer>((ok, fail) => sftp.readFile(path, (e, b) => e ? fail(e) : ok(b)));
          assert.ok(data.equals(back));
        } finally {
          await Deno.remove(path).catch(() => {});
        }
      });

      await t.step("a shell answers", async () => {
        const shell = await Shell.open(conn, "default");
        try {
          shell.send("echo jump-$((40+2))\r");
          const waited = await shell.wait({ pattern: "jump-42", timeoutMs: 20_000, maxBytes: 1000 });
          assert.equal(waited.reason, "matched");
        } finally {
          shell.close();
        }
      });

      await t.step("a local forward reaches a service on the inner host's loopback", async () => {
        await using service = await startHttpService({ netns: ns, host: "127.0.0.1" });
        const forward = await Forward.local(conn, {
          id: "f1",
          bind: { host: "127.0.0.1", port: 0 },
          target: { host: "127.0.0.1", port: service.port },
          logger: silentLogger,
        });
        try {
          assert.equal((await httpGet("127.0.0.1", forward.listen.port)).text, service.body);
        } finally {
          await forward.close();
        }
      });

      await t.step("close leaves no connection on either hop", async () => {
        // Seen before the close: the check would see a leftover.
        assert.ok(await established(jump.port), "no connection to the jump host from here");
        assert.ok(await established(jump.port, ns) > 0, "the jump host's sshd has no connection");
        assert.ok(await established(inner.port, ns) > 0, "the inner sshd has no connection");
        await conn.close();
        await waitFor(async () => await established(jump.port) === 0, "no connection to the jump host here");
        await waitFor(async () => await established(jump.port, ns) === 0, "no connection at the jump host");
        await waitFor(async () => await established(inner.port, ns) === 0, "no connection at the inner host");
        await idle(jump);
        await idle(inner);
      });
    } finally {
      await conn.close();
    }
  },
);

Deno.test({ name: "the inner host key is checked before any credential is sent to it", ignore: skip }, async (t) => {
  await using w = await world();
  const { jump, inner } = w;
  const via = await hop(jump);

  await t.step("a good connect is logged with its authentication (the check below can see one)", async () => {
    const conn = await SshConnection.open({ ...await hop(inner), jump: via });
    await conn.close();
    await idle(inner);
    assert.ok(authLines(inner).some((l) => l.includes("Accepted publickey")), inner.logs());
  });
  const before = authLines(inner).length;

  await t.step("a different key in known_hosts: HOST_KEY_MISMATCH, naming the jump host", async () => {
    const target = await hop(inner);
    // known_hosts lists the jump host's key for the inner host.
    const kh = `${inner.dir}/kh-wrong`;
    await Deno.writeTextFile(kh, `[127.0.0.1]:${inner.port} ${jump.hostKeys[0].publicKeyLine}\n`);
    target.knownHosts = { files: [kh], writeFile: kh, policy: "strict" };
    await rejectsWith(
      SshConnection.open({ ...target, jump: via }),
      "HOST_KEY_MISMATCH",
      new RegExp(`127\\.0\\.0\\.1:${inner.port} .*\\(via jump host ${jump.user}@${jump.host}:${jump.port}\\)$`),
    );
    await idle(inner);
    assert.equal(authLines(inner).length, before, inner.logs());
  });

  await t.step("an unknown key under strict: HOST_KEY_UNKNOWN", async () => {
    const target = await hop(inner);
    const kh = `${inner.dir}/kh-empty`;
    await Deno.writeTextFile(kh, "");
    target.knownHosts = { files: [kh], writeFile: kh, policy: "strict" };
    await rejectsWith(SshConnection.open({ ...target, jump: via }), "HOST_KEY_UNKNOWN", /\(via jump host /);
    await idle(inner);
    assert.equal(authLines(inner).length, before, inner.logs());
  });

  await t.step("a wrong key for the jump host: refused there, nothing sent to it or beyond", async () => {
    const jumpBefore = authLines(jump).length;
    const bad = await hop(jump);
    const kh = `${jump.dir}/kh-wrong`;
    await Deno.writeTextFile(kh, `[${jump.host}]:${jump.port} ${inner.hostKeys[0].publicKeyLine}\n`);
    bad.knownHosts = { files: [kh], writeFile: kh, policy: "strict" };
    await rejectsWith(
      SshConnection.open({ ...await hop(inner), jump: bad }),
      "HOST_KEY_MISMATCH",
      new RegExp(`^Jump host ${jump.host}:${jump.port} \\(hop 1 of 1\\): `),
    );
    await idle(jump);
    assert.equal(authLines(jump).length, jumpBefore, jump.logs());
    assert.equal(authLines(inner).length, before, inner.logs());
  });
});

Deno.test({ name: "errors name the hop that failed and keep its code", ignore: skip }, async (t) => {
  await using w = await world();
  const { ns, jump, inner } = w;

  await t.step("wrong password at the jump host: AUTH_FAILED at hop 1 of 1", async () => {
    const bad = await hop(jump, { privateKeyPath: undefined, password: "not-the-password" });
    await rejectsWith(
      SshConnection.open({ ...await hop(inner), jump: bad }),
      "AUTH_FAILED",
      new RegExp(`^Jump host ${jump.host}:${jump.port} \\(hop 1 of 1\\): server .* rejected the password`),
    );
    await waitFor(async () => await established(jump.port) === 0, "the failed hop's connection to close");
  });

  await t.step("nothing listens at the inner address: CONNECT_REFUSED from the jump host", async () => {
    const target = { ...await hop(inner), port: freePort() };
    await rejectsWith(
      SshConnection.open({ ...target, jump: await hop(jump) }),
      "CONNECT_REFUSED",
      new RegExp(`^Jump host ${jump.host}:${jump.port} could not connect to 127\\.0\\.0\\.1:${target.port}`),
    );
    // The jump host's connection is closed with the failure.
    await waitFor(async () => await established(jump.port) === 0, "the jump host's connection to close");
    await idle(jump);
  });

  await t.step("a jump host that forbids forwarding: FORWARD_REFUSED", async () => {
    await using strict = await startSshd({ allowTcpForwarding: false, netns: { name: ns.name, address: ns.nsAddr } });
    await rejectsWith(
      SshConnection.open({ ...await hop(inner), jump: await hop(strict) }),
      "FORWARD_REFUSED",
      new RegExp(`^Jump host ${strict.host}:${strict.port} refused to open a channel`),
    );
  });

  await t.step("a jump host that dies ends the session, with a reason naming it", async () => {
    const before = await jump.childPids();
    const conn = await SshConnection.open({ ...await hop(inner), jump: await hop(jump) });
    try {
      await execCommand(conn, { command: "true", timeoutMs: 20_000, maxOutputBytes: 100 });
      const lost = new Promise<SshMcpError | null>((resolve) => conn.onClose(resolve));
      // The jump host's connection has no session channel (only direct-tcpip): its processes are the new ones.
      const serving = (await jump.childPids()).filter((pid) => !before.includes(pid));
      assert.ok(serving.length > 0, "no sshd process serves the jump host connection");
      for (const pid of serving) Deno.kill(pid, "SIGKILL");
      const reason = await lost;
      assert.equal(conn.alive, false);
      assert.equal(reason?.code, "CONNECTION_LOST");
      assert.match(reason!.message, new RegExp(`^Jump host ${jump.host}:${jump.port} \\(hop 1 of 1\\)`));
      await waitFor(async () => await established(inner.port, ns) === 0, "the inner connection to end");
    } finally {
      await conn.close();
    }
  });
});

Deno.test({ name: "a chain of two jump hosts: each hop checked, errors say which", ignore: skip }, async (t) => {
  await using w = await world();
  const { ns, jump, inner } = w;
  // The second jump host listens on the namespace's loopback: only the first reaches it.
  await using jump2 = await startSshd({ netns: { name: ns.name, address: "127.0.0.1" } });
  const chain = async (second: Partial<ConnectOptions> = {}) => ({
    ...await hop(inner),
    jump: { ...await hop(jump2, second), jump: await hop(jump) },
  });

  await t.step("exec through both; info lists them outermost first; close leaves nothing", async () => {
    const conn = await SshConnection.open(await chain());
    try {
      const r = await execCommand(conn, { command: "echo $SSH_CONNECTION", timeoutMs: 20_000, maxOutputBytes: 4096 });
      assert.match(r.stdout, new RegExp(` 127\\.0\\.0\\.1 ${inner.port}\\n$`));
      assert.deepEqual(conn.info.jumps.map((j) => j.port), [jump.port, jump2.port]);
      assert.ok(await established(jump2.port, ns) > 0);
    } finally {
      await conn.close();
    }
    for (const port of [jump.port, jump2.port, inner.port]) {
      await waitFor(async () => await established(port, ns) === 0, `no connection on port ${port}`);
    }
  });

  await t.step("wrong password at the second jump host: AUTH_FAILED at hop 2 of 2", async () => {
    await rejectsWith(
      SshConnection.open(await chain({ privateKeyPath: undefined, password: "not-the-password" })),
      "AUTH_FAILED",
      new RegExp(`^Jump host 127\\.0\\.0\\.1:${jump2.port} \\(hop 2 of 2\\): `),
    );
    // The first hop, already up, was closed with the failure.
    await waitFor(async () => await established(jump.port) === 0, "the first hop's connection to close");
  });

  await t.step("a wrong inner key names both jump hosts", async () => {
    const options = await chain();
    const kh = `${inner.dir}/kh-wrong2`;
    await Deno.writeTextFile(kh, `[127.0.0.1]:${inner.port} ${jump.hostKeys[0].publicKeyLine}\n`);
    options.knownHosts = { files: [kh], writeFile: kh, policy: "strict" };
    await rejectsWith(
      SshConnection.open(options),
      "HOST_KEY_MISMATCH",
      new RegExp(`\\(via jump hosts ${jump.user}@${jump.host}:${jump.port} -> ${jump2.user}@127\\.0\\.0\\.1:`),
    );
  });
});
