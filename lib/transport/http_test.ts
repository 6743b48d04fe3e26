import assert from "node:assert/strict";
import { serveHttp } from "./http.ts";
import { createLogger } from "../log.ts";

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
