/**
 * End to end: the MCP features beside tools (log messages after
 * logging/setLevel, the session resources and their list_changed) through
 * the shipped server, against a real sshd.
 */

import assert from "node:assert/strict";
// @ts-types="@modelcontextprotocol/sdk/types"
import {
  type LoggingMessageNotification,
  LoggingMessageNotificationSchema,
  ResourceListChangedNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";
// @ts-types="@modelcontextprotocol/sdk/client/index"
import { Client as SdkClient } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="@modelcontextprotocol/sdk/client/streamableHttp"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { parseFlags } from "../lib/cli.ts";
import { resolveConfig } from "../lib/config.ts";
import { createLogger } from "../lib/log.ts";
import { createServer } from "../lib/server.ts";
import { serveHttp } from "../lib/transport/http.ts";
import { call, callOk, connectWithKey, startServer } from "./fixtures/mcp.ts";
import { startInProcessServer } from "./fixtures/in_process.ts";
import { type Sshd, sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable();
if (skip) console.warn("SKIP MCP feature tests: no sshd on this machine (apt-get install openssh-server)");

/** Collects notifications of one kind; `until` waits for one that matches. */
function collect<T>(
  client: SdkClient,
  schema: typeof LoggingMessageNotificationSchema | typeof ResourceListChangedNotificationSchema,
  pick: (n: unknown) => T,
  /** Every notification of the client, of any collector sharing this array, in the order they arrived. */
  order?: unknown[],
) {
  const seen: T[] = [];
  let waiters: { test: (x: T) => boolean; resolve: (x: T) => void }[] = [];
  client.setNotificationHandler(schema, (n: unknown) => {
    const item = pick(n);
    seen.push(item);
    order?.push(item);
    waiters = waiters.filter((w) => !(w.test(item) && (w.resolve(item), true)));
  });
  return {
    seen,
    /** The first notification (seen already or to come) that passes `test`. */
    until(test: (x: T) => boolean, what: string): Promise<T> {
      const found = seen.find(test);
      if (found !== undefined) return Promise.resolve(found);
      const { promise, resolve, reject } = Promise.withResolvers<T>();
      waiters.push({ test, resolve });
      // A guard against a hang, not a timing claim: the notification comes within the call that caused it.
      const guard = setTimeout(() => reject(new Error(`No notification: ${what}`)), 30_000);
      return promise.finally(() => clearTimeout(guard));
    },
  };
}

function base(sshd: Sshd) {
  return { host: sshd.host, port: sshd.port, username: sshd.user };
}

Deno.test(
  { name: "log messages reach the client after logging/setLevel, without secrets", ignore: skip },
  async (t) => {
    await using sshd = await startSshd();
    const kh = await sshd.writeKnownHosts();
    // stderr at debug too: the secret check covers both places a message goes.
    await using server = await startServer({ args: ["--known-hosts", kh, "--log-level", "debug"] });
    const c = server.client;
    const logs = collect(c, LoggingMessageNotificationSchema, (n) => (n as LoggingMessageNotification).params);
    assert.ok(c.getServerCapabilities()?.logging, "the logging capability is declared");

    await t.step("before setLevel nothing is sent", async () => {
      const id = await connectWithKey(c, sshd);
      await callOk(c, "ssh_close_session", { session_id: id });
      // stdio keeps order: a message logged during those calls came before their results.
      await c.ping();
      assert.deepEqual(logs.seen, []);
      // stderr is a separate pipe: wait for the line rather than expect it at once.
      for (let i = 0; i < 300 && !/opened to/.test(server.stderr()); i++) await new Promise((r) => setTimeout(r, 50));
      assert.match(server.stderr(), /opened to/, "stderr logging is unchanged");
    });

    await t.step("after setLevel(debug) a connect is logged with its fields", async () => {
      await c.setLoggingLevel("debug");
      const id = await connectWithKey(c, sshd);
      const opened = await logs.until((m) => String((m.data as { message: string }).message).includes(id), "opened");
      assert.equal(opened.level, "info");
      assert.equal(opened.logger, "mcp-remote-ssh");
      assert.deepEqual(opened.data, {
        session_id: id,
        host: sshd.host,
        port: sshd.port,
        username: sshd.user,
        message: `Session ${id} opened to ${sshd.user}@${sshd.host}:${sshd.port}`,
      });
      await callOk(c, "ssh_close_session", { session_id: id });
      await logs.until((m) => (m.data as { message: string }).message === `Session ${id} closed`, "closed");
    });

    await t.step("a password or passphrase used in ssh_connect never appears in a notification", async () => {
      const secrets: string[] = [];
      const key = sshd.keys.passphrase;
      secrets.push(key.passphrase!);
      const viaKey = await callOk(c, "ssh_connect", {
        ...base(sshd),
        private_key_path: key.path,
        passphrase: key.passphrase,
      });
      const wrong = `wrong-${crypto.randomUUID()}`;
      secrets.push(wrong);
      await call(c, "ssh_connect", { ...base(sshd), private_key_path: key.path, passphrase: wrong });
      const ids = [viaKey.structured.session_id];
      if (sshd.passwordUser !== null) {
        secrets.push(sshd.passwordUser.password);
        const r = await callOk(c, "ssh_connect", { ...base(sshd), password: sshd.passwordUser.password });
        ids.push(r.structured.session_id);
        const bad = `bad-${crypto.randomUUID()}`;
        secrets.push(bad);
        assert.equal((await call(c, "ssh_connect", { ...base(sshd), password: bad })).code, "AUTH_FAILED");
      } else {
        console.warn("SKIP the password half: no password user (not root)");
      }
      for (const id of ids) {
        await logs.until((m) => String((m.data as { message: string }).message).includes(id), `opened ${id}`);
        await callOk(c, "ssh_close_session", { session_id: id });
      }
      await c.ping();
      const all = JSON.stringify(logs.seen);
      for (const secret of secrets) {
        // Searched for as JSON writes it: the fixture's passphrase holds a quote, which JSON escapes.
        assert.ok(!all.includes(JSON.stringify(secret).slice(1, -1)), "a secret was sent in a log notification");
        assert.ok(!server.stderr().includes(secret), "a secret was written to stderr");
      }
    });

    await t.step("setLevel(error) holds back info messages", async () => {
      await c.setLoggingLevel("error");
      const before = logs.seen.length;
      const id = await connectWithKey(c, sshd);
      await callOk(c, "ssh_close_session", { session_id: id });
      await c.ping();
      assert.equal(logs.seen.length, before);
    });
  },
);

Deno.test({ name: "sessions and their shells are resources, with list_changed", ignore: skip }, async (t) => {
  await using sshd = await startSshd();
  const kh = await sshd.writeKnownHosts();
  await using server = await startInProcessServer({ args: ["--known-hosts", kh] });
  const c = server.client;
  const changes = collect(c, ResourceListChangedNotificationSchema, () => Date.now());
  const read = async (uri: string) => {
    const r = await c.readResource({ uri });
    assert.equal(r.contents[0].mimeType, "application/json");
    return JSON.parse((r.contents[0] as { text: string }).text);
  };
  assert.ok(c.getServerCapabilities()?.resources?.listChanged, "resources.listChanged is declared");
  let id = "";

  await t.step("after a connect, resources/list lists the session", async () => {
    id = await connectWithKey(c, sshd);
    await changes.until(() => true, "session opened");
    const uris = (await c.listResources()).resources.map((r) => r.uri);
    assert.deepEqual(uris, ["ssh://sessions", `ssh://sessions/${id}`]);
    const all = await read("ssh://sessions");
    assert.deepEqual(
      all.sessions.map((s: Record<string, unknown>) => [s.session_id, s.host, s.port, s.username, s.connected]),
      [[id, sshd.host, sshd.port, sshd.user, true]],
    );
    assert.ok(!Number.isNaN(Date.parse(all.sessions[0].connected_at)));
  });

  await t.step("opening a shell sends list_changed and the session resource shows it", async () => {
    const before = changes.seen.length;
    await callOk(c, "ssh_shell_open", { session_id: id, cols: 90, rows: 25 });
    await changes.until(() => changes.seen.length > before, "shell opened");
    const one = await read(`ssh://sessions/${id}`);
    assert.deepEqual(one.shells, [{ shell_id: "default", cols: 90, rows: 25, closed: false }]);
    await callOk(c, "ssh_shell_send_control", { session_id: id, cols: 100, rows: 30 });
    assert.deepEqual((await read(`ssh://sessions/${id}`)).shells[0], {
      shell_id: "default",
      cols: 100,
      rows: 30,
      closed: false,
    });
    assert.deepEqual((await read("ssh://sessions")).sessions[0].shells, ["default"]);
  });

  await t.step("closing the session sends list_changed and its resource is gone", async () => {
    const before = changes.seen.length;
    await callOk(c, "ssh_close_session", { session_id: id });
    await changes.until(() => changes.seen.length > before, "session closed");
    assert.deepEqual((await c.listResources()).resources.map((r) => r.uri), ["ssh://sessions"]);
    assert.deepEqual((await read("ssh://sessions")).sessions, []);
    await assert.rejects(
      c.readResource({ uri: `ssh://sessions/${id}` }),
      (e) => (e as { code?: number }).code === -32002,
    );
  });
});

// In this process (the HTTP layer as main.ts wires it; no security claim rests on the permission set here): each
// HTTP client has its own server instance, so its own log messages and resource changes only.
Deno.test(
  { name: "over HTTP a client hears only its own sessions' log messages and changes", ignore: skip },
  async () => {
    await using sshd = await startSshd();
    const kh = await sshd.writeKnownHosts();
    const config = resolveConfig(parseFlags(["--transport", "streamable-http", "--known-hosts", kh]), {}, {
      home: undefined,
    });
    const logger = createLogger("silent");
    const token = `token-${crypto.randomUUID()}`;
    const http = await serveHttp({
      transport: "streamable-http",
      host: "127.0.0.1",
      port: 0,
      token,
      allowedOrigins: [],
      maxBodyBytes: 1024 * 1024,
      idleTimeoutMs: 600_000,
      maxSessions: 4,
      initTimeoutMs: 600_000,
      create: () => createServer(config, logger),
      logger,
    });
    const clients: SdkClient[] = [];
    try {
      const join = async () => {
        const client = new SdkClient({ name: "http", version: "0" });
        clients.push(client);
        const order: unknown[] = [];
        const logs = collect(
          client,
          LoggingMessageNotificationSchema,
          (n) => (n as LoggingMessageNotification).params,
          order,
        );
        await client.connect(
          new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${http.port}/mcp`), {
            requestInit: { headers: { Authorization: `Bearer ${token}` } },
          }),
        );
        await client.setLoggingLevel("debug");
        const changes = collect(client, ResourceListChangedNotificationSchema, () => "list_changed", order);
        return { client, logs, changes, order };
      };
      const a = await join();
      const b = await join();
      const mentions = (m: LoggingMessageNotification["params"], id: string) =>
        String((m.data as { message: string }).message).includes(id);
      const sidA = await connectWithKey(a.client, sshd);
      await a.logs.until((m) => mentions(m, sidA), "A's session opened, to A");
      await a.changes.until(() => true, "A's list_changed");
      // B's own connect: anything sent to B about A would be on B's stream before this.
      const sidB = await connectWithKey(b.client, sshd);
      await b.logs.until((m) => mentions(m, sidB), "B's session opened, to B");
      assert.deepEqual(b.logs.seen.filter((m) => mentions(m, sidA)), [], "B heard of A's session");
      // Both go on B's one stream for notifications, in the order sent: a list_changed about A's session
      // would come before B's own log line, B's own list_changed after it (a tick later).
      await b.changes.until(() => true, "B's list_changed");
      const own = b.order.findIndex((m) =>
        m !== "list_changed" && mentions(m as LoggingMessageNotification["params"], sidB)
      );
      assert.equal(b.order.indexOf("list_changed") > own, true, "B was told of A's session as a change");
      assert.deepEqual((await b.client.listResources()).resources.map((r) => r.uri), [
        "ssh://sessions",
        `ssh://sessions/${sidB}`,
      ]);
      await assert.rejects(b.client.readResource({ uri: `ssh://sessions/${sidA}` }));
      assert.deepEqual(a.logs.seen.filter((m) => mentions(m, sidB)), [], "A heard of B's session");
    } finally {
      for (const client of clients) await client.close();
      await http.shutdown();
    }
  },
);
