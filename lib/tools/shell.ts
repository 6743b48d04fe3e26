/**
 * Tools of the shell family: persistent PTY shells an agent drives like a
 * person at a terminal.
 *
 * @module
 */

// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { SshMcpError } from "../errors.ts";
import type { Session } from "../sessions.ts";
import { controlKeyBytes, KEY_NAMES } from "../ssh/control_keys.ts";
import { type ReadMode, Shell, type ShellRead, type ShellWait } from "../ssh/shell.ts";
import type { ToolDeps } from "./mod.ts";
import { compilePattern } from "../ssh/pattern.ts";
import { guarded, ok, openWithin } from "./result.ts";
import * as s from "./schemas.ts";

const DEFAULT_SHELL = "default";
// Shell ids being opened, per session: an id is taken before the channel
// opens, so parallel opens neither share an id nor slip past the limit.
const opening = new WeakMap<Session, Set<string>>();
const MAX_SHELLS_PER_SESSION = 8;

const shellId = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "shell ids are 1-64 letters, digits, '.', '_' or '-'")
  .optional().describe(`Shell id from ssh_shell_open (default "${DEFAULT_SHELL}")`);
const maxBytes = z.int().min(1).max(1_000_000).optional()
  .describe("Most bytes of output to return (default 65536); the rest stays unread");
const mode = z.enum(["raw", "text", "screen"]).optional().describe(
  "text (default): escape sequences removed, \\r overwrites applied; raw: bytes as sent; " +
    "screen: the terminal as a person sees it now (rows of text and the cursor), for full-screen programs",
);

const regex = z.boolean().optional().describe(
  "Treat pattern as a JavaScript regular expression (flag m: ^ and $ match at line ends), run by a " +
    "linear-time engine: backreferences, lookahead/lookbehind and repeating a part that can match empty " +
    "text, like (a*)*, are refused",
);
const quietMs = z.int().min(10).max(600_000).optional().describe("Also return after this much silence");
const waitMode = z.enum(["text", "screen"]).optional().describe("screen: quiet = screen unchanged; returns it");

const readOutput = {
  session_id: z.string(),
  shell_id: z.string(),
  mode: z.enum(["raw", "text", "screen"]),
  output: z.string(),
  bytes: z.number().describe("Bytes of output this read consumed"),
  dropped_bytes: z.number().describe("Bytes that arrived unread but fell out of the buffer"),
  remaining_bytes: z.number().describe("Unread bytes left after this read (byte limit reached)"),
  offset: z.number().describe("Output offset after this read"),
  closed: z.boolean().describe("The shell has ended"),
  exit_code: z.number().nullable(),
  exit_signal: z.string().nullable(),
  cursor: z.object({ row: z.number(), col: z.number() }).optional().describe("screen mode: 0-based cursor"),
  cols: z.number().optional(),
  rows: z.number().optional(),
};

/** Registers the shell tools. */
export function registerShellTools(server: McpServer, deps: ToolDeps): void {
  const { sessions, config } = deps;

  function shellOf(sessionId: string, id: string | undefined): { session: Session; shell: Shell } {
    const session = sessions.get(sessionId);
    const name = id ?? DEFAULT_SHELL;
    const shell = session.shells.get(name);
    if (shell === undefined) {
      throw new SshMcpError("SHELL_NOT_FOUND", `Session ${sessionId} has no shell ${JSON.stringify(name)}`, {
        hint: "Open one with ssh_shell_open (its shell_id is returned)",
      });
    }
    return { session, shell };
  }

  server.registerTool(
    "ssh_shell_open",
    {
      title: "Open an interactive shell",
      description: "Open a persistent interactive shell on a PTY: state (cwd, variables, running programs) persists " +
        "between sends. Use for REPLs, prompts, full-screen programs and long builds; use ssh_execute for one-shot " +
        'commands. A session can hold several shells; without shell_id the first is named "default".',
      inputSchema: {
        session_id: s.sessionId,
        shell_id: shellId,
        term: z.string().regex(/^[A-Za-z0-9._+-]{1,64}$/).optional().describe("TERM (default xterm-256color)"),
        cols: z.int().min(20).max(1000).optional().describe("Columns (default 120)"),
        rows: z.int().min(5).max(500).optional().describe("Rows (default 40)"),
      },
      outputSchema: {
        session_id: z.string(),
        shell_id: z.string(),
        term: z.string(),
        cols: z.number(),
        rows: z.number(),
      },
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
    },
    guarded(async (args, extra) => {
      const session = sessions.get(args.session_id);
      for (const [id, shell] of session.shells) if (shell.closed) session.shells.delete(id);
      const pending = opening.get(session) ?? new Set<string>();
      opening.set(session, pending);
      const taken = (name: string) => session.shells.has(name) || pending.has(name);
      let id = args.shell_id;
      if (id === undefined) {
        id = DEFAULT_SHELL;
        for (let n = 2; taken(id); n++) id = `shell-${n}`;
      } else if (taken(id)) {
        throw new SshMcpError("INVALID_ARGUMENT", `Shell ${JSON.stringify(id)} is already open`, {
          hint: "Use it, close it with ssh_shell_close, or choose another shell_id",
        });
      }
      if (session.shells.size + pending.size >= MAX_SHELLS_PER_SESSION) {
        throw new SshMcpError("SHELL_LIMIT", `Session ${session.id} already has ${MAX_SHELLS_PER_SESSION} shells`, {
          hint: "Close shells you no longer need with ssh_shell_close",
        });
      }
      const term = args.term ?? "xterm-256color";
      const cols = args.cols ?? 120;
      const rows = args.rows ?? 40;
      pending.add(id);
      let shell: Shell;
      try {
        shell = await openWithin(config.defaultTimeoutSeconds * 1000, extra.signal, () =>
          new SshMcpError(
            "CHANNEL_OPEN_FAILED",
            `No channel for shell ${
              JSON.stringify(id)
            } on session ${session.id} within ${config.defaultTimeoutSeconds} s`,
            { hint: "Every channel of the session is taken: close shells you no longer need, or reconnect" },
          ), (signal) =>
          Shell.open(session.connection, id, {
            term,
            cols,
            rows,
            bufferBytes: config.shellBufferBytes,
            signal, // the call's cancel or the deadline stops the wait for a channel slot
          }));
      } finally {
        pending.delete(id);
      }
      if (!session.connection.alive) {
        // The session was closed or lost while the shell opened.
        shell.close();
        throw new SshMcpError("CONNECTION_LOST", `Session ${session.id} ended while the shell opened`, {
          hint: "Call ssh_connect again",
        });
      }
      session.shells.set(id, shell);
      return ok(
        { session_id: session.id, shell_id: id, term, cols, rows },
        `Opened shell ${id} on session ${session.id} (${term} ${cols}x${rows})`,
      );
    }),
  );

  server.registerTool(
    "ssh_shell_send",
    {
      title: "Type into a shell",
      description: "Send text to a shell as if typed, followed by Enter unless enter=false. With wait_for or " +
        "quiet_ms, waits like ssh_shell_wait; else returns at once.",
      inputSchema: {
        session_id: s.sessionId,
        shell_id: shellId,
        data: z.string().max(1_000_000).describe("Text to type"),
        enter: z.boolean().optional().describe("Press Enter after the text (default true)"),
        wait_for: z.string().min(1).max(1000).optional().describe("Then wait for this, as ssh_shell_wait's pattern"),
        regex,
        quiet_ms: quietMs,
        timeout: s.timeoutSeconds(config.maxTimeoutSeconds, "Longest wait (default 30)").optional(),
        max_bytes: maxBytes,
        mode: waitMode,
      },
      outputSchema: {
        ...partial(readOutput),
        session_id: z.string(),
        shell_id: z.string(),
        sent_bytes: z.number(),
        sent_at: z.number().describe("Output offset when sent"),
        reason: z.enum(["matched", "quiet", "timeout", "closed"]).optional(),
        match: z.string().nullable().optional(),
      },
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
    },
    guarded(async (args, extra) => {
      const { session, shell } = shellOf(args.session_id, args.shell_id);
      const text = args.data + (args.enter === false ? "" : "\r");
      // Compiled before sending: a refused pattern must not leave the text sent.
      if (args.wait_for !== undefined && args.regex === true) compilePattern(args.wait_for);
      const sentAt = shell.send(text);
      const bytes = new TextEncoder().encode(text).length;
      const sent = { session_id: session.id, shell_id: shell.id, sent_bytes: bytes, sent_at: sentAt };
      if (args.wait_for === undefined && args.quiet_ms === undefined) {
        return ok(sent, `Sent ${bytes} bytes to ${shell.id}`);
      }
      const r = await shell.wait({
        pattern: args.wait_for,
        regex: args.regex,
        quietMs: args.quiet_ms,
        mode: args.mode,
        timeoutMs: (args.timeout ?? 30) * 1000,
        maxBytes: args.max_bytes ?? 65536,
        signal: extra.signal,
      });
      const structured = {
        ...readStructured(session.id, shell.id, args.mode ?? "text", r),
        ...sent,
        reason: r.reason,
        match: r.match,
      };
      return ok(structured, `Sent ${bytes} bytes; wait ended: ${waitReason(r)}\n${renderRead(structured)}`);
    }),
  );

  server.registerTool(
    "ssh_shell_send_control",
    {
      title: "Press a control key in a shell",
      description: `Press a key in a shell: ${KEY_NAMES.join(", ")}. For example ctrl+c interrupts, ctrl+d ends ` +
        "input, esc then :q quits vi.",
      inputSchema: {
        session_id: s.sessionId,
        shell_id: shellId,
        key: z.string().min(1).max(32).describe("Key name, e.g. ctrl+c, esc, up, pagedown, f2"),
      },
      outputSchema: { session_id: z.string(), shell_id: z.string(), key: z.string() },
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
    },
    guarded((args) => {
      const bytes = controlKeyBytes(args.key);
      if (bytes === null) {
        throw new SshMcpError("INVALID_ARGUMENT", `Unknown key ${JSON.stringify(args.key)}`, {
          hint: `Use one of: ${KEY_NAMES.join(", ")}`,
        });
      }
      const { session, shell } = shellOf(args.session_id, args.shell_id);
      shell.send(bytes);
      return Promise.resolve(
        ok({ session_id: session.id, shell_id: shell.id, key: args.key }, `Pressed ${args.key} in ${shell.id}`),
      );
    }),
  );

  server.registerTool(
    "ssh_shell_read",
    {
      title: "Read a shell's output",
      description: "Return the output that arrived since the last read (each byte is returned once), or in screen " +
        "mode the whole visible terminal. Says how many bytes were dropped if the buffer overflowed, and whether the " +
        "shell has ended (with its exit status).",
      inputSchema: { session_id: s.sessionId, shell_id: shellId, mode, max_bytes: maxBytes },
      outputSchema: readOutput,
      annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: false, openWorldHint: false },
    },
    guarded(async (args) => {
      const { session, shell } = shellOf(args.session_id, args.shell_id);
      const m: ReadMode = args.mode ?? "text";
      const r = await shell.read(m, args.max_bytes ?? 65536);
      const structured = readStructured(session.id, shell.id, m, r);
      return ok(structured, renderRead(structured));
    }),
  );

  server.registerTool(
    "ssh_shell_wait",
    {
      title: "Wait for shell output",
      description: "Wait until the unread output contains `pattern` (plain text, or a regular expression with " +
        "regex=true), or no output has arrived for quiet_ms, or the shell ends, or `timeout` seconds pass; then return " +
        "the output (as text) and why the wait ended. Only output after the last send and its echo counts.",
      inputSchema: {
        session_id: s.sessionId,
        shell_id: shellId,
        pattern: z.string().min(1).max(1000).optional().describe("Text to wait for, e.g. a prompt like '$ '"),
        regex,
        quiet_ms: quietMs,
        timeout: s.timeoutSeconds(config.maxTimeoutSeconds, "Longest wait (default 30)").optional(),
        max_bytes: maxBytes,
        after: z.int().min(0).optional().describe("Match only output past this offset (default: the last send)"),
        mode: waitMode,
      },
      outputSchema: {
        ...readOutput,
        reason: z.enum(["matched", "quiet", "timeout", "closed"]),
        match: z.string().nullable(),
      },
      annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: false, openWorldHint: false },
    },
    guarded(async (args, extra) => {
      const { session, shell } = shellOf(args.session_id, args.shell_id);
      if (args.pattern === undefined && args.quiet_ms === undefined && args.timeout === undefined) {
        throw new SshMcpError("INVALID_ARGUMENT", "Nothing to wait for", {
          hint: "Give a pattern, quiet_ms, or a timeout",
        });
      }
      const r = await shell.wait({
        pattern: args.pattern,
        regex: args.regex,
        quietMs: args.quiet_ms,
        after: args.after,
        mode: args.mode,
        timeoutMs: (args.timeout ?? 30) * 1000,
        maxBytes: args.max_bytes ?? 65536,
        signal: extra.signal,
      });
      const m: ReadMode = args.mode ?? "text";
      const structured = { ...readStructured(session.id, shell.id, m, r), reason: r.reason, match: r.match };
      return ok(structured, `Wait ended: ${waitReason(r)}\n${renderRead(structured)}`);
    }),
  );

  server.registerTool(
    "ssh_shell_resize",
    {
      title: "Resize a shell's terminal",
      description: "Change the PTY size; the program in the shell is told (SIGWINCH).",
      inputSchema: {
        session_id: s.sessionId,
        shell_id: shellId,
        cols: z.int().min(20).max(1000),
        rows: z.int().min(5).max(500),
      },
      outputSchema: { session_id: z.string(), shell_id: z.string(), cols: z.number(), rows: z.number() },
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    guarded((args) => {
      const { session, shell } = shellOf(args.session_id, args.shell_id);
      shell.resize(args.cols, args.rows);
      return Promise.resolve(
        ok(
          { session_id: session.id, shell_id: shell.id, cols: args.cols, rows: args.rows },
          `Resized ${shell.id} to ${args.cols}x${args.rows}`,
        ),
      );
    }),
  );

  server.registerTool(
    "ssh_shell_close",
    {
      title: "Close a shell",
      description: "End a shell and whatever runs in it.",
      inputSchema: { session_id: s.sessionId, shell_id: shellId },
      outputSchema: { session_id: z.string(), shell_id: z.string(), closed: z.boolean() },
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
    },
    guarded((args) => {
      const { session, shell } = shellOf(args.session_id, args.shell_id);
      shell.close();
      session.shells.delete(shell.id);
      return Promise.resolve(
        ok({ session_id: session.id, shell_id: shell.id, closed: true }, `Closed shell ${shell.id}`),
      );
    }),
  );
}

// The read fields, each optional: a send without a wait has none of them.
function partial<T extends Record<string, z.ZodType>>(shape: T): { [K in keyof T]: z.ZodOptional<T[K]> } {
  return Object.fromEntries(Object.entries(shape).map(([k, v]) => [k, v.optional()])) as {
    [K in keyof T]: z.ZodOptional<T[K]>;
  };
}

function readStructured(sessionId: string, id: string, m: ReadMode, r: ShellRead) {
  return {
    session_id: sessionId,
    shell_id: id,
    mode: m,
    output: r.output,
    bytes: r.bytes,
    dropped_bytes: r.droppedBytes,
    remaining_bytes: r.remainingBytes,
    offset: r.offset,
    closed: r.closed,
    exit_code: r.exitCode,
    exit_signal: r.exitSignal,
    ...(r.screen ? { cursor: r.screen.cursor, cols: r.screen.cols, rows: r.screen.rows } : {}),
  };
}

function renderRead(r: ReturnType<typeof readStructured>): string {
  const notes: string[] = [];
  if (r.dropped_bytes > 0) notes.push(`${r.dropped_bytes} bytes were dropped before this read (buffer full)`);
  if (r.remaining_bytes > 0) notes.push(`${r.remaining_bytes} more bytes unread`);
  if (r.closed) {
    notes.push(
      `shell ended${
        r.exit_code !== null ? ` with exit status ${r.exit_code}` : r.exit_signal ? ` by ${r.exit_signal}` : ""
      }`,
    );
  }
  if (r.cursor) notes.push(`screen ${r.cols}x${r.rows}, cursor row ${r.cursor.row} col ${r.cursor.col}`);
  return (notes.length ? `[${notes.join("; ")}]\n` : "") + r.output;
}

function waitReason(r: ShellWait): string {
  switch (r.reason) {
    case "matched":
      return `matched ${JSON.stringify(r.match)}`;
    case "quiet":
      return "output went quiet";
    case "timeout":
      return "timed out";
    case "closed":
      return "the shell ended";
  }
}
