/**
 * ssh_execute_many: one command on many hosts at once, results grouped.
 *
 * A target is an open session or a host; a host gets a temporary session
 * (credentials from the server's ssh-agent and configuration), closed once
 * its command ended, unless a session to the same user@host:port is already
 * open: the command then runs there and the result says so. Each host is
 * run as ssh_execute runs a command (execCommand: timeout and cancel kill
 * the remote process group); one host's failure is its own result, never
 * the call's. Grouping and the text are in ../fanout.ts.
 *
 * @module
 */

import { z } from "zod";
import { SshMcpError } from "../errors.ts";
import {
  countResults,
  type FanoutTarget,
  groupResults,
  hostLabel,
  type HostResult,
  parseTarget,
  summarise,
  targetProblem,
} from "../fanout.ts";
import type { Session } from "../sessions.ts";
import { execCommand, type ExecResult } from "../ssh/exec.ts";
import { sessionTarget } from "./guard.ts";
import { type AdmissionTarget, defineTool, type ToolContext, type ToolDef, type ToolDeps } from "./define.ts";
import { refuseWindows } from "./exec.ts";
import { ok } from "./result.ts";
import * as s from "./schemas.ts";

const MAX_TARGETS = 50;
/** Per stream and host: fifty hosts' output must stay a readable result. */
const DEFAULT_OUTPUT_BYTES = 4096;

const target = z.string().min(1).max(300).superRefine((value, ctx) => {
  const why = targetProblem(value);
  if (why !== null) ctx.addIssue({ code: "custom", message: why });
});

const hostResult = z.object({
  target: z.string(),
  host: z.string().describe("user@host:port"),
  session_id: z.string().optional(),
  reused_session: z.boolean().optional().describe("A host target ran on an open session to it"),
  exit_code: z.number().nullable(),
  signal: z.string().nullable(),
  timed_out: z.boolean(),
  stdout: z.string(),
  stderr: z.string(),
  truncated: z.boolean(),
  stdout_bytes: z.number(),
  stderr_bytes: z.number(),
  output_id: z.string().optional(),
  duration_ms: z.number(),
  error_code: z.string().optional(),
  error: z.string().optional(),
});

/** The fan-out tool. */
export function fanoutTools(deps: ToolDeps): ToolDef[] {
  const { config, sessions, outputs, logger } = deps;
  const defaultOutput = Math.min(DEFAULT_OUTPUT_BYTES, config.maxOutputBytes);

  const executeMany = defineTool({
    name: "ssh_execute_many",
    toolset: "exec",
    title: "Run a command on many hosts",
    description: "Run one command on many targets at once: session ids, ~/.ssh/config aliases or " +
      "[user@]host[:port] (connected, then closed). Identical results grouped; each host fails alone.",
    input: {
      targets: z.array(target).min(1).max(MAX_TARGETS)
        .refine((list) => new Set(list).size === list.length, "targets must not repeat"),
      command: z.string().min(1).max(131072),
      timeout: s.timeoutSeconds(
        config.maxTimeoutSeconds,
        `Per host; default ${config.defaultTimeoutSeconds}`,
      )
        .optional(),
      concurrency: z.int().min(1).max(32).optional().describe("Hosts at once; default 8"),
      max_output_bytes: z.int().min(1024).max(config.maxOutputBytes).optional()
        .describe(`Per host; default ${defaultOutput}`),
    },
    output: {
      results: z.array(hostResult).describe("In the order of targets"),
      groups: z.array(z.object({
        targets: z.array(z.string()),
        exit_code: z.number().nullable(),
        signal: z.string().optional(),
        error_code: z.string().optional(),
        same_output: z.literal(true),
      })),
      hosts: z.number(),
      ok: z.number(),
      nonzero: z.number().describe("Non-zero exit or signal"),
      failed: z.number().describe("Error, timeout included"),
      duration_ms: z.number(),
    },
    changes: "remote",
    destructive: true,
    run: async (args, ctx) => {
      const started = performance.now();
      const parsed = args.targets.map(parseTarget);
      const timeoutMs = (args.timeout ?? config.defaultTimeoutSeconds) * 1000;
      const options: HostRun = {
        command: args.command,
        timeoutMs,
        maxOutputBytes: args.max_output_bytes ?? defaultOutput,
      };
      const results: HostResult[] = new Array(parsed.length);
      let next = 0;
      let done = 0;
      // A fixed number of workers, each taking the next target: never more than `concurrency` hosts at once.
      const worker = async () => {
        while (next < parsed.length && !ctx.signal.aborted) {
          const i = next++;
          results[i] = await runHost(args.targets[i], parsed[i], options, ctx);
          done++;
          ctx.progress(done, parsed.length, `${done} of ${parsed.length} hosts done`);
        }
      };
      await Promise.all(Array.from({ length: Math.min(args.concurrency ?? 8, parsed.length) }, worker));
      // Every host's command is killed and every temporary session closed by now.
      if (ctx.signal.aborted) throw ctx.signal.reason;
      await ctx.progressSent();
      const durationMs = Math.round(performance.now() - started);
      return ok(
        {
          results,
          groups: groupResults(results).map((g) => g.group),
          ...countResults(results),
          duration_ms: durationMs,
        },
        summarise(results, durationMs),
      );
    },
  });

  interface HostRun {
    command: string;
    timeoutMs: number;
    maxOutputBytes: number;
  }

  // One host, start to end; every failure becomes its result.
  async function runHost(text: string, target: FanoutTarget, run: HostRun, ctx: ToolContext): Promise<HostResult> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    let label = target.kind === "session"
      ? (sessions.find(target.sessionId)?.connection.info ?? null)
      : { username: target.username ?? config.localUser ?? "?", host: target.host, port: target.port ?? 22 };
    let session: Session | undefined;
    let temporary = false;
    let reused = false;
    try {
      // The host's policy, and a person's yes where it asks for one; the person's time is not the host's.
      let waited = 0;
      const admit = async (where: AdmissionTarget) => {
        const asking = performance.now();
        await ctx.admit(where);
        waited += performance.now() - asking;
      };
      if (target.kind === "session") {
        session = sessions.get(target.sessionId);
        await admit(sessionTarget(session));
      } else {
        const request = {
          host: target.host,
          port: target.port,
          username: target.username,
          // The host's timeout covers the connect; the configured connect timeout still bounds it.
          connectTimeoutSeconds: Math.min(config.connectTimeoutSeconds, run.timeoutMs / 1000),
          signal: ctx.signal,
        };
        // Resolved as a connect would (an alias is its HostName, User, Port and jump hosts), then looked up.
        const resolved = await sessions.resolve(request);
        // Admitted before connecting: a host the policy refuses is not even logged in to.
        const { host, port, username } = resolved.options;
        await admit({ host, port, username });
        const open = sessions.findOpen(resolved.options);
        session = open === undefined ? undefined : sessions.get(open.id);
        reused = session !== undefined;
        if (session === undefined) {
          session = await sessions.openResolved(resolved);
          temporary = true;
        }
      }
      label = session.connection.info;
      const result = await execOn(session, run, started + waited, temporary, ctx.signal);
      return {
        target: text,
        host: hostLabel(label.username, label.host, label.port),
        ...(temporary ? {} : { session_id: session.id }),
        ...(reused ? { reused_session: true } : {}),
        ...result,
      };
    } catch (error) {
      if (!(error instanceof SshMcpError)) logger.error(`ssh_execute_many on ${text}: ${error}`);
      const coded = error instanceof SshMcpError ? error : null;
      return {
        target: text,
        host: label === null ? "?" : hostLabel(label.username, label.host, label.port),
        ...(session === undefined || temporary ? {} : { session_id: session.id }),
        ...(reused ? { reused_session: true } : {}),
        exit_code: null,
        signal: null,
        timed_out: false,
        stdout: "",
        stderr: "",
        truncated: false,
        stdout_bytes: 0,
        stderr_bytes: 0,
        duration_ms: elapsed(),
        error_code: coded?.code ?? "INTERNAL",
        error: coded?.message ?? `Unexpected failure: ${error instanceof Error ? error.message : String(error)}`,
      };
    } finally {
      if (temporary && session !== undefined) {
        await sessions.close(session.id).catch((error) =>
          logger.warn(`ssh_execute_many: closing temporary session ${session!.id}: ${error}`)
        );
      }
    }
  }

  // Runs the command on `session` within what is left of the host's timeout.
  async function execOn(
    session: Session,
    run: HostRun,
    started: number,
    temporary: boolean,
    signal: AbortSignal,
  ): Promise<Omit<HostResult, "target" | "host">> {
    refuseWindows(session);
    // The whole output is kept only where it can be read afterwards: a temporary session's dies with it.
    const kept = temporary ? undefined : outputs.open(session.id);
    let r: ExecResult;
    try {
      r = await execCommand(session.connection, {
        delivery: session.remote.delivery,
        ownGroup: session.remote.processGroup === "own",
        command: run.command,
        timeoutMs: Math.max(1, Math.round(run.timeoutMs - (performance.now() - started))),
        maxOutputBytes: run.maxOutputBytes,
        signal,
        onOutput: kept === undefined ? undefined : (stream, chunk) => kept.push(stream, chunk),
        // A background child holding the output is left alone; its later output is not waited for.
        handOver: false,
      });
    } catch (error) {
      if (kept !== undefined) outputs.drop(kept.id);
      throw error;
    }
    if (kept !== undefined) {
      kept.running = false;
      if (!r.truncated) outputs.drop(kept.id);
    }
    const durationMs = Math.round(performance.now() - started);
    return {
      exit_code: r.exitCode,
      signal: r.signal,
      timed_out: r.timedOut,
      stdout: r.stdout,
      stderr: r.stderr,
      truncated: r.truncated,
      stdout_bytes: r.stdoutBytes,
      stderr_bytes: r.stderrBytes,
      ...(kept !== undefined && r.truncated ? { output_id: kept.id } : {}),
      duration_ms: durationMs,
      ...(r.timedOut ? { error_code: "COMMAND_TIMEOUT", error: timeoutText(r, run.timeoutMs) } : {}),
    };
  }

  return [executeMany];
}

// What ssh_execute says of a timeout, in one line.
function timeoutText(r: ExecResult, timeoutMs: number): string {
  const what = r.started === false
    ? "before the command was sent: it never ran"
    : r.killConfirmed === false
    ? `the kill was not confirmed: ${r.killNote ?? "check whether it still runs"}`
    : "remote processes killed, partial output kept";
  return `Timed out after ${timeoutMs / 1000} s (connect included): ${what}`;
}
