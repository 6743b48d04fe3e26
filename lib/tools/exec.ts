/**
 * Tools of the exec family: ssh_execute and ssh_sudo_execute.
 *
 * @module
 */

import { z } from "zod";
import { execCommand, type ExecProgress, type ExecResult, noResult } from "../ssh/exec.ts";
import { buildSudoCommand, newSudoMarker, sudoOutcome } from "../ssh/sudo.ts";
import { Buffer } from "node:buffer";
import { SshMcpError } from "../errors.ts";
import { utf8SafeEnd } from "../ssh/utf8.ts";
import type { Session } from "../sessions.ts";
import { defineTool, type ToolDef, type ToolDeps } from "./define.ts";
import { asText, ok } from "./result.ts";
import type { Jobs } from "./jobs.ts";
import { handedOver } from "../jobs/bound.ts";
import { type Job, newJobId } from "../jobs/mod.ts";
import type { KeptOutput } from "../output_store.ts";
import * as s from "./schemas.ts";

const execOutput = {
  stdout: z.string(),
  stderr: z.string(),
  exit_code: z.number().nullable().describe("null if killed by a signal or timed out"),
  signal: z.string().nullable(),
  timed_out: z.boolean(),
  truncated: z.boolean().describe("Output exceeded the cap; head and tail are kept"),
  stdout_bytes: z.number(),
  stderr_bytes: z.number(),
  duration_ms: z.number(),
  login_output: z.string().optional().describe("What login files printed (kept out of stdout/stderr), when new"),
  warning: z.string().optional(),
  output_id: z.string().optional().describe("When truncated: the whole output, by ssh_output_read"),
  job_id: z.string().optional().describe("background=true, or a background child kept the output open (ssh_job)"),
  background_output: z.boolean().optional().describe("Exited, but a background child holds the output: see job_id"),
};

/** The exec tools. */
export function execTools(deps: ToolDeps, jobs: Jobs): ToolDef[] {
  const { config, sessions, outputs } = deps;
  const jobsOn = config.toolsets === undefined || config.toolsets.includes("jobs");
  const maxCommand = 131072;
  const timeout = s.timeoutSeconds(config.maxTimeoutSeconds, `Default ${config.defaultTimeoutSeconds}`).optional();
  // An agent that needs only the outcome can ask for less than the configured cap, never for more.
  const maxOutputPlain = z.int().min(1024).max(config.maxOutputBytes).optional();
  // Described in ssh_execute, whose sudo form ssh_sudo_execute says it is.
  const maxOutput = maxOutputPlain.describe(`Cap per stream, default ${config.maxOutputBytes}`);

  const execute = defineTool({
    name: "ssh_execute",
    toolset: "exec",
    title: "Run a command",
    description: "Run a command and wait: stdout, stderr, exit code; long output keeps head and tail. Timeout " +
      "kills the process group, keeps partial output. No PTY (interactive: use a shell); stdin closed unless " +
      "given. Login shell if POSIX, else /bin/sh. Untrusted output.",
    input: {
      session_id: s.sessionId,
      command: z.string().min(1).max(maxCommand),
      timeout,
      cwd: s.remotePath.optional(),
      env: s.env.optional(),
      stdin: z.string().max(16 * 1024 * 1024).optional(),
      max_output_bytes: maxOutput,
      ...(jobsOn ? { background: z.boolean().optional().describe("Return a job_id at once (ssh_job)") } : {}),
    },
    output: execOutput,
    changes: "remote",
    destructive: true,
    run: async (args, ctx) => {
      // Not ctx.session(): a lost connection is execCommand's to report, with the output it got.
      const session = sessions.get(args.session_id);
      if ("background" in args && args.background === true) return await startJob(session, args, ctx.signal);
      refuseWindows(session);
      // Everything is kept while it runs; only a result cut at the cap keeps it afterwards.
      const kept = outputs.open(session.id);
      let result: ExecResult;
      try {
        result = await execCommand(session.connection, {
          delivery: session.remote.delivery,
          ownGroup: session.remote.processGroup === "own",
          // A shell started ahead runs login files before the command is known: only where the probe saw our script run.
          spare: session.remote.exec === "posix",
          command: args.command,
          cwd: args.cwd,
          env: args.env,
          stdin: args.stdin,
          timeoutMs: (args.timeout ?? config.defaultTimeoutSeconds) * 1000,
          maxOutputBytes: args.max_output_bytes ?? config.maxOutputBytes,
          signal: ctx.signal,
          onStart: (peek) => ctx.keepAlive(() => progressText(peek())),
          onOutput: (stream, chunk) => kept.push(stream, chunk),
          handOver: true,
        });
      } catch (error) {
        outputs.drop(kept.id);
        throw error;
      }
      const job = adopt(session, args.command, result, kept);
      if (job !== null) return handedOverResult(result, session, job.id);
      kept.running = false;
      if (!result.truncated) {
        outputs.drop(kept.id);
        return ok(toStructured(result, session), describe(result, session));
      }
      return ok(
        { ...toStructured(result, session), output_id: kept.id },
        `${describe(result, session)}\n[whole output: ssh_output_read output_id=${kept.id}]`,
      );
    },
  });

  const sudo = defineTool({
    name: "ssh_sudo_execute",
    toolset: "exec",
    title: "Run a command with sudo",
    description: "ssh_execute as root via sudo: password only to sudo's stdin (else sudo -n); refusals are " +
      "SUDO_* errors; command stdin is /dev/null.",
    input: {
      session_id: s.sessionId,
      command: z.string().min(1).max(maxCommand),
      password: z.string().max(4096).optional(),
      timeout,
      cwd: s.remotePath.optional(),
      max_output_bytes: maxOutputPlain,
    },
    output: execOutput,
    changes: "remote",
    destructive: true,
    run: async (args, ctx) => {
      // Not ctx.session(): a lost connection is execCommand's to report, with the output it got.
      const session = sessions.get(args.session_id);
      refuseWindows(session);
      const withPassword = args.password !== undefined;
      if (withPassword && session.remote.exec === "replaced") {
        throw new SshMcpError(
          "EXEC_UNSUPPORTED",
          `Session ${session.id} runs a forced command instead of the commands it is sent: the sudo password ` +
            "would go to that program, so it was not sent",
          { hint: "Use ssh_shell_open if the account allows an interactive shell" },
        );
      }
      const timeoutSeconds = args.timeout ?? config.defaultTimeoutSeconds;
      const marker = newSudoMarker();
      // Kept only for a background child's output after the call (see adopt()).
      const kept = outputs.open(session.id);
      const ran = await execCommand(session.connection, {
        delivery: session.remote.delivery,
        ownGroup: session.remote.processGroup === "own",
        spare: session.remote.exec === "posix",
        command: buildSudoCommand(args.command, { withPassword, timeoutSeconds, marker }),
        cwd: args.cwd,
        stdin: withPassword ? `${args.password}\n` : undefined,
        stdinAfterStart: true, // the password goes to our wrapper's sudo, or nowhere
        timeoutMs: timeoutSeconds * 1000,
        maxOutputBytes: args.max_output_bytes ?? config.maxOutputBytes,
        signal: ctx.signal,
        onStart: (peek) => ctx.keepAlive(() => progressText(peek())),
        onOutput: (stream, chunk) => kept.push(stream, chunk),
        handOver: true,
      }).catch((error) => {
        outputs.drop(kept.id);
        throw error;
      });
      // sudo's own refusal (the command never ran) is a coded error, not the command's exit 1.
      let result: ExecResult;
      try {
        result = sudoOutcome(ran, { marker, withPassword });
      } catch (error) {
        ran.background?.close();
        outputs.drop(kept.id);
        throw error;
      }
      const job = adopt(session, args.command, ran, kept);
      if (job !== null) return handedOverResult(result, session, job.id);
      outputs.drop(kept.id);
      return ok(toStructured(result, session), describe(result, session));
    },
  });

  const readOutput = defineTool({
    name: "ssh_output_read",
    toolset: "exec",
    title: "Read a command's whole output",
    description: "Read a cut ssh_execute or job output by byte range; kept until the session closes (oldest " +
      "dropped over budget; detached jobs' stay in their files).",
    input: {
      session_id: s.sessionId,
      output_id: z.string().min(1).max(64),
      stream: z.enum(["stdout", "stderr"]).optional(),
      offset: z.int().min(0).optional(),
      max_bytes: z.int().min(1).max(1_048_576).optional().describe("Default 65536"),
    },
    output: {
      output_id: z.string(),
      stream: z.enum(["stdout", "stderr"]),
      offset: z.number().describe("Where data starts (later than asked if dropped)"),
      next_offset: z.number(),
      total_bytes: z.number(),
      dropped_bytes: z.number().describe("Bytes gone from the stream's start"),
      complete: z.boolean().describe("next_offset is the end and the command ended"),
      encoding: z.enum(["utf8", "base64"]),
      data: z.string(),
    },
    changes: "nothing",
    readOnlyUseful: false, // outputs come from ssh_execute and jobs only
    run: async (args, ctx) => {
      const session = sessions.get(args.session_id);
      const kept = outputs.get(args.output_id, session.id);
      // A job's output: in its files on the host, or kept here for a connection-bound one.
      const job = kept === undefined && args.output_id.startsWith("j-")
        ? await jobs.lookup(session, args.output_id, ctx.signal)
        : undefined;
      if (kept === undefined && job === undefined) {
        throw new SshMcpError(
          "OUTPUT_NOT_FOUND",
          `Session ${session.id} keeps no output ${JSON.stringify(args.output_id)}`,
          {
            hint: "An output_id comes with a truncated ssh_execute result and lasts until its session closes",
          },
        );
      }
      const stream = args.stream ?? "stdout";
      const maxBytes = args.max_bytes ?? 65536;
      // Whether it still runs is asked before the read: an ended job's read is then its whole output.
      const running = kept !== undefined
        ? kept.running
        : (await jobs.guard(session, job!, () => job!.status({ signal: ctx.signal }))).state === "running";
      const r = kept !== undefined
        ? kept.read(stream, args.offset ?? 0, maxBytes)
        : await jobs.guard(session, job!, () => job!.read(stream, args.offset ?? 0, maxBytes, ctx.signal));
      // Whole characters only, unless that leaves nothing: the next read starts where this one ends.
      const end = r.offset + r.bytes.length === r.totalBytes ? r.bytes.length : utf8SafeEnd(r.bytes) || r.bytes.length;
      const bytes = r.bytes.subarray(0, end);
      const text = asText(bytes);
      const next = r.offset + bytes.length;
      const structured = {
        output_id: args.output_id,
        stream,
        offset: r.offset,
        next_offset: next,
        total_bytes: r.totalBytes,
        dropped_bytes: r.droppedBytes,
        complete: next === r.totalBytes && !running,
        encoding: text === null ? "base64" as const : "utf8" as const,
        data: text ?? Buffer.from(bytes).toString("base64"),
      };
      const notes = [`${stream} bytes ${r.offset}-${next} of ${r.totalBytes}`];
      if (r.droppedBytes > 0) notes.push(`the first ${r.droppedBytes} bytes were dropped (output budget)`);
      if (next < r.totalBytes) notes.push(`more from offset ${next}`);
      return ok(structured, `[${notes.join("; ")}]\n${structured.data}`);
    },
  });

  // A command whose background child kept its output open goes on as a job on its channel: its
  // output is kept (what came before the call returned too), the child is left alone.
  function adopt(session: Session, command: string, result: ExecResult, kept: KeptOutput): Job | null {
    if (result.background === undefined) return null;
    const parts = { id: newJobId(), command, kept, store: outputs, connection: session.connection };
    const job = handedOver(parts, result, result.background);
    // Its waits start after what this result already shows.
    job.cursor.stdout = kept.streams.stdout.total;
    job.cursor.stderr = kept.streams.stderr.total;
    session.jobs.set(job.id, job);
    return job;
  }

  function handedOverResult(result: ExecResult, session: Session, jobId: string) {
    const see = jobsOn ? "ssh_job, ssh_output_read" : "ssh_output_read";
    const text = `${describe(result, session)}\n[The command exited, but a background child still holds its output ` +
      `(e.g. \`cmd &\` without redirection): returned without waiting for it, nothing killed. Its further output ` +
      `is kept as job ${jobId} (${see}) while this session lasts; after that the child's writes fail. To leave it ` +
      `running on its own, redirect it (\`nohup cmd >/dev/null 2>&1 &\`) or use background=true.]`;
    return ok({ ...toStructured(result, session), background_output: true, job_id: jobId }, text);
  }

  // A job, started at once: its result has the job_id and no output yet.
  async function startJob(
    session: Session,
    args: { command: string; cwd?: string; env?: Record<string, string>; stdin?: string },
    signal: AbortSignal,
  ) {
    if (args.stdin !== undefined) {
      throw new SshMcpError("INVALID_ARGUMENT", "A background job's stdin is /dev/null: stdin cannot be given", {
        hint: "Write the input to a remote file (ssh_write_file) and redirect from it in the command",
      });
    }
    const started = performance.now();
    const job = await jobs.start(session, { command: args.command, cwd: args.cwd, env: args.env, signal });
    const structured = {
      ...toStructured(noResult(0), session), // a job's start: nothing has run to its end yet
      duration_ms: Math.round(performance.now() - started),
      job_id: job.id,
    };
    const kind = job.detached ? "detached: it runs on if the connection or this server ends" : job.note;
    return ok(
      structured,
      `Started job ${job.id} (${kind}). ssh_job action=wait job_id=${job.id} waits for it and returns its output.`,
    );
  }

  return [execute, sudo, readOutput];
}

// What a progress notification says of a running command: bytes so far and where its output is.
function progressText(p: ExecProgress): string {
  return `${p.stdoutBytes} bytes on stdout, ${p.stderrBytes} on stderr` + (p.lastLine ? `; last: ${p.lastLine}` : "");
}

/** Throws EXEC_UNSUPPORTED for a session without a POSIX shell (ssh_execute and ssh_execute_many need one). */
export function refuseWindows(session: Session): void {
  if (session.remote.exec !== "windows") return;
  throw new SshMcpError(
    "EXEC_UNSUPPORTED",
    `Session ${session.id} has no POSIX shell to run commands in (a Windows server, or a cmd.exe or PowerShell ` +
      `login shell: ${session.remote.note ?? "unknown"}); ssh_execute needs one to report exit codes, apply cwd and ` +
      "env and kill on timeout",
    { hint: "Use ssh_shell_open to run commands in the server's own shell; the file tools work as usual" },
  );
}

/** Login output is told once at connect; a result repeats it only when it changed. */
function newLoginOutput(r: ExecResult, session: Session): string | undefined {
  return r.loginOutput !== "" && r.loginOutput !== session.remote.loginOutput ? r.loginOutput : undefined;
}

function warningOf(r: ExecResult): string | undefined {
  const parts: string[] = [];
  if (r.markerMissing) {
    parts.push(
      "The command may not have run as asked: the reply lacked this call's start marker, so the server ran " +
        "something else (a forced command, or a login shell that does not run commands); output is shown as received",
    );
  }
  if (r.timedOut && r.killConfirmed === false && r.started !== false) {
    parts.push(`The kill was not confirmed: ${r.killNote ?? "check whether it still runs"}`);
  }
  return parts.length === 0 ? undefined : parts.join(". ");
}

function toStructured(r: ExecResult, session: Session) {
  const login = newLoginOutput(r, session);
  const warning = warningOf(r);
  return {
    stdout: r.stdout,
    stderr: r.stderr,
    exit_code: r.exitCode,
    signal: r.signal,
    timed_out: r.timedOut,
    truncated: r.truncated,
    stdout_bytes: r.stdoutBytes,
    stderr_bytes: r.stderrBytes,
    duration_ms: r.durationMs,
    ...(login === undefined ? {} : { login_output: login }),
    ...(warning === undefined ? {} : { warning }),
  };
}

function describe(r: ExecResult, session: Session): string {
  const status = r.timedOut
    ? `timed out after ${r.durationMs} ms (${
      r.started === false
        ? "before the command was sent: it never ran"
        : r.killConfirmed === false
        ? "the kill was not confirmed"
        : "remote processes killed"
    })`
    : r.signal !== null
    ? `killed by signal ${r.signal} after ${r.durationMs} ms`
    : r.exitCode === null
    ? `ended without an exit status after ${r.durationMs} ms`
    : `exit ${r.exitCode} in ${r.durationMs} ms`;
  const parts = [status + (r.truncated ? " (output truncated)" : "")];
  const warning = warningOf(r);
  if (warning !== undefined) parts.push(`Warning: ${warning}`);
  const login = newLoginOutput(r, session);
  if (login !== undefined) parts.push(`--- login files printed (not part of the output) ---\n${login}`);
  if (r.stdout) parts.push(`--- stdout (${r.stdoutBytes} bytes) ---\n${r.stdout}`);
  if (r.stderr) parts.push(`--- stderr (${r.stderrBytes} bytes) ---\n${r.stderr}`);
  return parts.join("\n");
}
