/**
 * The server factory: an McpServer with every tool, and a close that ends
 * every SSH connection. Does no I/O until used.
 *
 * @module
 */

// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
// @ts-types="@modelcontextprotocol/sdk/types"
import { RootsListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { VERSION } from "./cli.ts";
import type { Config } from "./config.ts";
import type { Logger } from "./log.ts";
import { LocalRoots } from "./roots.ts";
import { SessionRegistry } from "./sessions.ts";
import { ToolServer } from "./tools/dispatch.ts";
import { registerTools } from "./tools/mod.ts";

/** A ready server and the way to shut it down. */
export interface CreatedServer {
  server: McpServer;
  sessions: SessionRegistry;
  /** The local roots of this instance (configured, or the client's, or the working directory). */
  roots: LocalRoots;
  /** Closes the MCP server and every SSH session. */
  close(): Promise<void>;
}

/** Builds the MCP server with all tools registered. */
export function createServer(config: Config, logger: Logger): CreatedServer {
  // Its own tools/call (dispatch.ts): an own-name lookup, coded argument errors, no NUL sent.
  const server = new ToolServer(
    { name: "mcp-remote-ssh", version: VERSION },
    {
      instructions: "SSH sessions for agents. Call ssh_connect first; it returns a session_id used by every other " +
        "tool. Errors start with a [CODE] and end with a Hint to act on.",
    },
  );
  const sessions = new SessionRegistry({ maxSessions: config.maxSessions, logger });
  // Per instance: each client (each HTTP session) may send its own roots.
  const roots = new LocalRoots({
    configured: config.localRoots,
    off: config.localFilesOff,
    workingDir: config.workingDir,
    clientRoots: config.clientRoots,
    home: config.home,
    logger,
  });
  roots.attach(
    server.server,
    (handler) => server.server.setNotificationHandler(RootsListChangedNotificationSchema, handler),
  );
  registerTools(server, { sessions, config, logger, roots });
  return {
    server,
    sessions,
    roots,
    async close() {
      await sessions.closeAll();
      await server.close();
    },
  };
}
