/**
 * Serving MCP over stdin/stdout, and exiting cleanly when the client goes.
 *
 * @module
 */

// @ts-types="@modelcontextprotocol/sdk/server/stdio"
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import process from "node:process";
import type { CreatedServer } from "../server.ts";
import type { Logger } from "../log.ts";

/** Largest JSON-RPC message accepted on stdin. */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * Connects the server to stdio and resolves once it has shut down: on stdin
 * EOF (the client went away), SIGINT or SIGTERM. Every SSH connection is
 * closed before it resolves.
 */
export async function serveStdio(created: CreatedServer, logger: Logger): Promise<void> {
  // The SDK's 10 MB default closes the transport on one oversized message,
  // which would end the server; above this size a message is not a sane tool call.
  const transport = new StdioServerTransport(process.stdin, process.stdout, { maxBufferSize: MAX_MESSAGE_BYTES });
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  let shuttingDown = false;
  const shutdown = async (why: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    logger.info(`Shutting down: ${why}`);
    try {
      await created.close();
    } catch (error) {
      logger.error(`Error during shutdown: ${error instanceof Error ? error.message : String(error)}`);
    }
    resolveDone();
  };
  // A client that closed our stdout cannot hear us any more: EPIPE must end
  // the server cleanly instead of escaping as an uncaught error.
  process.stdout.on("error", () => shutdown("stdout closed"));
  process.stdin.on("end", () => shutdown("stdin closed"));
  process.stdin.on("close", () => shutdown("stdin closed"));
  transport.onclose = () => shutdown("transport closed");
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT", "SIGBREAK"] : ["SIGINT", "SIGTERM"];
  const handlers = signals.map((sig) => {
    const handler = () => shutdown(sig);
    Deno.addSignalListener(sig, handler);
    return [sig, handler] as const;
  });
  await created.server.connect(transport);
  await done;
  for (const [sig, handler] of handlers) Deno.removeSignalListener(sig, handler);
}
