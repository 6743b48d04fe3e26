/**
 * The MCP face of the server: every tool, registered from an explicit list.
 *
 * @module
 */

// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import type { LocalRoots } from "../roots.ts";
import type { SessionRegistry } from "../sessions.ts";
import { registerConnectionTools } from "./connection.ts";
import { registerExecTools } from "./exec.ts";
import { registerShellTools } from "./shell.ts";
import { registerFileTools } from "./files.ts";
import { registerForwardTools } from "./forward.ts";

/** What tools need from the rest of the server. */
export interface ToolDeps {
  sessions: SessionRegistry;
  config: Config;
  logger: Logger;
  /** The local roots of this server instance; local file tools read them from here, not from config. */
  roots: LocalRoots;
}

/** Registers every tool on `server`. */
export function registerTools(server: McpServer, deps: ToolDeps): void {
  registerConnectionTools(server, deps);
  registerExecTools(server, deps);
  registerShellTools(server, deps);
  registerFileTools(server, deps);
  registerForwardTools(server, deps);
}
