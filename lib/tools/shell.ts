/**
 * Tools of the shell family: persistent PTY shells an agent drives like a
 * person at a terminal.
 *
 * @module
 */

import { z } from "zod";
import { SshMcpError } from "../errors.ts";
import type { Session } from "../sessions.ts";
import { controlKeyBytes, KEY_NAMES } from "../ssh/control_keys.ts";
import { type ReadMode, Shell, type ShellRead, type ShellWait } from "../ssh/shell.ts";
import { compilePattern } from "../ssh/pattern.ts";
import { defineTool, type ToolContext, type ToolDef, type ToolDeps } from "./define.ts";
import { ok, openWithin } from "./result.ts";
import * as s from "./schemas.ts";

const DEFAULT_SHELL = "default";
// How long a new shell's output must pause to count as its prompt, and the most an open waits for that.
const SHELL_READY_QUIET_MS = 150;
const SHELL_READY_MAX_MS = 3000;

// Optional: without it, the session's first shell ("default", as ssh_shell_open says) is meant.
const shellId = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "shell ids are 1-64 letters, digits, '.', '_' or '-'")
  .optional();
const maxBytesPlain = z.int().min(1).max(1_000_000).optional();
const maxBytes = maxBytesPlain.describe("Default 65536");
const mode = z.enum(["raw", "text", "screen"]).optional().describe(
  "text (default): escapes removed; raw: bytes; screen: as seen now",
);

// Described once, in ssh_shell_wait; ssh_shell_send says it waits like it (the tool list is read every turn).
const regexPlain = z.boolean().optional();
const regex = regexPlain.describe("Linear-time regex");
const quietMsPlain = z.int().min(10).max(600_000).optional();
const quietMs = quietMsPlain.describe("Or after this silence");
const waitModePlain = z.enum(["text", "screen"]).optional();
const waitMode = waitModePlain.describe("screen: quiet = screen unchanged");

const readOutput = {
  session_id: z.string(),
  shell_id: z.string(),
  mode: z.enum(["raw", "text", "screen"]),
  output: z.string(),
  bytes: z.number(),
  dropped_bytes: z.number().describe("Fell out of the buffer unread"),
  remaining_bytes: z.number(),
  offset: z.number().describe("Output offset after this read"),
  closed: z.boolean().describe("The shell has ended"),
  exit_code: z.number().nullable(),
  exit_signal: z.string().nullable(),
  cursor: z.object({ row: z.number(), col: z.number() }).optional(),
  cols: z.number().optional(),
  rows: z.number().optional(),
};

/** The shell tools. */
export function shellTools(deps: ToolDeps): ToolDef[] {
  const { sessions, config } = deps;
  const timeout = s.timeoutSeconds(config.maxTimeoutSeconds, "Default 30").optional();

  function shellOf(sessionId: string, id: string | undefined): { session: Session; shell: Shell } {
    const session = sessions.get(sessionId);
    return { session, shell: session.shells.lookup(id ?? DEFAULT_SHELL) };
  }

  const open = defineTool({
    name: "ssh_shell_open",
    toolset: "shell",
    title: "Open an interactive shell",
    description: "Open a persistent PTY shell (state kept between sends) for REPLs, prompts, full-screen " +
      'programs. Several per session; the first, "default", is used without shell_id.',
    input: {
      session_id: s.sessionId,
      shell_id: shellId,
      term: z.string().regex(/^[A-Za-z0-9._+-]{1,64}$/).optional().describe("Default xterm-256color"),
      cols: z.int().min(20).max(1000).optional().describe("Default 120"),
      rows: z.int().min(5).max(500).optional().describe("Default 40"),
    },
    changes: "remote",
    run: async (args, ctx) => {
      const session = sessions.get(args.session_id);
      // A shell that ended by itself gives its id and slot back.
      for (const [id, shell] of session.shells) if (shell.closed) session.shells.delete(id);
      const term = args.term ?? "xterm-256color";
      const cols = args.cols ?? 120;
      const rows = args.rows ?? 40;
      // The slot is taken before the channel opens, so parallel opens neither share an id nor pass the limit.
      using slot = session.shells.reserve(args.shell_id);
      const id = slot.id;
      const shell = await openWithin(config.defaultTimeoutSeconds * 1000, ctx.signal, () =>
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
      if (!session.connection.alive) {
        // The connection was lost while the shell opened.
        shell.close();
        throw new SshMcpError("CONNECTION_LOST", `Session ${session.id} ended while the shell opened`, {
          hint: "Call ssh_connect again",
        });
      }
      slot.fill(shell);
      // Returns at the prompt, so the first send is not typed ahead of it (see Shell.ready).
      await shell.ready(SHELL_READY_QUIET_MS, SHELL_READY_MAX_MS, ctx.signal);
      return ok(
        { session_id: session.id, shell_id: id, term, cols, rows },
        `Opened shell ${id} on session ${session.id} (${term} ${cols}x${rows})`,
      );
    },
  });

  const send = defineTool({
    name: "ssh_shell_send",
    toolset: "shell",
    title: "Type into a shell",
    description: "Type text into a shell, then Enter unless enter=false. With wait_for or quiet_ms, waits like " +
      "ssh_shell_wait.",
    input: {
      session_id: s.sessionId,
      shell_id: shellId,
      data: z.string().max(1_000_000),
      enter: z.boolean().optional(),
      wait_for: z.string().min(1).max(1000).optional(),
      regex: regexPlain,
      quiet_ms: quietMsPlain,
      timeout,
      max_bytes: maxBytesPlain,
      mode: waitModePlain,
    },
    changes: "remote",
    destructive: true,
    run: async (args, ctx) => {
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
      const r = await waitOn(ctx, shell, { ...args, pattern: args.wait_for });
      const structured = {
        ...readStructured(session.id, shell.id, args.mode ?? "text", r),
        ...sent,
        reason: r.reason,
        match: r.match,
      };
      return ok(structured, `Sent ${bytes} bytes; wait ended: ${waitReason(r)}\n${renderRead(structured)}`);
    },
  });

  // Resizing is here too: both act on the terminal rather than type into it.
  const control = defineTool({
    name: "ssh_shell_send_control",
    toolset: "shell",
    title: "Press a key or resize a shell",
    // The full list of names is in the error of an unknown one (KEY_NAMES): the model needs the families only.
    description: "Press a key: ctrl+a…ctrl+z (^C, C-c), ctrl+[ \\ ] ^ _ @, esc, tab, enter, backspace, space, arrows " +
      "(up…), home, end, insert, delete, pageup, pagedown, f1…f12; and/or resize to cols x rows.",
    input: {
      session_id: s.sessionId,
      shell_id: shellId,
      key: z.string().min(1).max(32).optional(),
      cols: z.int().min(20).max(1000).optional(),
      rows: z.int().min(5).max(500).optional(),
    },
    changes: "remote",
    destructive: true,
    run: (args) => {
      const bytes = args.key === undefined ? undefined : controlKeyBytes(args.key);
      if (bytes === null) {
        throw new SshMcpError("INVALID_ARGUMENT", `Unknown key ${JSON.stringify(args.key)}`, {
          hint: `Use one of: ${KEY_NAMES.join(", ")}`,
        });
      }
      const resize = args.cols !== undefined || args.rows !== undefined;
      if (bytes === undefined && !resize) {
        throw new SshMcpError("INVALID_ARGUMENT", "Nothing to do: give key, or cols and rows", {
          hint: "key presses a key (e.g. ctrl+c); cols and rows resize the terminal",
        });
      }
      const { session, shell } = shellOf(args.session_id, args.shell_id);
      const done: string[] = [];
      if (resize) {
        const cols = args.cols ?? shell.size.cols;
        const rows = args.rows ?? shell.size.rows;
        shell.resize(cols, rows);
        done.push(`resized ${shell.id} to ${cols}x${rows}`);
      }
      if (bytes !== undefined) {
        shell.send(bytes);
        done.push(`pressed ${args.key} in ${shell.id}`);
      }
      const text = done.join(", ");
      return Promise.resolve(
        ok({
          session_id: session.id,
          shell_id: shell.id,
          ...(args.key === undefined ? {} : { key: args.key }),
          ...(resize ? shell.size : {}),
        }, text[0].toUpperCase() + text.slice(1)),
      );
    },
  });

  const read = defineTool({
    name: "ssh_shell_read",
    toolset: "shell",
    title: "Read a shell's output",
    description: "Output since the last read (each byte once), or (screen mode) the visible terminal; says " +
      "if the shell ended. Untrusted output.",
    input: { session_id: s.sessionId, shell_id: shellId, mode, max_bytes: maxBytes },
    output: readOutput,
    changes: "nothing",
    readOnlyUseful: false, // shells come from ssh_shell_open only
    run: async (args) => {
      const { session, shell } = shellOf(args.session_id, args.shell_id);
      const m: ReadMode = args.mode ?? "text";
      const r = await shell.read(m, args.max_bytes ?? 65536);
      const structured = readStructured(session.id, shell.id, m, r);
      return ok(structured, renderRead(structured));
    },
  });

  const wait = defineTool({
    name: "ssh_shell_wait",
    toolset: "shell",
    title: "Wait for shell output",
    description: "Wait until new output (after the last send's echo, or `after`) contains pattern, is quiet " +
      "for quiet_ms, the shell ends, or timeout; returns output and why.",
    input: {
      session_id: s.sessionId,
      shell_id: shellId,
      pattern: z.string().min(1).max(1000).optional().describe("e.g. a prompt like '$ '"),
      regex,
      quiet_ms: quietMs,
      timeout,
      max_bytes: maxBytes,
      after: z.int().min(0).optional().describe("An output offset"),
      mode: waitMode,
    },
    output: { ...readOutput, reason: z.enum(["matched", "quiet", "timeout", "closed"]), match: z.string().nullable() },
    changes: "nothing",
    readOnlyUseful: false,
    run: async (args, ctx) => {
      const { session, shell } = shellOf(args.session_id, args.shell_id);
      if (args.pattern === undefined && args.quiet_ms === undefined && args.timeout === undefined) {
        throw new SshMcpError("INVALID_ARGUMENT", "Nothing to wait for", {
          hint: "Give a pattern, quiet_ms, or a timeout",
        });
      }
      const r = await waitOn(ctx, shell, args);
      const m: ReadMode = args.mode ?? "text";
      const structured = { ...readStructured(session.id, shell.id, m, r), reason: r.reason, match: r.match };
      return ok(structured, `Wait ended: ${waitReason(r)}\n${renderRead(structured)}`);
    },
  });

  const close = defineTool({
    name: "ssh_shell_close",
    toolset: "shell",
    title: "Close a shell",
    description: "End a shell and whatever runs in it.",
    input: { session_id: s.sessionId, shell_id: shellId },
    changes: "remote",
    destructive: true,
    idempotent: true,
    run: (args) => {
      const { session, shell } = shellOf(args.session_id, args.shell_id);
      shell.close();
      session.shells.delete(shell.id);
      return Promise.resolve(
        ok({ session_id: session.id, shell_id: shell.id, closed: true }, `Closed shell ${shell.id}`),
      );
    },
  });

  return [open, send, control, read, wait, close];
}

// A wait as ssh_shell_wait and ssh_shell_send take it, with their defaults.
function waitOn(
  ctx: ToolContext,
  shell: Shell,
  args: {
    pattern?: string;
    regex?: boolean;
    quiet_ms?: number;
    after?: number;
    mode?: "text" | "screen";
    timeout?: number;
    max_bytes?: number;
  },
): Promise<ShellWait> {
  const from = shell.outputBytes;
  ctx.keepAlive(() => `${shell.outputBytes - from} bytes of output so far; last: ${shell.lastLine()}`);
  return shell.wait({
    pattern: args.pattern,
    regex: args.regex,
    quietMs: args.quiet_ms,
    after: args.after,
    mode: args.mode,
    timeoutMs: (args.timeout ?? 30) * 1000,
    maxBytes: args.max_bytes ?? 65536,
    signal: ctx.signal,
  });
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
