/**
 * Commands run through sudo, and telling sudo's own refusals from the command's failures.
 *
 * A command's exit 1 and sudo's exit 1 look the same, and the command's stderr may say anything,
 * so the root side announces itself: the first thing it does, before the command, is write a
 * marker line (unique per call) to stderr. No marker and a non-zero exit means sudo refused, and
 * only then is stderr read, as sudo's alone. sudo runs under `LC_ALL=C` so its messages are the
 * English ones; the root side puts the user's own `LC_ALL` back before the command starts.
 *
 * @module
 */

import { SshMcpError } from "../errors.ts";
import { randomHex } from "../random.ts";
import { shellQuote } from "../validate.ts";
import type { ExecResult } from "./exec.ts";

/** Options of {@linkcode buildSudoCommand}. */
export interface SudoCommandOptions {
  /** Whether a password is written to sudo's stdin (`sudo -S`); else `sudo -n`, which never waits for one. */
  withPassword: boolean;
  /** The root side's own time bound, in seconds (rounded up, at least 1). */
  timeoutSeconds: number;
  /**
   * The line the root side writes to stderr before the command.
   * @default a fresh {@linkcode newSudoMarker}
   */
  marker?: string;
}

/** A marker line for one call: unguessable, so no command's output is mistaken for it. */
export function newSudoMarker(): string {
  return `mcp-remote-ssh-sudo-${randomHex(10)}`;
}

/**
 * Wraps a command for sudo. The password, if any, is read by `sudo -S` from
 * stdin, never from the command line; the command itself gets /dev/null as
 * stdin so it cannot read the password if sudo did not ask for it.
 * Without a password, `sudo -n` fails at once instead of waiting for one.
 *
 * The login user cannot signal the root processes sudo starts, so the root
 * side bounds itself: coreutils `timeout` (where present) kills the
 * command's whole process group when `timeoutSeconds` have passed.
 *
 * @param command The shell command line to run as root (by `sh -c`).
 * @param options Password or not, the time bound and the marker.
 * @returns A POSIX shell command line for the login user.
 */
export function buildSudoCommand(command: string, options: SudoCommandOptions): string {
  const seconds = Math.max(1, Math.ceil(options.timeoutSeconds));
  const marker = options.marker ?? newSudoMarker();
  // $3: the marker; $4 and $5: the user's LC_ALL and whether it was set. LC_ALL is restored only
  // when sudo kept it (env_keep), so the command sees what sudo's policy would have given it.
  const script = `printf '%s\\n' "$3" >&2; ` +
    'if [ -n "${LC_ALL+x}" ]; then if [ "$5" = 1 ]; then LC_ALL=$4; export LC_ALL; else unset LC_ALL; fi; fi; ' +
    'exec </dev/null; if command -v timeout >/dev/null 2>&1; then exec timeout -s KILL "$1" sh -c "$2"; ' +
    'else exec sh -c "$2"; fi';
  const sudo = options.withPassword ? "sudo -S -k -p ''" : "sudo -n";
  return `LC_ALL=C ${sudo} -- sh -c ${shellQuote(script)} sh ${seconds} ${shellQuote(command)} ` +
    `${shellQuote(marker)} "\${LC_ALL-}" "\${LC_ALL+1}"`;
}

/** How sudo refused, from its own (LC_ALL=C) messages. */
export type SudoRefusal = "SUDO_PASSWORD_WRONG" | "SUDO_NOT_ALLOWED" | "SUDO_PASSWORD_REQUIRED";

/**
 * Names sudo's refusal from what sudo wrote to stderr, or null when it is none of the known ones.
 * @param stderr sudo's stderr, with no command output in it (the marker was absent).
 */
export function classifySudoRefusal(stderr: string): SudoRefusal | null {
  // Order matters: a wrong password on an account not in sudoers says "incorrect password".
  if (/\bincorrect password attempts?\b/.test(stderr)) return "SUDO_PASSWORD_WRONG";
  if (/ is not in the sudoers file\b| is not allowed to (?:run sudo|execute)\b/.test(stderr)) {
    return "SUDO_NOT_ALLOWED";
  }
  if (/\ba password is required\b|\bno password was provided\b/.test(stderr)) return "SUDO_PASSWORD_REQUIRED";
  return null;
}

/**
 * The result of a command run by {@linkcode buildSudoCommand}: its marker line taken out of
 * stderr when the command ran; a coded error when sudo refused and the command never ran.
 *
 * @param result What the exec returned.
 * @param options The marker of this call and whether a password was given.
 * @returns The result without the marker line.
 * @throws {SshMcpError} SUDO_PASSWORD_WRONG, SUDO_NOT_ALLOWED or SUDO_PASSWORD_REQUIRED.
 */
export function sudoOutcome(result: ExecResult, options: { marker: string; withPassword: boolean }): ExecResult {
  const line = `${options.marker}\n`;
  const at = result.stderr.indexOf(line);
  if (at >= 0) {
    return {
      ...result,
      stderr: result.stderr.slice(0, at) + result.stderr.slice(at + line.length),
      stderrBytes: Math.max(0, result.stderrBytes - line.length),
    };
  }
  // Output not from our wrapper, or no exit status to judge by: shown as received.
  if (result.markerMissing || result.timedOut || result.exitCode === null || result.exitCode === 0) return result;
  const refusal = classifySudoRefusal(result.stderr);
  if (refusal === null) return result;
  throw sudoError(refusal, sudoSaid(result.stderr, refusal), options.withPassword);
}

/** sudo's own line that says why, capped. */
function sudoSaid(stderr: string, refusal: SudoRefusal): string {
  const lines = stderr.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  const why = lines.find((l) => classifySudoRefusal(l) === refusal) ?? lines.at(-1) ?? "";
  return why.length > 300 ? why.slice(0, 300) + "…" : why;
}

function sudoError(code: SudoRefusal, said: string, withPassword: boolean): SshMcpError {
  const quoted = said === "" ? "" : ` (sudo: "${said.replace(/^sudo: /, "")}")`;
  if (code === "SUDO_PASSWORD_WRONG") {
    return new SshMcpError(code, `sudo refused the password${quoted}; the command did not run`, {
      hint: "Give the login user's own password (not root's) in `password`",
    });
  }
  if (code === "SUDO_NOT_ALLOWED") {
    return new SshMcpError(code, `sudo does not allow this user to run the command as root${quoted}; it did not run`, {
      hint: "The account needs a sudoers rule that lets it run /bin/sh as root (ssh_sudo_execute runs " +
        "`sh -c <command>`); use another account, or ssh_execute for what needs no root",
    });
  }
  return new SshMcpError(
    code,
    `sudo needs a password for this user${quoted}; the command did not run`,
    {
      hint: withPassword
        ? "sudo read no password: give the login user's password in `password`"
        : "Call again with the login user's password in `password`, or give the account a NOPASSWD sudoers rule",
    },
  );
}
