/**
 * Tools as data: one {@linkcode ToolDef} per tool (name, toolset, what it
 * changes, input, optional output, handler) and the one context every
 * handler gets. The list of tools, the toolset and read-only selection and
 * the compact `tools/list` are in mod.ts; `tools/call` is in dispatch.ts.
 *
 * @module
 */

import type { z } from "zod";
import { SshMcpError } from "../errors.ts";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import type { OutputStore } from "../output_store.ts";
import type { LocalRoots } from "../roots.ts";
import type { Session, SessionRegistry } from "../sessions.ts";
import type { ToolSuccess } from "./result.ts";
import { neutralise } from "../remote_text.ts";

/** How often a long call reports progress: well inside any client's request timeout. */
export const PROGRESS_EVERY_MS = 2000;

export type { Toolset };

import type { Toolset } from "../toolsets.ts";
import type { HostPolicy } from "../policy.ts";

/** What the client declared about elicitation in `initialize`, as far as it is read here. */
export interface ClientElicitationCapability {
  /** Present when the client answers `elicitation/create`; `{}` means form mode only. */
  elicitation?: { form?: object; url?: object };
}

/** What tools need from the rest of the server. */
export interface ToolDeps {
  sessions: SessionRegistry;
  config: Config;
  logger: Logger;
  /** The local roots of this server instance; local file tools read them from here, not from config. */
  roots: LocalRoots;
  /** Cut command output kept by output_id (one store for the whole process, under one budget). */
  outputs: OutputStore;
  /** The client's capabilities once it has initialized (whether it can answer elicitation). */
  clientCapabilities?: () => ClientElicitationCapability | undefined;
  /** Host policies and approval (./guard.ts); undefined: none apply. */
  guard?: CallGuard;
}

/** Where a call is to run: a session's host, or the host a connect is about to reach. */
export interface AdmissionTarget {
  host: string;
  port: number;
  username: string;
  /** The session, once there is one (for "remember", which is per session). */
  sessionId?: string;
}

/** One call's admission to one host (./guard.ts `Guard.admit`). */
export interface Admission {
  tool: ToolDef;
  /** The call's arguments, valid; `timeout` may be lowered to the host's cap. */
  args: Record<string, unknown>;
  target: AdmissionTarget;
  extra: RequestExtra;
}

/** Host policies and approval as tools use them; ./guard.ts is the one there is. */
export interface CallGuard {
  /** Admits a call to a host, asking a person where its policy says so; throws a coded refusal. */
  admit(admission: Admission): Promise<void>;
  /** The policy of the host `session` is connected to. */
  policyOf(session: Session): HostPolicy;
}

/** What the SDK hands a request handler, as far as tools use it. */
export interface RequestExtra {
  signal: AbortSignal;
  _meta?: { progressToken?: string | number };
  // deno-lint-ignore no-explicit-any
  sendNotification: (notification: any) => Promise<void>;
  // deno-lint-ignore no-explicit-any
  sendRequest: (request: any, schema: any, options?: any) => Promise<any>;
}

/** What a handler gets besides its arguments. */
export interface ToolContext {
  /**
   * Aborts when the client cancels the call, or when the connection of a
   * session looked up with {@linkcode ToolContext.session} is lost; the
   * reason is a coded {@linkcode SshMcpError}.
   */
  readonly signal: AbortSignal;
  /** The session `id`, whose loss from now on also aborts {@linkcode ToolContext.signal}. */
  session(id: string): Session;
  /** Sends `notifications/progress` when the client asked for it (a progress token); else nothing. */
  progress(done: number, total?: number, message?: string): void;
  /** Resolves when the last progress notification was written, so it reaches the client before the result. */
  progressSent(): Promise<void>;
  /**
   * While the call runs, sends progress every {@linkcode PROGRESS_EVERY_MS}
   * (elapsed seconds as the progress, `describe()` as the message) when the
   * client asked for progress, so a client that resets its timeout on
   * progress keeps waiting for long work. Stops when the call ends.
   */
  keepAlive(describe: () => string): void;
  readonly logger: Logger;
  /** The SDK's request context, for requests back to the client (`roots/list`). */
  readonly extra: RequestExtra;
  /**
   * Applies the host policy (and approval) of `session` to this call; for a
   * tool that finds its hosts itself (ssh_execute_many). A call with a
   * `session_id` argument has been admitted to that session's host before it runs.
   */
  admit(target: AdmissionTarget): Promise<void>;
}

/**
 * One tool. `changes` is what calling it can change: `nothing`, `local`
 * (this machine's files), `remote` (the servers it reaches); it sets the MCP
 * annotations. `--read-only` offers the tools that change nothing, and the
 * `connect` toolset whatever it changes (nothing works without a session).
 * `readOnlyUseful` is false for read tools that act only on what a write
 * tool made (reading a shell needs a shell opened), which read-only mode
 * therefore leaves out.
 */
export interface ToolDef<I extends z.ZodRawShape = z.ZodRawShape> {
  name: string;
  toolset: Toolset;
  title: string;
  description: string;
  input: I;
  /** Only where a client gains from typed results (exec, list, stat, read, job status). */
  output?: z.ZodRawShape;
  changes: "nothing" | "local" | "remote";
  /** Replaces or deletes data (MCP destructiveHint); meaningful when `changes` is not `nothing`. */
  destructive?: boolean;
  /** Calling twice with the same arguments does no more than once (MCP idempotentHint). */
  idempotent?: boolean;
  readOnlyUseful?: boolean;
  run(args: z.infer<z.ZodObject<I>>, ctx: ToolContext): Promise<ToolSuccess<object>>;
}

/** Declares a tool; the type parameter ties `run`'s arguments to `input`. */
export function defineTool<I extends z.ZodRawShape>(def: ToolDef<I>): ToolDef {
  return def as unknown as ToolDef;
}

/**
 * The context of one call. `close()` must run when the handler is done: it
 * stops watching the sessions the call looked up.
 */
export function toolContext(
  extra: RequestExtra,
  options: { sessions: SessionRegistry; logger: Logger; admit?: (target: AdmissionTarget) => Promise<void> },
): ToolContext & { close(): void } {
  const { sessions, logger } = options;
  const stop = new AbortController();
  const offs: (() => void)[] = [];
  const onCancel = () => stop.abort(new SshMcpError("CANCELLED", "The client cancelled the call"));
  if (extra.signal.aborted) onCancel();
  else extra.signal.addEventListener("abort", onCancel, { once: true });
  offs.push(() => extra.signal.removeEventListener("abort", onCancel));
  const token = extra._meta?.progressToken;
  let sent: Promise<void> = Promise.resolve();
  const progress = (done: number, total?: number, message?: string) => {
    if (token === undefined) return;
    sent = extra.sendNotification({
      method: "notifications/progress",
      // The message may quote remote output: escaped like every text a model reads.
      params: { progressToken: token, progress: done, total, message: message && neutralise(message) },
    }).catch(() => {}); // a client gone mid-call is not this call's failure
  };
  return {
    signal: stop.signal,
    logger,
    extra,
    session(id) {
      const session = sessions.get(id);
      offs.push(session.connection.onClose((reason) =>
        stop.abort(
          reason ?? new SshMcpError("CONNECTION_LOST", `Session ${id} lost its connection`, {
            hint: "Call ssh_connect again",
          }),
        )
      ));
      return session;
    },
    progress,
    progressSent: () => sent,
    admit: options.admit ?? (() => Promise.resolve()),
    keepAlive(describe) {
      if (token === undefined) return;
      const started = performance.now();
      const timer = setInterval(() => {
        const seconds = Math.round((performance.now() - started) / 100) / 10;
        progress(seconds, undefined, `${Math.round(seconds)} s: ${describe()}`);
      }, PROGRESS_EVERY_MS);
      offs.push(() => clearInterval(timer));
    },
    close() {
      for (const off of offs.splice(0)) off();
    },
  };
}
