/**
 * Tools of the exec family: ssh_execute and ssh_sudo_execute.
 *
 * @module
 */

// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { execCommand, type ExecResult } from "../ssh/exec.ts";
import { buildSudoCommand, newSudoMarker, sudoOutcome } from "../ssh/sudo.ts";
import { SshMcpError } from "../errors.ts";
import type { Session } from "../sessions.ts";
import type { ToolDeps } from "./mod.ts";
import { guarded, ok } from "./result.ts";
import * as s from "./schemas.ts";

const execOutput = {
  stdout: z.string(),
  stderr: z.string(),
  exit_code: z.number().nullable().describe("Exit status; null if killed by a signal or timed out"),
  signal: z.string().nullable().describe("Signal that killed the process (e.g. SIGKILL), else null"),
  timed_out: z.boolean(),
  truncated: z.boolean().describe("True when output exceeded the cap; head and tail are kept"),
  stdout_bytes: z.number().describe("Total bytes the command wrote to stdout"),
  stderr_bytes: z.number().describe("Total bytes the command wrote to stderr"),
  duration_ms: z.number(),
  login_output: z.string().optional()
    .describe("What login files printed before the command (kept out of stdout/stderr), when new"),
  warning: z.string().optional(),
};

/** Registers the exec tools. */
export function registerExecTools(server: McpServer, deps: ToolDeps): void {
  const { sessions, config } = deps;
  const maxCommand = 131072;

  server.registerTool(
    "ssh_execute",
    {
      title: "Run a command",
      description: "Run one command on a session and wait for it. Returns stdout and stderr separately, the real " +
        "exit code (a non-zero exit is a normal result), or the signal that killed it. Output beyond the cap keeps " +
        "its head and tail. On timeout the remote process group is killed and partial output is returned with " +
        "timed_out=true. stdin is closed unless `stdin` is given. No PTY: use shells for interactive programs. " +
        "Runs in the login shell when it takes POSIX syntax (bash, zsh, dash, ksh, ash), else in /bin/sh " +
        "(e.g. under fish or tcsh; run `fish -c '...'` to use it).",
      inputSchema: {
        session_id: s.sessionId,
        command: z.string().min(1).max(maxCommand).describe("Shell command line (POSIX sh syntax)"),
        timeout: s.timeoutSeconds(
          config.maxTimeoutSeconds,
          `Wall-clock limit (default ${config.defaultTimeoutSeconds})`,
        )
          .optional(),
        cwd: s.remotePath.optional().describe("Remote directory to run in"),
        env: s.env.optional(),
        stdin: z.string().max(16 * 1024 * 1024).optional().describe("Text fed to the command's stdin, then closed"),
      },
      outputSchema: execOutput,
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
    },
    guarded(async (args, extra) => {
      const session = sessions.get(args.session_id);
      refuseWindows(session);
      const result = await execCommand(session.connection, {
        delivery: session.remote.delivery,
        ownGroup: session.remote.processGroup === "own",
        command: args.command,
        cwd: args.cwd,
        env: args.env,
        stdin: args.stdin,
        timeoutMs: (args.timeout ?? config.defaultTimeoutSeconds) * 1000,
        maxOutputBytes: config.maxOutputBytes,
        signal: extra.signal,
      });
      return ok(toStructured(result, session), describe(result, session));
    }),
  );

  server.registerTool(
    "ssh_sudo_execute",
    {
      title: "Run a command with sudo",
      description: "Run one command as root through sudo. With `password`, it is written to sudo's stdin " +
        "(sudo -S), never placed on a command line or in any output. Without it, sudo -n is used and fails at once " +
        "if a password is required. sudo's refusals are coded SUDO_* errors (the command did not run). The " +
        "command's own stdin is /dev/null.",
      inputSchema: {
        session_id: s.sessionId,
        command: z.string().min(1).max(maxCommand).describe("Shell command line, run by sh -c as root"),
        password: z.string().max(4096).optional().describe("The user's sudo password, if sudo asks for one"),
        timeout: s.timeoutSeconds(
          config.maxTimeoutSeconds,
          `Wall-clock limit (default ${config.defaultTimeoutSeconds})`,
        )
          .optional(),
        cwd: s.remotePath.optional().describe("Remote directory to run in"),
      },
      outputSchema: execOutput,
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
    },
    guarded(async (args, extra) => {
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
      const ran = await execCommand(session.connection, {
        delivery: session.remote.delivery,
        ownGroup: session.remote.processGroup === "own",
        command: buildSudoCommand(args.command, { withPassword, timeoutSeconds, marker }),
        cwd: args.cwd,
        stdin: withPassword ? `${args.password}\n` : undefined,
        stdinAfterStart: true, // the password goes to our wrapper's sudo, or nowhere
        timeoutMs: timeoutSeconds * 1000,
        maxOutputBytes: config.maxOutputBytes,
        signal: extra.signal,
      });
      // sudo's own refusal (the command never ran) is a coded error, not the command's exit 1.
      const result = sudoOutcome(ran, { marker, withPassword });
      return ok(toStructured(result, session), describe(result, session));
    }),
  );
}

function refuseWindows(session: Session): void {
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
