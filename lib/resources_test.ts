import assert from "node:assert/strict";
// @ts-types="@modelcontextprotocol/sdk/client/index"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="@modelcontextprotocol/sdk/inMemory"
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
// @ts-types="@modelcontextprotocol/sdk/types"
import { ResourceListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import type { SshMcpError } from "./errors.ts";
import { silentLogger } from "./log.ts";
import { registerResources, RESOURCE_NOT_FOUND } from "./resources.ts";
import { SessionRegistry } from "./sessions.ts";
import type { SshConnection } from "./ssh/connection.ts";
import type { Forward } from "./ssh/forward.ts";
import type { RemoteInfo } from "./ssh/remote.ts";
import type { Shell } from "./ssh/shell.ts";

// A connection with what the registry and the resources read, and a way to lose it.
function fakeConnection(host: string) {
  const listeners = new Set<(reason: SshMcpError | null) => void>();
  let alive = true;
  const connection = {
    info: { host, port: 22, username: "alice", hostKeyFingerprint: "SHA256:x", serverVersion: "SSH-2.0-fake" },
    get alive() {
      return alive;
    },
    onClose(listener: (reason: SshMcpError | null) => void) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      alive = false;
      for (const l of listeners) l(null);
      return Promise.resolve();
    },
  };
  return connection as unknown as SshConnection;
}

function fakeShell(id: string): Shell {
  let closed = false;
  return {
    id,
    size: { cols: 100, rows: 30 },
    get closed() {
      return closed;
    },
    close: () => void (closed = true),
  } as unknown as Shell;
}

function fakeForward(id: string): Forward {
  return {
    id,
    info: () => ({ id, kind: "local", listen: { host: "127.0.0.1", port: 5555 }, target: { host: "db", port: 5432 } }),
    close: () => Promise.resolve(),
  } as unknown as Forward;
}

const remote = { os: "Linux", loginShell: "/bin/sh", exec: "posix", processGroup: "own", loginOutput: "", note: null };

async function setup() {
  const sessions = new SessionRegistry({
    logger: silentLogger,
    connect: (o) => Promise.resolve(fakeConnection(o.host)),
    probe: () => Promise.resolve(remote as RemoteInfo),
  });
  const server = new McpServer({ name: "t", version: "0" });
  const resources = registerResources(server, sessions);
  const [a, b] = InMemoryTransport.createLinkedPair();
  await server.connect(a);
  const client = new Client({ name: "c", version: "0" });
  let changes = 0;
  let changed = Promise.withResolvers<void>();
  client.setNotificationHandler(ResourceListChangedNotificationSchema, () => {
    changes++;
    changed.resolve();
  });
  await client.connect(b);
  const read = async (uri: string) => {
    const r = await client.readResource({ uri });
    assert.equal(r.contents[0].mimeType, "application/json");
    return JSON.parse((r.contents[0] as { text: string }).text);
  };
  return {
    sessions,
    client,
    read,
    /** Resolves at the next list_changed; says how many came in all. */
    async nextChange(): Promise<number> {
      await changed.promise;
      changed = Promise.withResolvers<void>();
      // A round trip: a second notification of the same burst would have arrived by now.
      await client.ping();
      return changes;
    },
    async [Symbol.asyncDispose]() {
      resources.close();
      await sessions.closeAll();
      await client.close();
      await server.close();
    },
  };
}

const open = (sessions: SessionRegistry, host: string) =>
  sessions.open({ host, port: 22, username: "alice", knownHosts: { files: [], policy: "strict" } } as never);

Deno.test("resources list the sessions and read each as JSON", async () => {
  await using t = await setup();
  assert.ok(t.client.getServerCapabilities()?.resources?.listChanged, "resources.listChanged is declared");
  assert.deepEqual((await t.client.listResources()).resources.map((r) => r.uri), ["ssh://sessions"]);
  const s = await open(t.sessions, "h1");
  s.shells.set("default", fakeShell("default"));
  s.forwards.set("f-1", fakeForward("f-1"));
  const listed = (await t.client.listResources()).resources;
  assert.deepEqual(listed.map((r) => [r.uri, r.mimeType]), [
    ["ssh://sessions", "application/json"],
    [`ssh://sessions/${s.id}`, "application/json"],
  ]);
  assert.equal(listed[1].title, "alice@h1:22");
  const all = await t.read("ssh://sessions");
  assert.equal(all.sessions.length, 1);
  assert.deepEqual(
    { ...all.sessions[0], connected_at: "", last_used_at: "" },
    {
      session_id: s.id,
      uri: `ssh://sessions/${s.id}`,
      host: "h1",
      port: 22,
      username: "alice",
      connected: true,
      connected_at: "",
      last_used_at: "",
      shells: ["default"],
      forwards: ["f-1"],
    },
  );
  const one = await t.read(`ssh://sessions/${s.id}`);
  assert.deepEqual(one.shells, [{ shell_id: "default", cols: 100, rows: 30, closed: false }]);
  assert.deepEqual(one.forwards, [
    { forward_id: "f-1", kind: "local", listen: { host: "127.0.0.1", port: 5555 }, target: { host: "db", port: 5432 } },
  ]);
  const templates = (await t.client.listResourceTemplates()).resourceTemplates;
  assert.deepEqual(templates.map((x) => x.uriTemplate), ["ssh://sessions/{id}"]);
});

Deno.test("reading an unknown or closed session's resource is a resource-not-found error", async () => {
  await using t = await setup();
  const s = await open(t.sessions, "h1");
  await t.sessions.close(s.id);
  for (const id of [s.id, "__proto__", "constructor", "s-nope"]) {
    await assert.rejects(
      t.client.readResource({ uri: `ssh://sessions/${id}` }),
      (e) => (e as { code?: number }).code === RESOURCE_NOT_FOUND,
      id,
    );
  }
});

Deno.test("list_changed is sent once per burst: session open, shell open, session close with all it owns", async () => {
  await using t = await setup();
  const s = await open(t.sessions, "h1");
  assert.equal(await t.nextChange(), 1);
  s.shells.set("default", fakeShell("default"));
  assert.equal(await t.nextChange(), 2);
  s.forwards.set("f-1", fakeForward("f-1"));
  s.forwards.set("f-2", fakeForward("f-2"));
  assert.equal(await t.nextChange(), 3, "two forwards in one tick: one notification");
  s.shells.delete("default");
  assert.equal(await t.nextChange(), 4);
  s.shells.set("a", fakeShell("a"));
  await t.nextChange();
  // The session, its shell and both forwards close: one notification.
  await t.sessions.close(s.id);
  assert.equal(await t.nextChange(), 6);
  assert.deepEqual((await t.read("ssh://sessions")).sessions, []);
});

Deno.test("a lost session stays listed as disconnected and its forwards are gone", async () => {
  await using t = await setup();
  const s = await open(t.sessions, "h1");
  await t.nextChange();
  s.forwards.set("f-1", fakeForward("f-1"));
  await t.nextChange();
  await s.connection.close(); // as a dropped connection reports itself
  await t.nextChange();
  const one = await t.read(`ssh://sessions/${s.id}`);
  assert.equal(one.connected, false);
  assert.equal(one.error, "connection closed");
  assert.deepEqual(one.forwards, []);
});

Deno.test("list_changed to a client that is gone does not throw into the change", async () => {
  await using t = await setup();
  await t.client.close();
  const s = await open(t.sessions, "h1");
  s.shells.set("default", fakeShell("default"));
  // A zero timer set after the coalescing one runs after it: the send to the gone client has been tried.
  await new Promise((resolve) => setTimeout(resolve, 0));
  await t.sessions.close(s.id);
});
