import assert from "node:assert/strict";
// @ts-types="@modelcontextprotocol/sdk/client/index"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="@modelcontextprotocol/sdk/inMemory"
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
// @ts-types="@modelcontextprotocol/sdk/types"
import { type LoggingMessageNotification, LoggingMessageNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { parseFlags } from "./cli.ts";
import { resolveConfig } from "./config.ts";
import { ClientLog, type ClientLogMessage, type Logger, silentLogger } from "./log.ts";
import { createServer } from "./server.ts";

function recording(): { log: ClientLog; sent: ClientLogMessage[] } {
  const sent: ClientLogMessage[] = [];
  const log = new ClientLog((m) => {
    sent.push(m);
    return Promise.resolve();
  });
  return { log, sent };
}

Deno.test("ClientLog sends nothing before the client sets a level", () => {
  const { log, sent } = recording();
  const logger = log.wrap(silentLogger);
  logger.error("boom");
  logger.info("hello");
  assert.deepEqual(sent, []);
  assert.equal(log.level, null);
});

Deno.test("ClientLog sends messages at or above the level, named as RFC 5424 names them", () => {
  const { log, sent } = recording();
  const logger = log.wrap(silentLogger);
  log.setLevel("warning");
  logger.debug("d");
  logger.info("i");
  logger.warn("w", { session_id: "s-1" });
  logger.error("e");
  assert.deepEqual(sent, [
    { level: "warning", logger: "mcp-remote-ssh", data: { session_id: "s-1", message: "w" } },
    { level: "error", logger: "mcp-remote-ssh", data: { message: "e" } },
  ]);
  log.setLevel("debug");
  logger.debug("d");
  assert.equal(sent.at(-1)?.level, "debug");
  log.setLevel("emergency");
  logger.error("e2");
  assert.equal(sent.length, 3);
});

Deno.test("ClientLog a field cannot replace the message", () => {
  const { log, sent } = recording();
  log.setLevel("info");
  log.wrap(silentLogger).info("real", { message: "forged" });
  assert.equal(sent[0].data.message, "real");
});

Deno.test("ClientLog escapes remote text (a server's disconnect reason) in the message and in fields", () => {
  const { log, sent } = recording();
  log.setLevel("debug");
  const hostile = "\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\u202eevil\u009b";
  log.wrap(silentLogger).warn(`SSH u@h:22: ${hostile}`, { reason: hostile, port: 22 });
  const data = sent[0].data as Record<string, unknown>;
  assert.equal(data.message, "SSH u@h:22: \\x1b]52;c;cm0gLXJmIH4=\\x07\\x1b[2J\\u202eevil\\x9b");
  assert.equal(data.reason, "\\x1b]52;c;cm0gLXJmIH4=\\x07\\x1b[2J\\u202eevil\\x9b");
  assert.equal(data.port, 22);
});

Deno.test("ClientLog still writes every message to the base logger, and the base logger first", () => {
  const order: string[] = [];
  const base: Logger = {
    debug: (m) => order.push(`base ${m}`),
    info: (m) => order.push(`base ${m}`),
    warn: (m) => order.push(`base ${m}`),
    error: (m) => order.push(`base ${m}`),
  };
  const log = new ClientLog((m) => {
    order.push(`client ${m.data.message}`);
    return Promise.resolve();
  });
  const logger = log.wrap(base);
  logger.debug("before");
  log.setLevel("debug");
  logger.info("after");
  assert.deepEqual(order, ["base before", "base after", "client after"]);
});

Deno.test("ClientLog a send that throws or rejects (client gone) never reaches the caller", async () => {
  const throwing = new ClientLog(() => {
    throw new Error("Not connected");
  });
  throwing.setLevel("debug");
  throwing.wrap(silentLogger).error("x");
  const rejecting = new ClientLog(() => Promise.reject(new Error("stream closed")));
  rejecting.setLevel("debug");
  rejecting.wrap(silentLogger).error("x");
  // An unhandled rejection would fail this test once the microtasks have run.
  await new Promise((resolve) => setTimeout(resolve, 0));
});

Deno.test("ClientLog stop() ends the sending", () => {
  const { log, sent } = recording();
  log.setLevel("debug");
  log.stop();
  log.wrap(silentLogger).error("x");
  assert.deepEqual(sent, []);
});

// Two server instances, as over HTTP (one per client): each client hears its own instance only.
Deno.test("createServer() log messages reach only the client of the instance that logged, after setLevel", async () => {
  const config = resolveConfig(parseFlags(["--known-hosts", "/nonexistent/known_hosts"]), {}, { home: undefined });
  const instances = await Promise.all([0, 1].map(async () => {
    const created = createServer(config, silentLogger);
    const [a, b] = InMemoryTransport.createLinkedPair();
    await created.server.connect(a);
    const client = new Client({ name: "c", version: "0" });
    const heard: LoggingMessageNotification["params"][] = [];
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
      heard.push(n.params);
    });
    await client.connect(b);
    return { created, client, heard };
  }));
  const [one, two] = instances;
  try {
    assert.ok(one.client.getServerCapabilities()?.logging, "the logging capability is declared");
    one.created.logger.error("before any level");
    await one.client.setLoggingLevel("info");
    await two.client.setLoggingLevel("debug");
    one.created.logger.debug("too low for one");
    one.created.logger.info("for one", { session_id: "s-1" });
    // A round trip: every notification sent before it has been delivered.
    await Promise.all(instances.map((i) => i.client.ping()));
    assert.deepEqual(one.heard, [
      { level: "info", logger: "mcp-remote-ssh", data: { session_id: "s-1", message: "for one" } },
    ]);
    assert.deepEqual(two.heard, []);
    await assert.rejects(one.client.setLoggingLevel("loud" as "info"), /Invalid/i);
  } finally {
    for (const i of instances) {
      await i.client.close();
      await i.created.close();
    }
  }
  // Closed: logging now must neither throw nor send.
  one.created.logger.error("after close");
});
