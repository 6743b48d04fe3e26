/**
 * What an agent needs to know about the far side, learned once per
 * connection: the OS family, the login shell, and whether commands run the
 * way ssh_execute promises (POSIX semantics through ./wrapper.ts), run as
 * something else (a forced command), or cannot (Windows).
 *
 * @module
 */

import { SshMcpError } from "../errors.ts";
import type { SshConnection } from "./connection.ts";
import { execCommand } from "./exec.ts";
import { type Delivery, isPosixShell } from "./wrapper.ts";

/** How commands run on this server. */
export type ExecSupport =
  /** POSIX semantics: exit codes, cwd, env, a process group to kill. */
  | "posix"
  /** The server ran something other than our script: a forced command, or a login shell that runs none. */
  | "replaced"
  /** A Windows server (cmd.exe or PowerShell): no POSIX shell to wrap commands in. */
  | "windows"
  /** The probe did not finish; commands are wrapped the safe way. */
  | "unknown";

/** Facts about the remote side. */
export interface RemoteInfo {
  /** `uname -s` (e.g. `Linux`, `Darwin`, `FreeBSD`), `Windows`, or null when not known. */
  os: string | null;
  /** The login shell as the server reports it in `$SHELL`, or null. */
  loginShell: string | null;
  exec: ExecSupport;
  /** How ssh_execute reaches a POSIX shell (see ./wrapper.ts). */
  delivery: Delivery;
  /**
   * Whether a command gets a process group a timeout can kill: `own` (the
   * server makes one), `setsid` (we make one), `none` (a kill reaches the shell only).
   */
  processGroup: "own" | "setsid" | "none" | null;
  /** What the login files print on every command ("" when nothing). */
  loginOutput: string;
  /** What the server answered instead, when exec is `replaced` or `unknown` (capped). */
  note: string | null;
}

/** The answer for a connection nothing could be learned about: every command takes the safe way. */
export const UNKNOWN_REMOTE: RemoteInfo = {
  os: null,
  loginShell: null,
  exec: "unknown",
  delivery: "hop",
  processGroup: null,
  loginOutput: "",
  note: null,
};

// The login shell from the user database, as sshd and Dropbear find it: $SHELL
// can be changed by login files (fish users set it to bash for other tools).
// /etc/passwd is read with builtins (getent only for users not in it) and the
// OS from /proc where there is one: every process started costs the connect.
const PROBE = [
  "u=${LOGNAME:-${USER-}}; s=",
  'if [ -r /etc/passwd ]; then while IFS=: read -r n p i g c h x; do if [ "$n" = "$u" ]; then s=$x; break; fi; ' +
  "done < /etc/passwd; fi",
  '[ -n "$s" ] || { s=$(getent passwd "$u" 2>/dev/null); s=${s##*:}; }',
  'printf "%s\\n" "${s:-${SHELL-}}"',
  'if [ -r /proc/sys/kernel/ostype ]; then read -r o < /proc/sys/kernel/ostype; printf "%s\\n" "$o"; ' +
  "else uname -s 2>/dev/null || echo unknown; fi",
].join("; ");

/** What cmd.exe and PowerShell answer to our POSIX line. */
const WINDOWS_SHELL_ERRORS = [
  /is not recognized as an internal or external command/i, // cmd.exe
  /is not recognized as (?:the name of )?a cmdlet/i, // PowerShell
  /The term '.*' is not recognized/i, // PowerShell, also as a login shell on Linux or macOS
];

/**
 * Runs one small command through the wrapper and reads what came back. A
 * Windows server (OpenSSH for Windows says so in its version) gets no POSIX
 * line at all. Never fails the connection: what cannot be learned is
 * `unknown`; only the caller's cancel is thrown.
 */
export async function probeRemote(
  connection: SshConnection,
  options: { timeoutMs: number; signal?: AbortSignal },
): Promise<RemoteInfo> {
  if (/windows/i.test(connection.info.serverVersion)) {
    return { ...UNKNOWN_REMOTE, os: "Windows", exec: "windows", note: connection.info.serverVersion };
  }
  let result;
  try {
    result = await execCommand(connection, {
      command: PROBE,
      delivery: "hop",
      timeoutMs: options.timeoutMs,
      maxOutputBytes: 16 * 1024,
      signal: options.signal,
    });
  } catch (error) {
    if (options.signal?.aborted) throw error;
    const why = error instanceof SshMcpError ? `[${error.code}] ${error.message}` : String(error);
    return { ...UNKNOWN_REMOTE, note: `probe failed: ${why}` };
  }
  // A slow probe (a login file that sleeps) says nothing about the account.
  if (result.timedOut) {
    return { ...UNKNOWN_REMOTE, loginOutput: result.loginOutput, note: `no answer within ${options.timeoutMs} ms` };
  }
  const answer = cap(`${result.stdout}${result.stderr}`.trim());
  if (result.markerMissing) {
    if (WINDOWS_SHELL_ERRORS.some((re) => re.test(answer))) {
      // cmd.exe is Windows; PowerShell may be a login shell anywhere.
      const os = WINDOWS_SHELL_ERRORS[0].test(answer) ? "Windows" : null;
      return { ...UNKNOWN_REMOTE, os, exec: "windows", note: answer };
    }
    return { ...UNKNOWN_REMOTE, exec: "replaced", note: answer };
  }
  const [shell = "", os = ""] = result.stdout.split("\n");
  const group = result.group;
  return {
    os: os === "" || os === "unknown" ? null : os,
    loginShell: shell === "" ? null : shell,
    exec: "posix",
    delivery: shell !== "" && isPosixShell(shell) ? "direct" : "hop",
    processGroup: group === "g" ? "own" : group === "s" ? "setsid" : group === "n" ? "none" : null,
    loginOutput: result.loginOutput,
    note: null,
  };
}

function cap(text: string): string {
  return text.length > 500 ? text.slice(0, 500) + "…" : text;
}
