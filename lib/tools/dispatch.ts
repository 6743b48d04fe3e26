/**
 * The server's own `tools/call`: every tool is looked up, its arguments
 * checked and its failures coded here, in one place.
 *
 * The SDK's McpServer (1.32) does the same with three flaws this replaces:
 * it looks the name up in a plain object, so `toString` or `constructor`
 * found Object.prototype and answered "Tool toString disabled"; its argument
 * errors are uncoded text ("Input validation error: ...") where every other
 * failure of this server says `[CODE]`; and `arguments` that is not an
 * object failed its request schema before any handler and came back -32603
 * (typescript-sdk#2284). Here the lookup is a Map, invalid arguments are
 * `[INVALID_ARGUMENT]` naming each field (a tool execution error, as MCP
 * 2025-11-25 classifies input validation), and the request schema is checked
 * by the SDK's Server wrapper, which answers -32602.
 *
 * Before the schema, one rule for every tool: a string that will become part
 * of a command line, a path, an environment variable, a name or an address
 * may not hold NUL. SSH and SFTP carry those as C strings: sshd takes a NUL in
 * an exec request as a malformed packet and drops the whole connection, with
 * every shell, forward and call on it. The rule is deny by default, so a field
 * added later is covered; the few fields whose value travels as channel or
 * file data, where NUL is a byte like any other, are listed in
 * {@linkcode NUL_CARRIERS}.
 *
 * After the handler, one rule for every result: its text content is what a
 * model (and whoever watches the transcript) reads, and much of it came from
 * the remote machine — command output, file content, file names, remote
 * paths quoted in errors. Every text item, of success and error results
 * alike, goes through {@linkcode neutralise}, so escape sequences, C1 and
 * bidi controls arrive as visible escapes and never act. `structuredContent`
 * is left byte for byte as the handler made it: it is the exact data, and
 * the place to find it.
 *
 * @module
 */

// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer, type RegisteredTool, type ToolCallback } from "@modelcontextprotocol/sdk/server/mcp.js";
// @ts-types="@modelcontextprotocol/sdk/server/zod-compat"
import type { AnySchema, ZodRawShapeCompat } from "@modelcontextprotocol/sdk/server/zod-compat.js";
// @ts-types="@modelcontextprotocol/sdk/types"
import type { CallToolResult, ToolAnnotations } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { SshMcpError, toToolResult } from "../errors.ts";
import { neutralise } from "../remote_text.ts";

/**
 * Fields whose text travels as data (a channel's stdin, keystrokes, file
 * content), where a NUL byte arrives as sent and costs nothing:
 * - `ssh_execute.stdin`: bytes written to the command's stdin.
 * - `ssh_shell_send.data`: keystrokes on a PTY; NUL is Ctrl-@ (Ctrl-Space),
 *   a real key (emacs set-mark), the same byte `ssh_shell_send_control ctrl+@` sends.
 * - `ssh_write_remote_file.content`, `ssh_edit_remote_file.old_text/new_text`:
 *   file content over SFTP write, which is binary-safe.
 * - `ssh_shell_wait.pattern`, `ssh_shell_send.wait_for`: matched here against
 *   the shell's output (which may hold NUL, e.g. from `find -print0`), never sent.
 */
export const NUL_CARRIERS: Readonly<Record<string, readonly string[]>> = {
  ssh_execute: ["stdin"],
  ssh_shell_send: ["data", "wait_for"],
  ssh_shell_wait: ["pattern"],
  ssh_write_remote_file: ["content"],
  ssh_edit_remote_file: ["old_text", "new_text"],
};

/**
 * Fields that must be one line: `sudo -S` reads the password up to the first
 * line break and takes the next line as a second attempt.
 */
export const ONE_LINE: Readonly<Record<string, readonly string[]>> = {
  ssh_sudo_execute: ["password"],
};

// The request as the SDK's Server wrapper gets it; that wrapper checks it
// against CallToolRequestSchema and answers -32602 when it does not fit.
// Protocol's own parse (which would throw a bare ZodError, -32603) sees only this.
const ToolCallRequest = z.object({ method: z.literal("tools/call"), params: z.unknown().optional() });

/** What {@linkcode ToolServer.registerTool} takes, as McpServer declares it. */
interface ToolConfig<I, O> {
  title?: string;
  description?: string;
  inputSchema?: I;
  outputSchema?: O;
  annotations?: ToolAnnotations;
  _meta?: Record<string, unknown>;
}

/** One tools/call as {@linkcode CallObserver} sees it, before it runs. */
export interface ObservedCall {
  /** The tool's name as the client sent it (perhaps no tool of ours). */
  name: string;
  /** The arguments as the client sent them, unchecked. */
  args: unknown;
  /** The SDK's request context (its session id over HTTP; the same object the handler gets). */
  extra: { sessionId?: string; signal: AbortSignal };
}

/**
 * Sees every tools/call whole, unknown tools and refused arguments included:
 * `run` answers the call; the observer returns what the client gets (./record.ts).
 */
export type CallObserver = (call: ObservedCall, run: () => Promise<CallToolResult>) => Promise<CallToolResult>;

/**
 * An McpServer whose `tools/call` is the one described in this module; tools
 * are registered as on McpServer and listed by it.
 */
export class ToolServer extends McpServer {
  #tools = new Map<string, RegisteredTool>();
  #observer: CallObserver | undefined;

  /** Puts `observer` around every later tools/call (one at most: the audit log). */
  observeCalls(observer: CallObserver): void {
    this.#observer = observer;
  }

  /** Registers a tool, as McpServer.registerTool does, and keeps it for `tools/call`. */
  override registerTool<
    OutputArgs extends ZodRawShapeCompat | AnySchema,
    InputArgs extends undefined | ZodRawShapeCompat | AnySchema = undefined,
  >(name: string, config: ToolConfig<InputArgs, OutputArgs>, cb: ToolCallback<InputArgs>): RegisteredTool {
    const tool = super.registerTool(name, config, cb);
    if (this.#tools.size === 0) {
      // McpServer installed its handler with the first tool; this one replaces it.
      this.server.setRequestHandler(
        ToolCallRequest,
        async (request, extra) => {
          const params = request.params as { name?: unknown; arguments?: unknown } | undefined;
          const run = () => this.#call(request.params, extra);
          const observer = this.#observer;
          const result = observer === undefined
            ? await run()
            : await observer({ name: String(params?.name), args: params?.arguments, extra }, run);
          return neutralisedText(result);
        },
      );
    }
    this.#tools.set(name, tool);
    return tool;
  }

  async #call(raw: unknown, extra: Parameters<ToolCallback<ZodRawShapeCompat>>[1]): Promise<CallToolResult> {
    // Checked against CallToolRequestSchema by the SDK's Server wrapper before this runs.
    const params = raw as { name: string; arguments?: Record<string, unknown> };
    const tool = this.#tools.get(params.name);
    if (tool === undefined || !tool.enabled) {
      return toToolResult(
        new SshMcpError("INVALID_ARGUMENT", `Unknown tool ${JSON.stringify(params.name)}`, {
          hint: "tools/list names every tool this server has",
        }),
      );
    }
    try {
      const args = await this.#arguments(params.name, tool, params.arguments ?? {});
      const handler = tool.handler as (args: unknown, extra: unknown) => Promise<CallToolResult>;
      const result = await handler(args, extra);
      if (result.isError !== true && tool.outputSchema !== undefined) {
        const out = await (tool.outputSchema as z.ZodType).safeParseAsync(result.structuredContent);
        if (!out.success) {
          throw new SshMcpError("INTERNAL", `${params.name} returned a result its output schema refuses`, {
            hint: `This is a bug in mcp-remote-ssh: ${issuesText(out.error.issues)}`,
          });
        }
      }
      return result;
    } catch (error) {
      return toToolResult(error);
    }
  }

  async #arguments(name: string, tool: RegisteredTool, args: Record<string, unknown>): Promise<unknown> {
    const unsendable = unsendableFields(name, args);
    if (unsendable.length > 0) {
      throw new SshMcpError("INVALID_ARGUMENT", `Invalid arguments for ${name}: ${unsendable.join("; ")}`, {
        hint: "Nothing was sent. Remove the NUL (or line break) from the fields named; " +
          "SSH carries commands, paths, names and environment variables as C strings",
      });
    }
    if (tool.inputSchema === undefined) return undefined;
    const parsed = await (tool.inputSchema as z.ZodType).safeParseAsync(args);
    if (!parsed.success) {
      const hints = parsed.error.issues.flatMap((i) => {
        const hint = i.code === "custom" ? (i.params as { hint?: unknown } | undefined)?.hint : undefined;
        return typeof hint === "string" ? [hint] : [];
      });
      throw new SshMcpError("INVALID_ARGUMENT", `Invalid arguments for ${name}: ${issuesText(parsed.error.issues)}`, {
        hint: [...hints, "Fix the fields named; tools/list gives each field's type and limits"].join(". "),
      });
    }
    return parsed.data;
  }
}

/**
 * `result` with each text content item, and the hint in `_meta`, passed
 * through {@linkcode neutralise}; everything else, `structuredContent` first,
 * as it was. A result with nothing to escape comes back as the same object.
 *
 * @param result A tool result, success or error.
 * @returns The result as the client gets it.
 *
 * @example
 * ```ts
 * neutralisedText({ content: [{ type: "text", text: "\x1b[2J" }] }).content; // [{ type: "text", text: "\\x1b[2J" }]
 * ```
 */
export function neutralisedText(result: CallToolResult): CallToolResult {
  let changed = false;
  const content = result.content.map((item) => {
    if (item.type !== "text") return item;
    const text = neutralise(item.text);
    if (text === item.text) return item;
    changed = true;
    return { ...item, text };
  });
  const hint = result._meta?.hint;
  const shownHint = typeof hint === "string" ? neutralise(hint) : hint;
  if (shownHint !== hint) changed = true;
  if (!changed) return result;
  return { ...result, content, ...(shownHint !== hint ? { _meta: { ...result._meta, hint: shownHint } } : {}) };
}

/**
 * Every field of `args` (nested ones and object keys included) that holds a
 * character its tool cannot send, as "field: why". Empty when all can be sent.
 *
 * @param tool The tool's name, which selects the fields allowed to carry NUL.
 * @param args The arguments as the client sent them.
 * @returns One entry per refused field.
 *
 * @example
 * ```ts
 * unsendableFields("ssh_execute", { command: "ls\0", stdin: "a\0b" }); // ["command: contains NUL (U+0000), ..."]
 * ```
 */
export function unsendableFields(tool: string, args: Record<string, unknown>): string[] {
  const carriers = new Set(Object.hasOwn(NUL_CARRIERS, tool) ? NUL_CARRIERS[tool] : []);
  const oneLine = new Set(Object.hasOwn(ONE_LINE, tool) ? ONE_LINE[tool] : []);
  const found: string[] = [];
  const visit = (value: unknown, path: string, top: string, depth: number) => {
    if (typeof value === "string") {
      if (value.includes("\0") && !carriers.has(top)) {
        found.push(`${path}: contains NUL (U+0000), which SSH cannot carry here`);
      } else if (oneLine.has(top) && /[\r\n]/.test(value)) {
        found.push(`${path}: must be one line (no CR or LF)`);
      }
      return;
    }
    // Deeper than any schema of this server goes: the schema refuses the shape anyway.
    if (value === null || typeof value !== "object" || depth > 8) return;
    for (const [key, inner] of Object.entries(value)) {
      const at = path === "" ? shown(key) : `${path}.${shown(key)}`;
      if (key.includes("\0")) found.push(`${at}: the name contains NUL (U+0000)`);
      visit(inner, at, path === "" ? key : top, depth + 1);
    }
  };
  visit(args, "", "", 0);
  return found;
}

// A key as it can be read in a message: as is when plain, else JSON-quoted, and short.
function shown(key: string): string {
  const text = /^[A-Za-z0-9_-]*$/.test(key) ? key : JSON.stringify(key);
  return text.length > 60 ? text.slice(0, 60) + "…" : text;
}

// "field.sub: message" for each issue; a field is named by its path, so an
// agent knows which one to fix.
function issuesText(issues: readonly z.core.$ZodIssue[]): string {
  return issues.slice(0, 8).map((i) => {
    const path = i.path.map((p) => shown(String(p))).join(".");
    return path === "" ? i.message : `${path}: ${i.message}`;
  }).join("; ") + (issues.length > 8 ? `; and ${issues.length - 8} more` : "");
}
