import assert from "node:assert/strict";
import { MCP_PATH, serveHttp } from "./http.ts";
import { parseFlags } from "../cli.ts";
import { resolveConfig } from "../config.ts";
import { createLogger } from "../log.ts";
import { createServer } from "../server.ts";

Deno.test("serveHttp() refuses a non-loopback address without TLS before it listens", async () => {
  await assert.rejects(
    serveHttp({
      transport: "streamable-http",
      host: "0.0.0.0",
      port: 0,
      token: "a-token-of-enough-length",
      allowedOrigins: [],
      maxBodyBytes: 1024,
      idleTimeoutMs: 1000,
      maxSessions: 1,
      initTimeoutMs: 1000,
      create: () => {
        throw new Error("no session may be created");
      },
      logger: createLogger("silent"),
    }),
    /refusing to listen on 0\.0\.0\.0 without TLS/,
  );
});

Deno.test("serveHttp() gives a session slot back when building the session's server fails", async () => {
  const config = resolveConfig(
    parseFlags(["--transport", "streamable-http", "--known-hosts", "/nonexistent/known_hosts"]),
    {},
    {
      home: undefined,
    },
  );
  const logger = createLogger("silent");
  let fail = true;
  const http = await serveHttp({
    transport: "streamable-http",
    host: "127.0.0.1",
    port: 0,
    token: "a-token-of-enough-length",
    allowedOrigins: [],
    maxBodyBytes: 64 * 1024,
    idleTimeoutMs: 60_000,
    maxSessions: 1,
    initTimeoutMs: 60_000,
    create: () => {
      if (fail) {
        fail = false;
        throw new Error("cannot build the server");
      }
      return createServer(config, logger);
    },
    logger,
  });
  const initialize = () =>
    fetch(`http://127.0.0.1:${http.port}${MCP_PATH}`, {
      method: "POST",
      headers: {
        Authorization: "Bearer a-token-of-enough-length",
        "Content-Type": "application/json",
        Accept: "application/json, text/event-stream",
      },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "initialize",
        params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "0" } },
      }),
    });
  try {
    const first = await initialize();
    await first.body?.cancel();
    assert.equal(first.ok, false, "the failed build answers an error");
    const second = await initialize();
    await second.body?.cancel();
    // With the slot lost, a cap of one would answer 503 here.
    assert.equal(second.status, 200);
  } finally {
    await http.shutdown();
  }
});
