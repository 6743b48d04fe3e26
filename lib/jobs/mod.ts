/**
 * Starting jobs, finding detached ones again, and waiting on any of them.
 *
 * @module
 */

import { SshMcpError } from "../errors.ts";
import type { StreamName } from "../output_store.ts";
import { randomHex, truncateUtf8 } from "../random.ts";
import { compileMatcher, findMatch, type Matcher } from "../ssh/pattern.ts";
import { lastLine } from "../ssh/output.ts";
import {
  type DetachedContext,
  type DetachedFacts,
  DetachedJob,
  detachedStatus,
  type Job,
  type JobStatus,
  runScript,
} from "./job.ts";
import { JOB_ID, LAUNCH_FAILED, launched, launchScript, listScript, parseList } from "./scripts.ts";

export * from "./job.ts";
export { JOB_ID, type JobSignal } from "./scripts.ts";

/** A new job id. */
export function newJobId(): string {
  return "j-" + randomHex(6);
}

/** What {@linkcode startDetached} runs. */
export interface StartOptions {
  id: string;
  command: string;
  cwd?: string;
  env?: Record<string, string>;
  /** Finished jobs older than this are removed from the remote host when a job starts. */
  keepMinutes: number;
  signal?: AbortSignal;
}

/**
 * Starts a detached job and returns once its runner was started (it writes
 * its PID moments later). The call's `cwd` is the launcher's, which the job
 * inherits; `env` goes to the job alone, so it cannot move where the
 * launcher puts the job's files.
 */
export async function startDetached(context: DetachedContext, o: StartOptions): Promise<DetachedJob> {
  const startedAt = new Date();
  const meta = JSON.stringify({ v: 1, command: truncateUtf8(o.command, 1000), started_at: startedAt.toISOString() });
  const r = await runScript(
    context,
    launchScript({
      id: o.id,
      shell: context.remote.delivery === "direct" ? "login" : "sh",
      env: o.env,
      meta,
      keepMinutes: o.keepMinutes,
    }),
    { cwd: o.cwd, stdin: o.command, signal: o.signal },
  );
  if (!launched(r.stdout)) {
    const why = LAUNCH_FAILED[r.exitCode as keyof typeof LAUNCH_FAILED] ??
      (r.timedOut ? "the launcher timed out" : `the launcher ended with ${r.exitCode ?? r.signal}`);
    const err = r.stderr.trim().slice(0, 300);
    throw new SshMcpError("JOB_FAILED", `Job did not start: ${why}${err ? ` (${err})` : ""}`);
  }
  return new DetachedJob(context, {
    id: o.id,
    command: o.command,
    startedAt,
    pgid: null, // read from its `pid` file when wanted
    startEpoch: null,
  });
}

/** A detached job found in its directory, with its state as the listing saw it. */
export interface FoundJob {
  facts: DetachedFacts;
  status: JobStatus;
}

/**
 * Lists the detached jobs on the remote host (any this account started, from
 * this server or an earlier one), removing finished ones older than
 * `keepMinutes` first (none when null). One round trip.
 */
export async function findDetached(
  context: Pick<DetachedContext, "connection" | "remote">,
  keepMinutes: number | null,
  signal?: AbortSignal,
): Promise<FoundJob[]> {
  const r = await runScript(context, listScript(keepMinutes), { signal });
  if (r.exitCode !== 0) {
    throw new SshMcpError("JOB_FAILED", `Could not list the jobs on the remote host (exit ${r.exitCode ?? r.signal})`);
  }
  return parseList(r.stdout).map((l) => {
    const meta = parseMeta(l.meta);
    const startedAt = meta.startedAt ?? (l.startEpoch !== null ? new Date(l.startEpoch * 1000) : new Date(0));
    return {
      facts: { id: l.id, command: meta.command, startedAt, pgid: l.pgid, startEpoch: l.startEpoch },
      status: detachedStatus({
        exit: l.status === null ? null : `${l.status} ${l.endEpoch ?? ""}`,
        signal: l.signal,
        alive: l.status === null ? l.alive : null,
        stdoutBytes: l.stdoutBytes,
        stderrBytes: l.stderrBytes,
        startEpoch: l.startEpoch,
        startedAt,
      }),
    };
  });
}

function parseMeta(line: string): { command: string; startedAt: Date | null } {
  try {
    const meta = JSON.parse(line);
    const at = typeof meta?.started_at === "string" ? new Date(meta.started_at) : null;
    return {
      command: typeof meta?.command === "string" ? meta.command : "",
      startedAt: at !== null && !Number.isNaN(at.getTime()) ? at : null,
    };
  } catch {
    return { command: "", startedAt: null };
  }
}

/** Whether `id` could name a detached job (worth a look on the remote host). */
export function isJobId(id: string): boolean {
  return JOB_ID.test(id);
}

/** What a wait asks for. */
export interface WaitOptions {
  timeoutMs: number;
  /** Ends the wait when it appears in output after the cursor. */
  pattern?: { text: string; regex: boolean };
  /** Bytes of each stream returned at most; the cursor moves past what was returned. */
  maxBytes: number;
  signal?: AbortSignal;
  /** Called on every look, for progress reports. */
  onPoll?: (status: JobStatus, lastLine: string) => void;
}

/** The new output of one stream a wait returns. */
export interface WaitChunk {
  offset: number;
  bytes: Uint8Array;
  /** Bytes the stream has now; more than offset + bytes when the rest did not fit. */
  totalBytes: number;
  droppedBytes: number;
}

/** How a wait ended and what arrived. */
export interface WaitResult {
  reason: "ended" | "matched" | "timeout";
  status: JobStatus;
  match?: string;
  stdout: WaitChunk;
  stderr: WaitChunk;
}

const SCAN_CHUNK = 1024 * 1024;
const MATCH_OVERLAP = 4096;

/**
 * Waits until the job ends, the pattern appears in output after its cursor,
 * or the timeout; returns what arrived after the cursor (at most `maxBytes`
 * per stream) and moves the cursor past it. Looks often at first, then
 * every quarter second; the group's liveness every 5 s.
 */
export async function waitJob(job: Job, o: WaitOptions): Promise<WaitResult> {
  const matcher: Matcher | null = o.pattern === undefined ? null : compileMatcher(o.pattern.text, o.pattern.regex);
  const started = performance.now();
  const scanned: Record<StreamName, number> = { ...job.cursor };
  const tails: Record<StreamName, string> = { stdout: "", stderr: "" };
  const decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };
  let lastLiveness = started;
  let match: string | undefined;
  let reason: WaitResult["reason"] | null = null;
  let status: JobStatus;
  let glimpse = "";
  while (true) {
    const now = performance.now();
    const liveness = now - lastLiveness >= 5000;
    if (liveness) lastLiveness = now;
    status = await job.status({ liveness, signal: o.signal });
    const ended = status.state !== "running";
    // Search what is new (all of it once the job ended, so the last output is searched too).
    for (const stream of ["stdout", "stderr"] as const) {
      const total = stream === "stdout" ? status.stdoutBytes : status.stderrBytes;
      if (matcher === null) {
        // Only a glimpse of the last line, for progress: the tail is enough.
        if (stream === "stdout" && total > scanned.stdout) {
          const r = await job.read(stream, Math.max(scanned.stdout, total - 512), 512, o.signal);
          scanned.stdout = r.offset + r.bytes.length;
          glimpse = lastLine(new TextDecoder().decode(r.bytes)) || glimpse;
        }
        continue;
      }
      // The deadline holds while catching up: a first wait on a long output scans it in steps.
      while (scanned[stream] < total && performance.now() - started < o.timeoutMs) {
        const r = await job.read(stream, scanned[stream], SCAN_CHUNK, o.signal);
        if (r.bytes.length === 0) break;
        scanned[stream] = r.offset + r.bytes.length;
        const text = tails[stream] + decoders[stream].decode(r.bytes, { stream: true });
        glimpse = lastLine(text.slice(-512)) || glimpse;
        if (match === undefined) match = await findMatch(matcher, text) ?? undefined;
        tails[stream] = text.slice(-MATCH_OVERLAP);
      }
    }
    o.onPoll?.(status, glimpse);
    if (match !== undefined) reason = "matched";
    else if (ended) reason = "ended";
    else if (performance.now() - started >= o.timeoutMs || o.signal?.aborted) reason = "timeout";
    if (reason !== null) break;
    const waited = performance.now() - started;
    const pause = Math.min(250, 10 + waited / 8, Math.max(1, o.timeoutMs - waited));
    await new Promise((r) => setTimeout(r, pause));
  }
  const chunk = async (stream: StreamName): Promise<WaitChunk> => {
    const r = await job.read(stream, job.cursor[stream], o.maxBytes, o.signal);
    job.cursor[stream] = r.offset + r.bytes.length;
    return { offset: r.offset, bytes: r.bytes, totalBytes: r.totalBytes, droppedBytes: r.droppedBytes };
  };
  const stdout = await chunk("stdout");
  const stderr = await chunk("stderr");
  return { reason, status, ...(match === undefined ? {} : { match }), stdout, stderr };
}
