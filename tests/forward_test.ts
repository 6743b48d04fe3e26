/**
 * End to end: port forwarding. With root, the SSH server and the services
 * live in a network namespace, so a service on its 127.0.0.1 is reachable
 * from here only through the tunnel; without it, the same cases run against
 * a local sshd and the "unreachable directly" checks are skipped.
 */

import assert from "node:assert/strict";
import { call, callOk, connectWithKey, startServer } from "./fixtures/mcp.ts";
import { startInProcessServer } from "./fixtures/in_process.ts";
import {
  createNetns,
  httpGet,
  type HttpService,
  type Netns,
  netnsAvailable,
  patternBytes,
  startHttpService,
} from "./fixtures/netns.ts";
import { portIsFree, type Sshd, sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable();
const useNetns = !skip && await netnsAvailable();
if (!skip && !useNetns) {
  console.warn("forward_test: network namespaces unavailable (not root?): namespace-only checks are skipped");
}

/** The "remote" world: sshd plus a service that, with a namespace, only the SSH server can reach. */
async function remoteWorld(): Promise<{ ns: Netns | null; sshd: Sshd; service: HttpService } & AsyncDisposable> {
  const ns = useNetns ? await createNetns() : null;
  try {
    const sshd = await startSshd(ns ? { netns: { name: ns.name, address: ns.nsAddr } } : {});
    const service = await startHttpService({ netns: ns ?? undefined, host: "127.0.0.1" });
    return {
      ns,
      sshd,
      service,
      async [Symbol.asyncDispose]() {
        await service.stop();
        await sshd.stop();
        await ns?.remove();
      },
    };
  } catch (error) {
    await ns?.remove();
    throw error;
  }
}

async function curl(args: string[]): Promise<{ code: number; stdout: string }> {
  const out = await new Deno.Command("curl", { args: ["-s", "--max-time", "20", ...args], stderr: "null" }).output();
  return { code: out.code, stdout: new TextDecoder().decode(out.stdout) };
}

Deno.test(
  { name: "local, dynamic and remote forwards reach what only the other side can", ignore: skip },
  async (t) => {
    await using world = await remoteWorld();
    const { ns, sshd, service } = world;
    const dir = await Deno.makeTempDir({ prefix: "mcp-fwd-" });
    await using hostService = await startHttpService({ host: "127.0.0.1" }); // for -R: only this side has it
    try {
      const kh = await sshd.writeKnownHosts(`${dir}/kh`);
      await using server = await startInProcessServer({ args: ["--known-hosts", kh] });
      const c = server.client;
      const sid = await connectWithKey(c, sshd);

      if (ns !== null) {
        await t.step("the service is not reachable from here directly", async () => {
          await assert.rejects(httpGet(ns.nsAddr, service.port), Deno.errors.ConnectionRefused);
          const here = await httpGet("127.0.0.1", service.port).catch(() => null);
          assert.ok(here === null || !here.text.includes(service.token), "the service answered from here");
        });
      }

      let local: { forward_id: string; listen: { host: string; port: number } };
      await t.step("local: a port here reaches the service from the SSH server's side", async () => {
        local = (await callOk(c, "ssh_forward_port", { session_id: sid, remote_port: service.port })).structured;
        assert.equal(local.listen.host, "127.0.0.1");
        const r = await httpGet("127.0.0.1", local.listen.port, "/");
        assert.equal(r.text, service.body);
        const bulk = await httpGet("127.0.0.1", local.listen.port, "/bytes/3145745");
        assert.deepEqual(bulk.body, patternBytes(3145745));
        if (ns !== null) {
          // Bound to loopback only: this machine's address on the veth does not answer.
          const url = `http://${ns.hostAddr}:${local.listen.port}/`;
          const outside = await ns.run("curl", ["-s", "--max-time", "5", url], { check: false });
          assert.notEqual(outside.code, 0, "the forward answered on a non-loopback address");
        }
      });

      await t.step("100 concurrent connections through one forward, 1 MiB each, byte-exact", async () => {
        const want = patternBytes(1024 * 1024);
        const results = await Promise.all(
          Array.from({ length: 100 }, () => httpGet("127.0.0.1", local.listen.port, `/bytes/${want.length}`, 60_000)),
        );
        results.forEach((r, i) => assert.deepEqual(r.body, want, `connection ${i}`));
        const listed = (await callOk(c, "ssh_list_forwards", { session_id: sid })).structured.forwards;
        const mine = listed.find((f: { forward_id: string }) => f.forward_id === local.forward_id);
        assert.ok(mine.total_connections >= 102, `total_connections ${mine.total_connections}`);
        assert.ok(mine.bytes_in >= 100 * want.length, `bytes_in ${mine.bytes_in}`);
        assert.ok(mine.bytes_out > 0);
        assert.equal(mine.last_error, null);
      });

      await t.step("dynamic: SOCKS5 with a host name, an IPv4 address and an IPv6 address", async () => {
        const d = (await callOk(c, "ssh_forward_port", { session_id: sid, direction: "dynamic" })).structured;
        assert.equal(d.target, null);
        const proxy = `127.0.0.1:${d.listen.port}`;
        const named = await curl(["--socks5-hostname", proxy, `http://localhost:${service.port}/`]);
        assert.equal(named.stdout, service.body, "by name (resolved by the SSH server)");
        const v4 = await curl(["--socks5", proxy, `http://127.0.0.1:${service.port}/`]);
        assert.equal(v4.stdout, service.body, "by IPv4 address");
        await using v6service = await startHttpService({ netns: ns ?? undefined, host: "::1" });
        const v6 = await curl(["--socks5", proxy, "-g", `http://[::1]:${v6service.port}/`]);
        assert.equal(v6.stdout, v6service.body, "by IPv6 address");
        const refused = await curl(["--socks5", proxy, `http://127.0.0.1:1/`]);
        assert.notEqual(refused.code, 0, "a refused destination must fail");
        const again = await curl(["--socks5-hostname", proxy, `http://localhost:${service.port}/`]);
        assert.equal(again.stdout, service.body, "the proxy keeps serving after a failure");
        const listed = (await callOk(c, "ssh_list_forwards", { session_id: sid })).structured.forwards;
        const mine = listed.find((f: { forward_id: string }) => f.forward_id === d.forward_id);
        assert.match(mine.last_error, /refused/i);
        await callOk(c, "ssh_close_forward", { session_id: sid, forward_id: d.forward_id });
      });

      await t.step("remote: a command on the SSH server's side reaches a service only this side has", async () => {
        const r = (await callOk(c, "ssh_forward_port", {
          session_id: sid,
          direction: "remote",
          remote_port: 0,
          local_port: hostService.port,
        })).structured;
        assert.ok(r.listen.port > 0);
        if (ns !== null) {
          // Without the tunnel, the namespace cannot reach this side's loopback.
          const direct = await ns.run("curl", ["-s", "--max-time", "5", `http://127.0.0.1:${hostService.port}/`], {
            check: false,
          });
          assert.notEqual(direct.stdout, hostService.body);
        }
        const got = await callOk(c, "ssh_execute", {
          session_id: sid,
          command: `curl -s --max-time 20 http://127.0.0.1:${r.listen.port}/`,
        });
        assert.equal(got.structured.stdout, hostService.body);
        const listed = (await callOk(c, "ssh_list_forwards", {})).structured.forwards;
        const mine = listed.find((f: { forward_id: string }) => f.forward_id === r.forward_id);
        assert.equal(mine.direction, "remote");
        assert.ok(mine.bytes_in > hostService.body.length, "bytes from this side back to the remote client");
        assert.ok(mine.bytes_out > 0, "the remote client's request");
        await callOk(c, "ssh_close_forward", { session_id: sid, forward_id: r.forward_id });
        const after = await callOk(c, "ssh_execute", {
          session_id: sid,
          command: `curl -s --max-time 5 http://127.0.0.1:${r.listen.port}/; echo "exit=$?"`,
        });
        assert.match(after.structured.stdout, /exit=[1-9]/, "the remote listener is gone after close");
      });

      await t.step("a target that goes away: the client gets a close, the forward serves the next one", async () => {
        const flaky = await startHttpService({ netns: ns ?? undefined, host: "127.0.0.1" });
        const f = (await callOk(c, "ssh_forward_port", { session_id: sid, remote_port: flaky.port })).structured;
        assert.equal((await httpGet("127.0.0.1", f.listen.port)).text, flaky.body);
        await flaky.stop();
        const gone = await httpGet("127.0.0.1", f.listen.port, "/", 20_000).then((r) => r.text, (e) => e);
        assert.ok(gone instanceof Error || gone === "", "no answer expected from a target that is gone");
        const listed = (await callOk(c, "ssh_list_forwards", { session_id: sid })).structured.forwards;
        const mine = listed.find((x: { forward_id: string }) => x.forward_id === f.forward_id);
        assert.match(mine.last_error, /could not connect/);
        await using back = await startHttpService({ netns: ns ?? undefined, host: "127.0.0.1", port: flaky.port });
        assert.equal((await httpGet("127.0.0.1", f.listen.port)).text, back.body);
      });

      await t.step("closing a forward frees its port", async () => {
        await callOk(c, "ssh_close_forward", { session_id: sid, forward_id: local.forward_id });
        assert.ok(portIsFree(local.listen.port), "the port is still taken");
        const again = await call(c, "ssh_close_forward", { session_id: sid, forward_id: local.forward_id });
        assert.equal(again.code, "FORWARD_NOT_FOUND");
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test({ name: "forwards end with their session and their server, freeing the ports", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const dir = await Deno.makeTempDir({ prefix: "mcp-fwd-close-" });
  try {
    const kh = await sshd.writeKnownHosts(`${dir}/kh`);
    await using server = await startInProcessServer({ args: ["--known-hosts", kh] });
    const c = server.client;
    const sid = await connectWithKey(c, sshd);
    const a = (await callOk(c, "ssh_forward_port", { session_id: sid, remote_port: 22 })).structured;
    const b = (await callOk(c, "ssh_forward_port", { session_id: sid, direction: "dynamic" })).structured;
    // An open connection through the forward must not keep its port.
    const held = await Deno.connect({ hostname: "127.0.0.1", port: a.listen.port });
    await callOk(c, "ssh_close_session", { session_id: sid });
    assert.ok(portIsFree(a.listen.port), "local forward port still taken after ssh_close_session");
    assert.ok(portIsFree(b.listen.port), "dynamic forward port still taken after ssh_close_session");
    const eof = await held.read(new Uint8Array(16)).catch(() => null);
    assert.equal(eof, null, "the connection through the closed forward was left open");
    held.close();

    await using other = await startInProcessServer({ args: ["--known-hosts", kh] });
    const sid2 = await connectWithKey(other.client, sshd);
    const d = (await callOk(other.client, "ssh_forward_port", { session_id: sid2, remote_port: 22 })).structured;
    await other.close();
    assert.ok(portIsFree(d.listen.port), "forward port still taken after the server exited");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({ name: "SOCKS clients that reset right after CONNECT leave no channel open", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const dir = await Deno.makeTempDir({ prefix: "mcp-fwd-rst-" });
  // A target that counts the connections the SSH server keeps open to it.
  const target = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let open = 0;
  const serving = (async () => {
    for await (const conn of target) {
      open++;
      (async () => {
        const buf = new Uint8Array(1024);
        try {
          while ((await conn.read(buf)) !== null) { /* drain */ }
        } catch {
          // reset
        } finally {
          open--;
          conn.close();
        }
      })();
    }
  })().catch(() => {});
  try {
    const kh = await sshd.writeKnownHosts(`${dir}/kh`);
    await using server = await startInProcessServer({ args: ["--known-hosts", kh] });
    const c = server.client;
    const sid = await connectWithKey(c, sshd);
    const d = (await callOk(c, "ssh_forward_port", { session_id: sid, direction: "dynamic" })).structured;
    const targetPort = (target.addr as Deno.NetAddr).port;
    // Greeting, CONNECT, then a reset (SO_LINGER 0) before reading the reply.
    const script = [
      "import socket, struct, sys",
      "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))",
      "s.sendall(b'\\x05\\x01\\x00'); s.recv(2)",
      "s.sendall(b'\\x05\\x01\\x00\\x01' + bytes([127, 0, 0, 1]) + struct.pack('>H', int(sys.argv[2])))",
      "s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0)); s.close()",
    ].join("\n");
    for (let i = 0; i < 20; i++) {
      const r = await new Deno.Command("python3", { args: ["-c", script, String(d.listen.port), String(targetPort)] })
        .output();
      assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
    }
    for (let i = 0; i < 50 && open > 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(open, 0, `${open} connections to the target stayed open after their clients reset`);
    // Our side counts a connection until the channel's close comes back from sshd, which can follow the
    // target's close: waited for, so a channel never closed still fails here.
    let openHere = -1;
    for (let i = 0; i < 50 && openHere !== 0; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 100));
      openHere = (await callOk(c, "ssh_list_forwards", { session_id: sid })).structured.forwards[0].open_connections;
    }
    assert.equal(openHere, 0, `${openHere} connections of the forward stayed open after their clients reset`);
  } finally {
    target.close();
    await serving;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({ name: "forward requests that are not allowed are refused clearly", ignore: skip }, async () => {
  await using sshd = await startSshd({ allowTcpForwarding: false });
  const dir = await Deno.makeTempDir({ prefix: "mcp-fwd-deny-" });
  try {
    const kh = await sshd.writeKnownHosts(`${dir}/kh`);
    const config = `${dir}/config.json`;
    await Deno.writeTextFile(config, JSON.stringify({ max_forwards_per_session: 3 }));
    await using server = await startServer({ args: ["--known-hosts", kh, "--config", config] });
    const c = server.client;
    const sid = await connectWithKey(c, sshd);

    const wide = await call(c, "ssh_forward_port", { session_id: sid, remote_port: 22, local_bind: "0.0.0.0" });
    assert.equal(wide.code, "BIND_FAILED", wide.text);
    assert.match(wide.text, /forward_bind_addresses/);

    const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const busy = await call(c, "ssh_forward_port", {
      session_id: sid,
      remote_port: 22,
      local_port: (taken.addr as Deno.NetAddr).port,
    });
    taken.close();
    assert.equal(busy.code, "BIND_FAILED", busy.text);
    assert.match(busy.text, /already in use/);

    const remote = await call(c, "ssh_forward_port", {
      session_id: sid,
      direction: "remote",
      remote_port: 0,
      local_port: 9,
    });
    assert.equal(remote.code, "FORWARD_REFUSED", remote.text);

    // The server refuses the forward's probe: the call fails (forward_refused_test.ts has the details).
    const local = await call(c, "ssh_forward_port", { session_id: sid, remote_port: 22 });
    assert.equal(local.code, "FORWARD_REFUSED", local.text);

    const missing = await call(c, "ssh_forward_port", { session_id: sid });
    assert.equal(missing.code, "INVALID_ARGUMENT", missing.text);
    // Dynamic forwards open with a warning here; three of them fill the cap.
    for (let i = 0; i < 3; i++) await callOk(c, "ssh_forward_port", { session_id: sid, direction: "dynamic" });
    const capped = await call(c, "ssh_forward_port", { session_id: sid, direction: "dynamic" });
    assert.equal(capped.code, "FORWARD_LIMIT", capped.text);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
