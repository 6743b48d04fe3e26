/**
 * End to end: a forward the SSH server will not carry fails ssh_forward_port
 * itself (issue 14). Before, the listener opened, the call succeeded, and
 * only the clients that connected later met the refusal (`socket hang up`),
 * visible to the agent at most as `last_error` in ssh_list_forwards.
 *
 * The server runs on this machine, so a target on 127.0.0.1 here is also
 * the server's 127.0.0.1.
 */

import assert from "node:assert/strict";
import { joinTestAccount } from "./fixtures/account.ts";
import { dropbearAvailable, startDropbear } from "./fixtures/dropbear.ts";
import { call, callOk, connectAs, connectWithKey, type TestServer } from "./fixtures/mcp.ts";
import { startInProcessServer } from "./fixtures/in_process.ts";
import { waitFor, within } from "./fixtures/process.ts";
import {
  freePort,
  portIsFree,
  signalAll,
  type Sshd,
  sshdAvailable,
  type SshdOptions,
  startSshd,
} from "./fixtures/sshd.ts";

const skip = !sshdAvailable();

/**
 * An sshd with `options`, a server shipped as users run it (with `config` as its config file), and one
 * session on it; `pids` are the sshd processes serving that session.
 */
async function world(options: SshdOptions, config: Record<string, unknown> = {}): Promise<
  { sshd: Sshd; server: TestServer; sid: string; pids: number[] } & AsyncDisposable
> {
  const sshd = await startSshd(options);
  const dir = await Deno.makeTempDir({ prefix: "mcp-fwd-refused-" });
  let server: TestServer | undefined;
  const dispose = async () => {
    await server?.close();
    await sshd.stop();
    await Deno.remove(dir, { recursive: true });
  };
  try {
    const kh = await sshd.writeKnownHosts(`${dir}/kh`);
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(config));
    server = await startInProcessServer({ args: ["--known-hosts", kh, "--config", `${dir}/config.json`] });
    const before = await sshd.childPids();
    const sid = await connectWithKey(server.client, sshd);
    await callOk(server.client, "ssh_execute", { session_id: sid, command: "true" });
    const pids = await sshd.sessionPids(before);
    return { sshd, server, sid, pids, [Symbol.asyncDispose]: dispose };
  } catch (error) {
    await dispose();
    throw error;
  }
}

/** What a target saw of one connection. */
interface Seen {
  bytes: number;
  ended: boolean;
}

/** An echo service on 127.0.0.1 that records every connection it gets. */
function echoTarget(): { port: number; seen: Seen[] } & AsyncDisposable {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const seen: Seen[] = [];
  const conns = new Set<Deno.Conn>();
  const serving = (async () => {
    for await (const conn of listener) {
      const record: Seen = { bytes: 0, ended: false };
      seen.push(record);
      conns.add(conn);
      (async () => {
        const buf = new Uint8Array(4096);
        try {
          for (let n; (n = await conn.read(buf)) !== null;) {
            record.bytes += n;
            await conn.write(buf.subarray(0, n));
          }
        } catch {
          // reset: it ended all the same
        } finally {
          record.ended = true;
          // Unless the dispose below closed it first (its close is what ended the read).
          if (conns.delete(conn)) conn.close();
        }
      })();
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    seen,
    async [Symbol.asyncDispose]() {
      listener.close();
      for (const conn of conns) {
        conns.delete(conn);
        conn.close();
      }
      await serving;
    },
  };
}

/** Sends `text` over `conn` and reads until as many bytes came back (or EOF). */
async function roundTrip(conn: Deno.Conn, text: string): Promise<string> {
  const bytes = new TextEncoder().encode(text);
  await conn.write(bytes);
  const got: number[] = [];
  const buf = new Uint8Array(1024);
  while (got.length < bytes.length) {
    const n = await conn.read(buf);
    if (n === null) break;
    got.push(...buf.subarray(0, n));
  }
  return new TextDecoder().decode(new Uint8Array(got));
}

/** Opens a SOCKS5 CONNECT to 127.0.0.1:`port` through the proxy on `proxyPort`; returns the reply code. */
async function socksConnect(proxyPort: number, port: number): Promise<{ conn: Deno.Conn; reply: number }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxyPort });
  await conn.write(new Uint8Array([0x05, 0x01, 0x00]));
  const buf = new Uint8Array(64);
  let have = 0;
  while (have < 2) have += (await conn.read(buf.subarray(have))) ?? Infinity;
  await conn.write(new Uint8Array([0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1, port >> 8, port & 0xff]));
  have = 0;
  while (have < 10) {
    const n = await conn.read(buf.subarray(have));
    if (n === null) break;
    have += n;
  }
  return { conn, reply: have >= 2 ? buf[1] : -1 };
}

Deno.test(
  {
    name: "a local forward to a server with AllowTcpForwarding no fails with FORWARD_REFUSED and frees its port",
    ignore: skip,
  },
  async () => {
    await using w = await world({ allowTcpForwarding: false });
    await using target = echoTarget();
    const port = freePort();
    const r = await call(w.server.client, "ssh_forward_port", {
      session_id: w.sid,
      local_port: port,
      remote_port: target.port,
    });
    assert.equal(r.code, "FORWARD_REFUSED", r.text);
    assert.match(r.text, new RegExp(`does not allow forwarding to 127\\.0\\.0\\.1:${target.port}`));
    assert.match(r.text, /AllowTcpForwarding/);
    assert.match(r.text, /PermitOpen/);
    assert.ok(portIsFree(port), "the refused forward's listener is still open");
    const listed = (await callOk(w.server.client, "ssh_list_forwards", { session_id: w.sid })).structured.forwards;
    assert.deepEqual(listed, [], "a refused forward must not be listed");
    assert.equal(target.seen.length, 0, "the server connected to the target although it forbids forwarding");
  },
);

Deno.test(
  {
    name: "with PermitOpen, an unlisted target is refused, a listed silent one opens with a warning, " +
      "and a listed live one opens without one, its probe closed without a byte",
    ignore: skip,
  },
  async (t) => {
    await using target = echoTarget();
    const silent = freePort();
    await using w = await world({ extraConfig: `PermitOpen 127.0.0.1:${target.port} 127.0.0.1:${silent}` });
    const c = w.server.client;

    await t.step("a target PermitOpen does not list (one that listens: sshd's own port) is refused", async () => {
      const r = await call(c, "ssh_forward_port", { session_id: w.sid, remote_port: w.sshd.port });
      assert.equal(r.code, "FORWARD_REFUSED", r.text);
      assert.match(r.text, new RegExp(`does not allow forwarding to 127\\.0\\.0\\.1:${w.sshd.port}`));
    });

    await t.step("a listed target where nothing listens: success with a warning", async () => {
      const r = await callOk(c, "ssh_forward_port", { session_id: w.sid, remote_port: silent });
      assert.match(r.structured.warning ?? "", new RegExp(`Nothing answered at 127\\.0\\.0\\.1:${silent}`));
      assert.match(r.structured.warning, /Connection refused/);
      assert.match(r.text, /\nWarning: Nothing answered/);
      await callOk(c, "ssh_close_forward", { session_id: w.sid, forward_id: r.structured.forward_id });
    });

    await t.step("a listed target that listens: no warning, the probe sent nothing, traffic flows", async () => {
      const r = await callOk(c, "ssh_forward_port", { session_id: w.sid, remote_port: target.port });
      assert.equal(r.structured.warning, undefined, r.text);
      assert.doesNotMatch(r.text, /Warning/);
      // The probe: one connection to the target, closed by the tunnel without a byte, before any client came.
      await waitFor(() => target.seen.length >= 1 && target.seen[0].ended, "the probe connection to end");
      assert.deepEqual(target.seen, [{ bytes: 0, ended: true }]);
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: r.structured.listen.port });
      try {
        assert.equal(await within(20_000, "echo through the forward", roundTrip(conn, "ping")), "ping");
      } finally {
        conn.close();
      }
      assert.equal(target.seen.length, 2);
      assert.equal(target.seen[1].bytes, 4);
      const listed = (await callOk(c, "ssh_list_forwards", { session_id: w.sid })).structured.forwards;
      assert.equal(listed.length, 1);
      assert.equal(listed[0].last_error, null);
    });
  },
);

Deno.test(
  { name: "a remote forward refused by AllowTcpForwarding local says remote forwarding is off", ignore: skip },
  async () => {
    await using w = await world({ extraConfig: "AllowTcpForwarding local" });
    for (const remote_port of [0, freePort()]) {
      const r = await call(w.server.client, "ssh_forward_port", {
        session_id: w.sid,
        direction: "remote",
        remote_port,
        local_port: 9,
      });
      assert.equal(r.code, "FORWARD_REFUSED", r.text);
      assert.match(r.text.split("\n")[0], /does not allow remote forwarding \(ssh -R\)/, r.text);
      assert.match(r.text, /AllowTcpForwarding no or local/);
    }
    // Local forwarding is still allowed there: the refusal is about -R only.
    await using target = echoTarget();
    const local = await callOk(w.server.client, "ssh_forward_port", { session_id: w.sid, remote_port: target.port });
    assert.equal(local.structured.warning, undefined, local.text);
  },
);

Deno.test(
  { name: "a remote forward refused for its port alone says so, not that forwarding is off", ignore: skip },
  async () => {
    await using w = await world({});
    // The server runs here: a port taken here is taken on the server.
    const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const r = await call(w.server.client, "ssh_forward_port", {
        session_id: w.sid,
        direction: "remote",
        remote_port: (taken.addr as Deno.NetAddr).port,
        local_port: 9,
      });
      assert.equal(r.code, "FORWARD_REFUSED", r.text);
      assert.match(r.text.split("\n")[0], /though it allows remote forwarding on other ports/, r.text);
      assert.match(r.text, /in use/);
    } finally {
      taken.close();
    }
    // The trial listener that told the two apart was given back.
    const listed = (await callOk(w.server.client, "ssh_list_forwards", { session_id: w.sid })).structured.forwards;
    assert.deepEqual(listed, []);
    const ss = await new Deno.Command("ss", { args: ["-Htlnp"], stdout: "piped", stderr: "null" }).output()
      .catch(() => null);
    if (ss !== null) {
      // Only this session's sshd processes: other suites may hold forwards of their own.
      const pids = await w.sshd.childPids();
      const sshdListens = new TextDecoder().decode(ss.stdout).split("\n")
        .filter((line) => pids.some((pid) => line.includes(`pid=${pid},`)));
      assert.deepEqual(sshdListens, [], "this session's sshd still listens for a forward nobody asked for");
    }
  },
);

Deno.test(
  {
    name: "a dynamic forward whose probe the server refuses opens with a warning, and what PermitOpen lists works",
    ignore: skip,
  },
  async (t) => {
    await using target = echoTarget();

    await t.step("AllowTcpForwarding no: a warning, not a failure", async () => {
      await using w = await world({ allowTcpForwarding: false });
      const r = await callOk(w.server.client, "ssh_forward_port", { session_id: w.sid, direction: "dynamic" });
      assert.match(r.structured.warning ?? "", /refused a test connection to 127\.0\.0\.1 port 0/, r.text);
      assert.match(r.structured.warning, /PermitOpen/);
      assert.match(r.text, /\nWarning: /);
    });

    await t.step("PermitOpen: the same warning, and a listed destination still works", async () => {
      await using w = await world({ extraConfig: `PermitOpen 127.0.0.1:${target.port}` });
      const r = await callOk(w.server.client, "ssh_forward_port", { session_id: w.sid, direction: "dynamic" });
      assert.match(r.structured.warning ?? "", /refused a test connection/, r.text);
      const ok = await socksConnect(r.structured.listen.port, target.port);
      try {
        assert.equal(ok.reply, 0, "SOCKS CONNECT to a PermitOpen destination");
        assert.equal(await within(20_000, "echo through SOCKS", roundTrip(ok.conn, "pong")), "pong");
      } finally {
        ok.conn.close();
      }
      const denied = await socksConnect(r.structured.listen.port, w.sshd.port);
      denied.conn.close();
      assert.equal(denied.reply, 2, "SOCKS reply for a destination the server does not allow");
    });

    await t.step("forwarding allowed: no warning", async () => {
      await using w = await world({});
      const r = await callOk(w.server.client, "ssh_forward_port", { session_id: w.sid, direction: "dynamic" });
      assert.equal(r.structured.warning, undefined, r.text);
    });
  },
);

/** Stops (SIGSTOP) the processes serving a session, so the server answers nothing; `thaw` resumes them. */
function freeze(pids: number[]): { thaw: () => void } {
  signalAll(pids, "SIGSTOP");
  return { thaw: () => signalAll(pids, "SIGCONT") };
}

Deno.test(
  {
    name: "a probe the server does not answer within default_timeout opens the forward with a warning, " +
      "and the late channel is closed without a byte",
    ignore: skip,
  },
  async () => {
    await using target = echoTarget();
    await using w = await world({}, { default_timeout: 2 });
    const frozen = freeze(w.pids);
    let r;
    try {
      r = await within(
        30_000,
        "ssh_forward_port",
        call(w.server.client, "ssh_forward_port", {
          session_id: w.sid,
          remote_port: target.port,
        }),
      );
    } finally {
      frozen.thaw();
    }
    assert.equal(r.isError, false, r.text);
    assert.match(r.structured.warning ?? "", /had not connected to 127\.0\.0\.1:\d+ after 2 s/, r.text);
    // Thawed, the server opens the probe channel it was asked for; nobody wants it any more.
    await waitFor(() => target.seen.length >= 1 && target.seen[0].ended, "the late probe connection to end");
    assert.deepEqual(target.seen, [{ bytes: 0, ended: true }]);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: r.structured.listen.port });
    try {
      assert.equal(await within(20_000, "echo through the forward", roundTrip(conn, "late")), "late");
    } finally {
      conn.close();
    }
  },
);

Deno.test(
  { name: "a cancelled ssh_forward_port closes the listener and opens no forward", ignore: skip },
  async () => {
    await using target = echoTarget();
    await using w = await world({});
    const port = freePort();
    const frozen = freeze(w.pids);
    try {
      const abort = new AbortController();
      const pending = w.server.client.callTool(
        { name: "ssh_forward_port", arguments: { session_id: w.sid, local_port: port, remote_port: target.port } },
        undefined,
        { signal: abort.signal },
      );
      // The listener is bound before the probe is sent: once the port is taken, the call waits on the server.
      await waitFor(() => !portIsFree(port), "the forward's listener");
      abort.abort(new Error("test cancels"));
      await assert.rejects(pending);
      await waitFor(() => portIsFree(port), "the cancelled forward's port to be free");
    } finally {
      frozen.thaw();
    }
    const listed = (await callOk(w.server.client, "ssh_list_forwards", { session_id: w.sid })).structured.forwards;
    assert.deepEqual(listed, [], "a cancelled forward must not be listed");
    // The channel the server opens once thawed is closed at once, without a byte.
    await waitFor(() => target.seen.length >= 1 && target.seen[0].ended, "the late probe connection to end");
    assert.deepEqual(target.seen, [{ bytes: 0, ended: true }]);
  },
);

Deno.test({
  name: "Dropbear -j: a local forward is FORWARD_REFUSED, and without -j the same forward works",
  ignore: skip || !dropbearAvailable(),
}, async () => {
  const account = await joinTestAccount({ name: "mcp-rssh-dbfwd", shell: "/bin/bash" });
  try {
    await using target = echoTarget();
    for (const noLocalForward of [true, false]) {
      await using dropbear = await startDropbear({ user: account, noLocalForward });
      const kh = await dropbear.writeKnownHosts();
      await using server = await startInProcessServer({ args: ["--known-hosts", kh] });
      const c = server.client;
      const connected = await connectAs(c, dropbear, account.name, dropbear.key.path);
      const sid = connected.structured.session_id;
      const r = await call(c, "ssh_forward_port", { session_id: sid, local_port: 0, remote_port: target.port });
      if (noLocalForward) {
        assert.equal(r.code, "FORWARD_REFUSED", r.text);
        assert.equal((await callOk(c, "ssh_list_forwards", { session_id: sid })).structured.forwards.length, 0);
      } else {
        assert.equal(r.code, undefined, r.text);
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: r.structured.listen.port });
        try {
          assert.equal(await roundTrip(conn, "through dropbear"), "through dropbear");
        } finally {
          conn.close();
        }
      }
    }
  } finally {
    account.leave();
  }
});
