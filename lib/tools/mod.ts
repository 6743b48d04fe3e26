/**
 * The MCP face of the server: every tool, from one list of definitions
 * (define.ts), selected by toolset and read-only mode, listed compactly.
 *
 * @module
 */

// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
// @ts-types="@modelcontextprotocol/sdk/types"
import { ListToolsRequestSchema, type Tool } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { connectionTools } from "./connection.ts";
import {
  type AdmissionTarget,
  type RequestExtra,
  toolContext,
  type ToolDef,
  type ToolDeps,
  type Toolset,
} from "./define.ts";
import { execTools } from "./exec.ts";
import { sessionTarget } from "./guard.ts";
import { fanoutTools } from "./fanout.ts";
import { Jobs, jobTools } from "./jobs.ts";
import { fileTools } from "./files.ts";
import { forwardTools } from "./forward.ts";
import { shellTools } from "./shell.ts";
import { preparePatches } from "../ssh2/mod.ts";
import type { Logger } from "../log.ts";

/** Which tools a server instance offers. */
export interface ToolSelection {
  /** Toolsets switched on; `connect` is on whatever this says. Undefined: all. */
  toolsets?: readonly Toolset[];
  /** Only tools that change nothing (see {@linkcode ToolDef}). */
  readOnly?: boolean;
}

/** Every tool of the server, in the order tools/list shows them. */
export function allTools(deps: ToolDeps): ToolDef[] {
  const jobs = new Jobs(deps.config, deps.outputs, deps.guard);
  return [
    ...connectionTools(deps),
    ...execTools(deps, jobs),
    ...fanoutTools(deps),
    ...jobTools(deps, jobs),
    ...shellTools(deps),
    ...fileTools(deps),
    ...forwardTools(deps),
  ];
}

/** The tools `selection` keeps, in order. */
export function selectTools(tools: readonly ToolDef[], selection: ToolSelection): ToolDef[] {
  const sets = new Set<Toolset>(selection.toolsets ?? tools.map((t) => t.toolset));
  sets.add("connect");
  const readOnlyKeeps = (t: ToolDef) =>
    t.toolset === "connect" || (t.changes === "nothing" && t.readOnlyUseful !== false);
  return tools.filter((t) => sets.has(t.toolset) && (!selection.readOnly || readOnlyKeeps(t)));
}

/** Registers the selected tools on `server` and answers `tools/list` with their compact form. */
export function registerTools(server: McpServer, deps: ToolDeps): void {
  const tools = selectTools(allTools(deps), { toolsets: deps.config.toolsets, readOnly: deps.config.readOnly });
  for (const tool of tools) {
    server.registerTool(
      tool.name,
      {
        title: tool.title,
        description: tool.description,
        inputSchema: tool.input,
        outputSchema: tool.output,
        annotations: annotations(tool),
      },
      async (args: unknown, extra: RequestExtra) => {
        const { guard } = deps;
        const values = args as Record<string, unknown>;
        const admit = guard && ((target: AdmissionTarget) => guard.admit({ tool, args: values, target, extra }));
        const ctx = toolContext(extra, { sessions: deps.sessions, logger: deps.logger, admit });
        try {
          // A session that is gone gets its own error from the handler; nothing to admit it to.
          const session = typeof values?.session_id === "string" ? deps.sessions.find(values.session_id) : undefined;
          if (admit !== undefined && session?.connection.alive) await admit(sessionTarget(session));
          return await tool.run(args as never, ctx);
        } finally {
          ctx.close();
        }
      },
    );
  }
  // Built at the first tools/list, not at start: `initialize` does not wait for it.
  let listed: Tool[] | undefined;
  server.server.setRequestHandler(ListToolsRequestSchema, () => {
    if (listed === undefined) preloadSsh2(deps.logger);
    return { tools: listed ??= tools.map(listedTool) };
  });
}

/**
 * Loads ssh2 and runs the self-tests of its repairs while the client is still
 * reading the tool list, so neither start-up nor the first ssh_connect waits
 * for them (~70 ms of module evaluation and ~50-100 ms of self-tests on a
 * quiet machine). Later: the answer is written first, since evaluating ssh2
 * holds the thread. A failure here is left to the first connect, which loads
 * again and reports it; the self-tests' outcome is kept and reused by it.
 */
function preloadSsh2(logger: Logger): void {
  setTimeout(() => preparePatches(logger).catch(() => {}), PRELOAD_DELAY_MS);
}
const PRELOAD_DELAY_MS = 50;

function annotations(tool: ToolDef) {
  const readOnly = tool.changes === "nothing";
  return {
    readOnlyHint: readOnly,
    ...(readOnly ? {} : { destructiveHint: tool.destructive ?? false }),
    idempotentHint: tool.idempotent ?? readOnly,
    openWorldHint: true,
  };
}

/**
 * A tool as tools/list shows it. The input schema keeps what a model needs
 * to call the tool right (types, enums, required fields, numeric ranges,
 * descriptions) and leaves out the defensive caps every field has (string
 * lengths and patterns, the safe-integer maximum): those are still enforced
 * by the same zod schema on every call and named in `[INVALID_ARGUMENT]`,
 * but listing them would cost every conversation ~2 KB per turn for limits
 * no sensible call reaches.
 */
export function listedTool(tool: ToolDef): Tool {
  const inputSchema = compactSchema(z.toJSONSchema(z.object(tool.input), { target: "draft-7", io: "input" }));
  return {
    name: tool.name,
    title: tool.title,
    description: tool.description,
    inputSchema: inputSchema as Tool["inputSchema"],
    ...(tool.output === undefined ? {} : {
      outputSchema: z.toJSONSchema(z.object(tool.output), {
        target: "draft-7",
        io: "output",
      }) as Tool["outputSchema"],
    }),
    annotations: annotations(tool),
  };
}

const DROPPED = new Set(["$schema", "minLength", "maxLength", "pattern", "default"]);

function isStringType(node: unknown): boolean {
  return node !== null && typeof node === "object" && Object.keys(node).length === 1 &&
    (node as { type?: unknown }).type === "string";
}

function compactSchema(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(compactSchema);
  if (node === null || typeof node !== "object") return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    if (DROPPED.has(key)) continue;
    if (
      (key === "maximum" && value === Number.MAX_SAFE_INTEGER) ||
      (key === "minimum" && value === -Number.MAX_SAFE_INTEGER)
    ) continue;
    // JSON object keys are strings whatever a schema says: this one says nothing.
    if (key === "propertyNames" && isStringType(value)) continue;
    out[key] = key === "properties"
      ? Object.fromEntries(Object.entries(value as object).map(([k, v]) => [k, compactSchema(v)]))
      : compactSchema(value);
  }
  return out;
}
