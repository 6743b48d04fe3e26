/**
 * Serving MCP over stdin/stdout, and exiting cleanly when the client goes.
 *
 * @module
 */

import type { CreatedServer } from "../server.ts";
import type { Logger } from "../log.ts";
import { DenoStdioTransport } from "./deno_stdio.ts";
import { onShutdownSignal } from "./signals.ts";

/** Largest JSON-RPC message accepted on stdin. */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * Connects the server to stdio and resolves once it has shut down: on stdin
 * EOF or a closed stdout (the client went away), SIGINT or SIGTERM. Every
 * SSH connection is closed before it resolves.
 */
export async function serveStdio(created: CreatedServer, logger: Logger): Promise<void> {
  // Above this size a message is not a sane tool call; the SDK's own 10 MB
  // default would end the server on a 10 MB command instead of refusing it.
  const transport = new DenoStdioTransport({ maxMessageBytes: MAX_MESSAGE_BYTES });
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
  transport.onclose = () => shutdown(transport.closeReason ?? "transport closed");
  transport.onerror = (error) => logger.warn(`MCP transport: ${error.message}`);
  const unsubscribe = onShutdownSignal((sig) => shutdown(sig));
  await created.server.connect(transport);
  await done;
  unsubscribe();
}
