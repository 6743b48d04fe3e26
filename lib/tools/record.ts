/**
 * Every tools/call into the audit log (../audit/mod.ts): one line per call,
 * unknown tools, refused arguments, policy refusals and cancellations
 * included, written before the client gets the result.
 *
 * Failing closed: while the log cannot be written (a failed write latches
 * it), a call is refused with AUDIT_FAILED before anything runs, and that
 * refusal is itself offered to the log, so the first line that can be
 * written again reopens the server. A call whose own line cannot be written
 * has already run: the client gets AUDIT_FAILED in place of its result, saying
 * so, and nothing further runs until the log works.
 *
 * Calls in flight at shutdown: the log is closed only after
 * {@linkcode drainAuditCalls} has let every running call finish and write its
 * line; a call that does not finish in time gets a line saying it was still
 * running (`CANCELLED`), and writes none of its own later. Only a process
 * killed outright (SIGKILL, a crash) leaves its running calls unrecorded.
 *
 * @module
 */

// @ts-types="@modelcontextprotocol/sdk/types"
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { AuditEntry, AuditLog } from "../audit/mod.ts";
import { SshMcpError, toToolResult } from "../errors.ts";
import type { SessionRegistry } from "../sessions.ts";
import type { CallObserver, ObservedCall } from "./dispatch.ts";
import type { Guard } from "./guard.ts";

/** Options of {@linkcode auditCalls}. */
export interface AuditCallsOptions {
  /** Where a call's `session_id` says which host, port and user it went to. */
  sessions: SessionRegistry;
  /** Where the call's approval decision is found, when policies are on. */
  guard?: Guard;
}

/**
 * An observer (for `ToolServer.observeCalls`) that records every call in `log`.
 *
 * @param log The process's audit log.
 * @param options Where session details and approval decisions come from.
 * @returns The observer.
 */
export function auditCalls(log: AuditLog, options: AuditCallsOptions): CallObserver {
  return async (call, run) => {
    const startedAt = new Date();
    const started = performance.now();
    // Looked up first: ssh_close_session ends the session it names.
    const where = targetOf(call, options.sessions);
    const failure = log.failure;
    const { promise: released, resolve: release } = Promise.withResolvers<void>();
    const running: Running = {
      abandoned: false,
      released,
      // What drainAuditCalls writes if this call is still running when the log must close.
      abandon: () => ({
        ...where,
        startedAt,
        durationMs: Math.round(performance.now() - started),
        approval: options.guard?.decisionOf(call.extra),
        transportSession: call.extra.sessionId ?? "stdio",
        tool: call.name.slice(0, 256),
        arguments: call.args ?? {},
        outcome: "error",
        code: "CANCELLED",
        note: "still running when the server shut down; its outcome is unknown",
      }),
    };
    const tracked = trackedOf(log);
    tracked.add(running);
    try {
      let result = failure === null ? await run() : toToolResult(
        new SshMcpError(
          "AUDIT_FAILED",
          `Refused: the audit log cannot be written (${failure}); nothing runs unrecorded`,
          {
            retryable: false,
          },
        ),
      );
      // Its line is already written; a second would say the call ran twice.
      if (running.abandoned) return result;
      // From here to append() nothing awaits: a drain that finds this call
      // released finds its line already queued in the log.
      tracked.delete(running);
      release();
      const entry = entryOf(call, result, {
        ...where,
        ...connected(call.name, result),
        startedAt,
        durationMs: Math.round(performance.now() - started),
        approval: options.guard?.decisionOf(call.extra),
      });
      try {
        await log.append(entry);
      } catch (error) {
        if (failure !== null) return result;
        result = toToolResult(
          new SshMcpError(
            "AUDIT_FAILED",
            `${call.name} ran, but its audit record could not be written (${
              describe(error)
            }); its result is withheld ` +
              "and nothing more runs until the audit log can be written",
            { retryable: false, cause: error },
          ),
        );
      }
      return result;
    } finally {
      tracked.delete(running);
      release();
    }
  };
}

/** A call that has started and whose line is not yet queued. */
interface Running {
  /** Set once drainAuditCalls has written this call's line for it. */
  abandoned: boolean;
  /** Resolves when the call has queued its line (or ended without one, having been abandoned). */
  released: Promise<void>;
  /** The line for this call if it must be recorded before it ends. */
  abandon(): AuditEntry;
}

// Per log, not per server instance: over HTTP every client's instance shares
// the process's one log, and the log closes once, after all of them.
const inFlight = new WeakMap<AuditLog, Set<Running>>();

function trackedOf(log: AuditLog): Set<Running> {
  let set = inFlight.get(log);
  if (set === undefined) inFlight.set(log, set = new Set());
  return set;
}

/** Options of {@linkcode drainAuditCalls}. */
export interface DrainOptions {
  /**
   * How long to wait for running calls to finish, in milliseconds.
   * @default 3000
   */
  timeoutMs?: number;
}

/**
 * Waits until every call recorded in `log` that is still running has ended
 * and queued its line; after `timeoutMs`, writes a line for each call still
 * running (outcome `error`, code `CANCELLED`, a `note` that its outcome is
 * unknown), whose own line is then never written. Call it after the
 * transport has ended (so no call starts) and before `log.close()`.
 *
 * @param log The log the calls are recorded in.
 * @param options How long to wait.
 * @returns How many calls were recorded as still running.
 *
 * @example
 * ```ts
 * await drainAuditCalls(log, { timeoutMs: 3000 });
 * await log.close();
 * ```
 */
export async function drainAuditCalls(log: AuditLog, options: DrainOptions = {}): Promise<number> {
  const tracked = trackedOf(log);
  const deadline = AbortSignal.timeout(options.timeoutMs ?? 3000);
  const expired = new Promise<void>((resolve) => deadline.addEventListener("abort", () => resolve(), { once: true }));
  // Again while calls remain: one may have started while the others ended.
  while (tracked.size > 0 && !deadline.aborted) {
    await Promise.race([expired, Promise.all([...tracked].map((running) => running.released))]);
  }
  const left = [...tracked];
  tracked.clear();
  await Promise.allSettled(left.map((running) => {
    running.abandoned = true;
    return log.append(running.abandon());
  }));
  return left.length;
}

interface Where {
  sshSession?: string;
  host?: string;
  port?: number;
  user?: string;
}

/** The session the call names, and where it is connected. */
function targetOf(call: ObservedCall, sessions: SessionRegistry): Where {
  const args = call.args as Record<string, unknown> | undefined;
  if (args === null || typeof args !== "object") return {};
  if (typeof args.session_id === "string") {
    const session = sessions.find(args.session_id);
    if (session === undefined) return { sshSession: args.session_id.slice(0, 64) };
    const { host, port, username } = session.connection.info;
    return { sshSession: session.id, host, port, user: username };
  }
  if (call.name === "ssh_connect" || call.name === "ssh_diagnose") {
    // As asked; a result replaces it with where the connection went (connected()).
    return {
      host: typeof args.host === "string" ? args.host.slice(0, 1024) : undefined,
      port: typeof args.port === "number" ? args.port : undefined,
      user: typeof args.username === "string" ? args.username.slice(0, 256) : undefined,
    };
  }
  return {};
}

/**
 * For a successful ssh_connect: the new session and where it really goes (after ssh_config); for an
 * ssh_diagnose result (a failed login is a result too): where the login went, once the target resolved.
 */
function connected(tool: string, result: CallToolResult): Where {
  const s = result.structuredContent as Record<string, unknown> | undefined;
  if (result.isError === true || s === undefined) return {};
  if (tool === "ssh_diagnose") {
    if (typeof s.host !== "string") return {};
    return { host: s.host, port: Number(s.port), user: String(s.username) };
  }
  if (tool !== "ssh_connect") return {};
  return {
    sshSession: String(s.session_id),
    host: String(s.host),
    port: Number(s.port),
    user: String(s.username),
  };
}

function entryOf(
  call: ObservedCall,
  result: CallToolResult,
  fields: Where & Pick<AuditEntry, "startedAt" | "durationMs" | "approval">,
): AuditEntry {
  const s = (result.structuredContent ?? {}) as Record<string, unknown>;
  const code = result.isError === true ? (result._meta as { code?: unknown } | undefined)?.code : undefined;
  return {
    ...fields,
    transportSession: call.extra.sessionId ?? "stdio",
    tool: call.name.slice(0, 256),
    arguments: call.args ?? {},
    outcome: result.isError === true ? "error" : "ok",
    ...(result.isError === true ? { code: typeof code === "string" ? code : "INTERNAL" } : {}),
    ...("exit_code" in s ? { exitCode: s.exit_code as number | null } : {}),
    ...(typeof s.signal === "string" ? { signal: s.signal } : {}),
    ...bytesOf(call, s),
  };
}

/** Bytes sent to the host and received from it, as far as the call's result tells. */
function bytesOf(call: ObservedCall, s: Record<string, unknown>): Pick<AuditEntry, "bytesIn" | "bytesOut"> {
  const args = (call.args ?? {}) as Record<string, unknown>;
  const utf8 = (v: unknown) => typeof v === "string" ? new TextEncoder().encode(v).length : undefined;
  const num = (v: unknown) => typeof v === "number" ? v : undefined;
  switch (call.name) {
    case "ssh_execute":
    case "ssh_sudo_execute":
      return {
        bytesIn: utf8(args.stdin),
        bytesOut: typeof s.stdout_bytes === "number" ? s.stdout_bytes + (num(s.stderr_bytes) ?? 0) : undefined,
      };
    case "ssh_upload_file":
      return { bytesIn: num(s.bytes) };
    case "ssh_download_file":
    case "ssh_read_remote_file":
    case "ssh_shell_read":
    case "ssh_shell_wait":
      return { bytesOut: num(s.bytes) };
    case "ssh_write_remote_file":
      return { bytesIn: num(s.bytes) };
    case "ssh_shell_send":
      return { bytesIn: utf8(args.data) };
    default:
      return {};
  }
}

function describe(error: unknown): string {
  return error instanceof SshMcpError ? error.message : error instanceof Error ? error.message : String(error);
}
