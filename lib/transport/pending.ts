/**
 * Which requests a transport has read but not yet seen answered: both
 * transports use it to know when the server is idle.
 *
 * @module
 */

// @ts-types="@modelcontextprotocol/sdk/types"
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";

/**
 * Keeps `pending` (ids of requests not yet answered) up to date with one
 * message: a request read adds its id; an answer sent, or a cancellation read
 * (the SDK sends nothing for a cancelled request), removes it.
 */
export function settle(pending: Set<string | number>, message: JSONRPCMessage, direction: "in" | "out"): void {
  if (direction === "in" && "method" in message) {
    if ("id" in message) pending.add(message.id);
    else if (message.method === "notifications/cancelled") {
      const id = (message.params as { requestId?: unknown } | undefined)?.requestId;
      if (typeof id === "string" || typeof id === "number") pending.delete(id);
    }
  } else if (direction === "out" && "id" in message && ("result" in message || "error" in message)) {
    if (message.id !== undefined) pending.delete(message.id);
  }
}
