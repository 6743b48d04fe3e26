/**
 * The jobs family: ssh_job (wait, list, signal, cancel, remove). Jobs are
 * started by ssh_execute with `background: true`, or by ssh_execute itself
 * when a background child keeps its output open; their output is read with
 * ssh_output_read under the job id.
 *
 * @module
 */

import { z } from "zod";
import { Buffer } from "node:buffer";
import { SshMcpError } from "../errors.ts";
import { sessionTarget } from "./guard.ts";
import {
  type DetachedContext,
  DetachedJob,
  findDetached,
  isJobId,
  type Job,
  type JobSignal,
  type JobStatus,
  newJobId,
  startDetached,
  type WaitChunk,
  waitJob,
} from "../jobs/mod.ts";
import type { Session } from "../sessions.ts";
import type { OutputStore } from "../output_store.ts";
import { startBound } from "../jobs/bound.ts";
import type { Config } from "../config.ts";
import { utf8SafeEnd } from "../ssh/utf8.ts";
import { type CallGuard, defineTool, type ToolContext, type ToolDef, type ToolDeps } from "./define.ts";
import { asText, ok, sessionSftp } from "./result.ts";
import * as s from "./schemas.ts";

/** Bytes of each stream a wait returns at most; the rest is read with ssh_output_read. */
const WAIT_RETURN_BYTES = 32 * 1024;

/** The jobs of sessions: finding, starting and looking up. */
export class Jobs {
  #config: Config;
  #outputs: OutputStore;
  #guard: CallGuard | undefined;

  constructor(config: Config, outputs: OutputStore, guard?: CallGuard) {
    this.#config = config;
    this.#outputs = outputs;
    this.#guard = guard;
  }

  /** What a detached job of `session` needs. */
  context(session: Session): DetachedContext {
    return {
      connection: session.connection,
      remote: session.remote,
      sftp: (signal) => sessionSftp(session, this.#config, signal),
    };
  }

  get #keepMinutes(): number {
    return this.#config.jobRetentionHours * 60;
  }

  /** Whether jobs of `session` run detached on its host. */
  detached(session: Session): boolean {
    return this.#config.detachedJobs && session.remote.exec !== "windows";
  }

  /** Starts a job on `session`: detached where it can be, else bound to the connection. */
  async start(
    session: Session,
    o: { command: string; cwd?: string; env?: Record<string, string>; signal?: AbortSignal },
  ): Promise<Job> {
    using slot = session.jobs.reserve(newJobId());
    if (this.detached(session)) {
      return slot.fill(
        await startDetached(this.context(session), { id: slot.id, keepMinutes: this.#keepMinutes, ...o }),
      );
    }
    const kept = this.#outputs.open(session.id);
    const why = session.remote.exec === "windows" ? "the server has no POSIX shell" : "detached_jobs is off";
    try {
      const job = await startBound(
        { id: slot.id, command: o.command, kept, store: this.#outputs, connection: session.connection },
        { remote: session.remote, cwd: o.cwd, env: o.env, maxTimeoutMs: this.#config.maxTimeoutSeconds * 1000, why },
      );
      return slot.fill(job);
    } catch (error) {
      this.#outputs.drop(kept.id);
      throw error;
    }
  }

  /**
   * Lists the host's detached jobs (adding those this session did not know:
   * started before a reconnect or a restart) with their state as listed.
   */
  async find(session: Session, signal?: AbortSignal): Promise<Map<string, JobStatus>> {
    const statuses = new Map<string, JobStatus>();
    if (!this.detached(session)) return statuses;
    // A read-only host's old job files stay: listing there removes nothing.
    const keep = this.#guard?.policyOf(session).readOnly ? null : this.#keepMinutes;
    const found = await findDetached(this.context(session), keep, signal);
    for (const { facts, status } of found) {
      if (!session.jobs.has(facts.id)) session.jobs.set(facts.id, new DetachedJob(this.context(session), facts));
      statuses.set(facts.id, status);
    }
    // Detached jobs whose directory is gone were removed elsewhere (or cleaned up).
    for (const [id, job] of session.jobs) if (job.detached && !statuses.has(id)) session.jobs.delete(id);
    return statuses;
  }

  /** Runs `op` on a job; a job whose files are gone from the host is forgotten here too. */
  async guard<T>(session: Session, job: Job, op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (error) {
      if (error instanceof SshMcpError && error.code === "JOB_NOT_FOUND") session.jobs.delete(job.id);
      throw error;
    }
  }

  /** The job `id` of `session`, looking on the host once if this session has not seen it. */
  async lookup(session: Session, id: string, signal?: AbortSignal): Promise<Job> {
    if (!session.jobs.has(id) && isJobId(id) && this.detached(session)) await this.find(session, signal);
    return session.jobs.lookup(id);
  }
}

/** Refusals by a host's policy: the session is left out of an all-sessions list, the rest is listed. */
const WITHHELD = new Set(["POLICY_DENIED", "APPROVAL_DECLINED", "APPROVAL_UNAVAILABLE"]);

/** The jobs tool. */
export function jobTools(deps: ToolDeps, jobs: Jobs): ToolDef[] {
  const { sessions } = deps;
  const job = defineTool({
    name: "ssh_job",
    toolset: "jobs",
    title: "Manage background jobs",
    description: "Jobs come from ssh_execute background=true. wait: until the end, pattern or timeout; returns " +
      "new output. list (found on the host too). signal: its process group. cancel: TERM, then KILL. remove: " +
      "an ended job's files. All output: ssh_output_read output_id=job_id.",
    input: {
      session_id: s.sessionId,
      action: z.enum(["wait", "list", "signal", "cancel", "remove"]),
      job_id: z.string().min(1).max(64).optional(),
      pattern: z.string().min(1).max(1000).optional(),
      regex: z.boolean().optional(),
      timeout: s.timeoutSeconds(300, "Default 25").optional(),
      signal: z.enum(["INT", "TERM", "KILL", "HUP"]).optional(),
      all_sessions: z.boolean().optional(),
    },
    changes: "remote",
    destructive: true,
    run: async (args, ctx) => {
      const session = ctx.session(args.session_id);
      if (args.action === "list") {
        const targets = args.all_sessions ? sessions.all().filter((x) => x.connection.alive) : [session];
        const rows = [];
        const seen = new Set<string>(); // two sessions to one account find the same detached jobs
        const withheld: string[] = [];
        for (const target of targets) {
          // Listing runs a script on each host: every other session's host policy (and approval) applies too.
          if (target !== session) {
            try {
              await ctx.admit(sessionTarget(target));
            } catch (error) {
              if (!(error instanceof SshMcpError) || !WITHHELD.has(error.code)) throw error;
              withheld.push(`${target.id} (${error.code})`);
              continue;
            }
          }
          const listed = await jobs.find(target, ctx.signal);
          for (const [, j] of target.jobs) {
            if (seen.has(j.id)) continue;
            seen.add(j.id);
            rows.push({ session_id: target.id, ...jobRow(j, listed.get(j.id) ?? await j.status({ liveness: true })) });
          }
        }
        const text = (rows.length === 0
          ? "No jobs"
          : rows.map((r) =>
            `${r.job_id} ${r.state}${ended(r)} ${r.stdout_bytes}+${r.stderr_bytes} B: ${r.command}`
          )
            .join("\n")) + (withheld.length === 0 ? "" : `\nNot listed (host policy): ${withheld.join(", ")}`);
        return ok({ jobs: rows }, text);
      }
      if (args.job_id === undefined) {
        throw new SshMcpError("INVALID_ARGUMENT", `action=${args.action} needs job_id`, {
          hint: "ssh_job action=list lists the jobs",
        });
      }
      const j = await jobs.lookup(session, args.job_id, ctx.signal);
      return await jobs.guard(session, j, () => act(session, j, args, ctx));
    },
  });
  return [job];

  async function act(
    session: Session,
    j: Job,
    args: { action: string; pattern?: string; regex?: boolean; timeout?: number; signal?: JobSignal },
    ctx: ToolContext,
  ) {
    switch (args.action) {
      case "wait": {
        const timeoutMs = (args.timeout ?? 25) * 1000;
        let last = "";
        let latest: JobStatus | null = null;
        ctx.keepAlive(() =>
          latest === null ? "waiting" : `${latest.stdoutBytes} bytes on stdout, ${latest.stderrBytes} on stderr` +
            (last ? `; last: ${last}` : "")
        );
        const r = await waitJob(j, {
          timeoutMs,
          pattern: args.pattern === undefined ? undefined : { text: args.pattern, regex: args.regex ?? false },
          maxBytes: WAIT_RETURN_BYTES,
          signal: ctx.signal,
          onPoll: (st, line) => {
            latest = st;
            last = line;
          },
        });
        const out = chunkOut(r.stdout);
        const err = chunkOut(r.stderr);
        // A character cut at the end of what was returned comes whole with the next wait.
        j.cursor.stdout = out.next;
        j.cursor.stderr = err.next;
        const row = jobRow(j, r.status);
        const why = r.reason === "matched" ? "pattern matched" : r.reason === "ended" ? "job ended" : "timed out";
        const structured = {
          ...row,
          reason: r.reason,
          ...(r.match === undefined ? {} : { match: r.match }),
          stdout: out.data,
          stderr: err.data,
          stdout_next: out.next,
          stderr_next: err.next,
          ...(out.encoding === "base64" || err.encoding === "base64" ? { encoding: "base64" } : {}),
        };
        const parts = [`[${why}: ${row.state}${ended(row)}; ${row.stdout_bytes}+${row.stderr_bytes} bytes]`];
        if (out.next < row.stdout_bytes || err.next < row.stderr_bytes) {
          parts.push(
            `[more output than returned: ssh_output_read output_id=${j.id} offset=${out.next} (stderr ${err.next})]`,
          );
        }
        if (out.data) parts.push(`--- stdout ---\n${out.data}`);
        if (err.data) parts.push(`--- stderr ---\n${err.data}`);
        return ok(structured, parts.join("\n"));
      }
      case "signal": {
        const name = args.signal ?? "TERM";
        const sent = await j.send(name);
        const text = sent ? `Sent ${name} to job ${j.id}'s process group` : `Job ${j.id} had already ended`;
        return ok({ job_id: j.id, sent }, text);
      }
      case "cancel": {
        const r = await j.cancel();
        const st = await j.status({ liveness: true });
        const text = r.confirmed
          ? `Job ${j.id} cancelled: ${st.state}${ended(jobRow(j, st))}`
          : `Job ${j.id}: the kill was not confirmed (${r.note ?? "unknown"})`;
        return ok({ ...jobRow(j, st), confirmed: r.confirmed, ...(r.note ? { note: r.note } : {}) }, text);
      }
      case "remove": {
        await j.remove();
        session.jobs.delete(j.id);
        return ok({ job_id: j.id, removed: true }, `Job ${j.id} removed`);
      }
      default:
        throw new Error(`Unknown action ${args.action}`);
    }
  }
}

/** One job as list and wait report it. */
export function jobRow(j: Job, st: JobStatus) {
  return {
    job_id: j.id,
    command: j.command.length > 200 ? j.command.slice(0, 200) + "…" : j.command,
    state: st.state,
    exit_code: st.exitCode,
    signal: st.signal,
    started_at: j.startedAt.toISOString(),
    duration_ms: st.durationMs,
    stdout_bytes: st.stdoutBytes,
    stderr_bytes: st.stderrBytes,
    detached: j.detached,
    ...(j.note === undefined ? {} : { note: j.note }),
  };
}

function ended(r: { state: string; exit_code: number | null; signal: string | null }): string {
  if (r.state === "running") return "";
  if (r.signal !== null) return ` (${r.signal})`;
  return r.exit_code === null ? "" : ` (exit ${r.exit_code})`;
}

// Whole characters as text (base64 when not UTF-8); `next` is where the next read starts.
function chunkOut(c: WaitChunk): { data: string; next: number; encoding: "utf8" | "base64" } {
  const complete = c.offset + c.bytes.length === c.totalBytes;
  const end = complete ? c.bytes.length : utf8SafeEnd(c.bytes) || c.bytes.length;
  const bytes = c.bytes.subarray(0, end);
  const text = asText(bytes);
  return text === null
    ? { data: Buffer.from(bytes).toString("base64"), next: c.offset + end, encoding: "base64" }
    : { data: text, next: c.offset + end, encoding: "utf8" };
}
