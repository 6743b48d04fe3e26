/**
 * Stable error codes and the one error class of mcp-remote-ssh.
 *
 * The code is the contract with agents: it survives in the tool result's
 * text and `_meta`, so agents can branch on it without parsing messages.
 *
 * @module
 */

/** Every code a tool error can carry. */
export type ErrorCode =
  | "INVALID_ARGUMENT"
  | "HOST_NOT_ALLOWED"
  | "POLICY_DENIED"
  | "APPROVAL_DECLINED"
  | "APPROVAL_UNAVAILABLE"
  | "SSH_CONFIG_INVALID"
  | "SSH_CONFIG_REFUSED"
  | "HOST_KEY_UNKNOWN"
  | "HOST_KEY_MISMATCH"
  | "HOST_KEY_REVOKED"
  | "KNOWN_HOSTS_WRITE_FAILED"
  | "AUTH_FAILED"
  | "AUTH_METHOD_MISSING"
  | "KEY_UNREADABLE"
  | "KEY_PASSPHRASE_REQUIRED"
  | "KEY_PASSPHRASE_WRONG"
  | "AGENT_UNAVAILABLE"
  | "CONNECT_REFUSED"
  | "CONNECT_TIMEOUT"
  | "DNS_FAILED"
  | "HANDSHAKE_FAILED"
  | "INTEGRITY_FAILED"
  | "CONNECTION_LOST"
  | "SESSION_NOT_FOUND"
  | "OUTPUT_NOT_FOUND"
  | "JOB_NOT_FOUND"
  | "JOB_RUNNING"
  | "JOB_FAILED"
  | "SESSION_LIMIT"
  | "CHANNEL_OPEN_FAILED"
  | "CWD_FAILED"
  | "EXEC_UNSUPPORTED"
  | "SUDO_PASSWORD_WRONG"
  | "SUDO_NOT_ALLOWED"
  | "SUDO_PASSWORD_REQUIRED"
  | "SHELL_NOT_FOUND"
  | "SHELL_CLOSED"
  | "SHELL_LIMIT"
  | "INPUT_BLOCKED"
  | "SFTP_UNAVAILABLE"
  | "SFTP_LOGIN_OUTPUT"
  | "SFTP_NO_SUCH_FILE"
  | "SFTP_PERMISSION_DENIED"
  | "SFTP_FAILURE"
  | "SFTP_TIMEOUT"
  | "SFTP_CHANNEL_RESET"
  | "FILE_EXISTS"
  | "NOT_A_DIRECTORY"
  | "PARENT_MISSING"
  | "IS_A_DIRECTORY"
  | "NOT_A_REGULAR_FILE"
  | "FILE_TOO_LARGE"
  | "BINARY_FILE"
  | "EDIT_NO_MATCH"
  | "EDIT_AMBIGUOUS"
  | "PRECONDITION_FAILED"
  | "PATH_NOT_ALLOWED"
  | "REMOTE_DISK_FULL"
  | "LOCAL_DISK_FULL"
  | "LIMIT_EXCEEDED"
  | "FORWARD_REFUSED"
  | "FORWARD_TARGET_FAILED"
  | "FORWARD_NOT_FOUND"
  | "FORWARD_LIMIT"
  | "BIND_FAILED"
  | "AUDIT_FAILED"
  | "CANCELLED"
  | "INTERNAL";

/**
 * What to do next, for each code: the hint an error carries when its throw site gives none, so
 * no failure reaches an agent without one. A throw site that knows more says more.
 */
export const DEFAULT_HINTS: Readonly<Record<ErrorCode, string>> = {
  INVALID_ARGUMENT: "Fix the named argument and call again",
  HOST_NOT_ALLOWED: "This server may only reach the hosts its operator listed (allowed_hosts, --allow-host); " +
    "use one of them or ask the operator",
  POLICY_DENIED: "The host's policy (host_policies in the server's config) does not allow this; do it another " +
    "way or ask the operator",
  APPROVAL_DECLINED: "A person declined this request; do not repeat it unchanged, ask them what they want instead",
  APPROVAL_UNAVAILABLE: "This host needs a person's approval, which this client cannot ask for (MCP elicitation); " +
    "use a client that supports it, or ask the operator to change the host's policy",
  SSH_CONFIG_INVALID: "Fix the named line of the ssh_config file (ssh -G shows how OpenSSH reads it)",
  SSH_CONFIG_REFUSED: "This server never runs local programs: use ProxyJump instead of ProxyCommand, or connect " +
    "with explicit arguments",
  HOST_KEY_UNKNOWN: "Verify the fingerprint out of band, then add the key to known_hosts or connect with accept-new",
  HOST_KEY_MISMATCH: "Treat this as a possible attack: verify the host's key out of band before changing known_hosts",
  HOST_KEY_REVOKED: "The key is marked @revoked in known_hosts; do not connect until the host has a new key",
  KNOWN_HOSTS_WRITE_FAILED: "Check that the known_hosts file and its directory are writable",
  AUTH_FAILED: "Check the username and the password, key or agent offered",
  AUTH_METHOD_MISSING: "Give a password, a private key, or an ssh-agent socket",
  KEY_UNREADABLE: "Check the private key path and that it is a readable OpenSSH or PEM key",
  KEY_PASSPHRASE_REQUIRED: "The key is encrypted: give its passphrase",
  KEY_PASSPHRASE_WRONG: "Check the key's passphrase",
  AGENT_UNAVAILABLE: "Check that ssh-agent runs and SSH_AUTH_SOCK names its socket",
  CONNECT_REFUSED: "Check the port and that sshd is running",
  CONNECT_TIMEOUT: "Check host and port, that sshd is up and reachable, or raise connect_timeout",
  DNS_FAILED: "Check the spelling of the host name, or give its IP address",
  HANDSHAKE_FAILED: "The server may not speak SSH on this port, or offers no algorithm in common",
  INTEGRITY_FAILED: "The data was altered in transit; check the network path before retrying",
  CONNECTION_LOST: "Call ssh_connect again to open a new session",
  SESSION_NOT_FOUND: "Call ssh_connect for a new session (ssh_list_sessions shows the open ones)",
  OUTPUT_NOT_FOUND: "An output_id comes with a truncated ssh_execute result and lasts until its session closes",
  JOB_NOT_FOUND: "List the session's jobs with ssh_job action=list",
  JOB_RUNNING: "Cancel the job (ssh_job action=cancel) or wait for it to end, then remove it",
  JOB_FAILED: "The remote host could not run the job's script; check the remote home is writable and /bin/sh works",
  SESSION_LIMIT: "Close a session you no longer need (ssh_close_session), then call again",
  CHANNEL_OPEN_FAILED: "The server refused a channel (MaxSessions?); wait for other calls to end, then retry",
  CWD_FAILED: "The command did not run; check the directory exists and is readable (ssh_stat_remote)",
  EXEC_UNSUPPORTED: "Use ssh_shell_open to run commands in the server's own shell",
  SUDO_PASSWORD_WRONG: "Give the login user's own password (not root's) in `password`",
  SUDO_NOT_ALLOWED: "The account may not run this as root through sudo; use an account with a sudoers rule",
  SUDO_PASSWORD_REQUIRED: "Give the login user's password in `password`, or give the account a NOPASSWD rule",
  SHELL_NOT_FOUND: "Open a shell with ssh_shell_open (ssh_list_sessions shows the open ones)",
  SHELL_CLOSED: "The shell has ended; open a new one with ssh_shell_open",
  SHELL_LIMIT: "Close a shell you no longer need, then call again",
  INPUT_BLOCKED: "The program is not reading its input; read its output or send Ctrl-C, then try again",
  SFTP_UNAVAILABLE: "The server has no SFTP subsystem; use ssh_execute for file work",
  SFTP_LOGIN_OUTPUT: "A login file prints output in non-interactive sessions; guard it with a check for a terminal",
  SFTP_NO_SUCH_FILE: "Check the remote path (ssh_list_remote_dir shows a directory's entries)",
  SFTP_PERMISSION_DENIED: "The login user may not do this; check the remote file's owner and mode",
  SFTP_FAILURE: "Check the remote path and free space, then try again",
  SFTP_TIMEOUT: "The server did not answer in time; check it, or raise the timeout",
  SFTP_CHANNEL_RESET: "The SFTP channel was reset; call again to open a new one",
  FILE_EXISTS: "Pass overwrite: true to replace it, or choose another path",
  NOT_A_DIRECTORY: "Check the path: a part of it is not a directory",
  PARENT_MISSING: "Pass parents=true to create the missing directories, or check the path",
  IS_A_DIRECTORY: "Give a file path, or use the tree tools for a directory",
  NOT_A_REGULAR_FILE: "Only regular files can be read or transferred",
  FILE_TOO_LARGE: "Use ssh_download_file for large files",
  BINARY_FILE: "Use ssh_download_file for binary files",
  EDIT_NO_MATCH: "Read the file again and give text that occurs in it exactly",
  EDIT_AMBIGUOUS: "Give more surrounding text so the match is unique, or replace all occurrences",
  PRECONDITION_FAILED: "The file changed since it was read; read it again and retry",
  PATH_NOT_ALLOWED: "Use a path under one of the configured local roots",
  REMOTE_DISK_FULL: "Free space on the remote file system, then try again",
  LOCAL_DISK_FULL: "Free space on the local file system, then try again",
  LIMIT_EXCEEDED: "Split the work into smaller parts",
  FORWARD_REFUSED: "The server does not allow this forward (AllowTcpForwarding, PermitOpen, PermitListen)",
  FORWARD_TARGET_FAILED: "Check that the target host and port are reachable from the server",
  FORWARD_NOT_FOUND: "List the session's forwards with ssh_list_forwards",
  FORWARD_LIMIT: "Close a forward you no longer need, then call again",
  BIND_FAILED: "Choose another local port, or 0 for any free one",
  AUDIT_FAILED: "The audit log cannot be written, so nothing runs: the operator must fix the log file or its disk",
  CANCELLED: "The call was cancelled; call again if it is still wanted",
  INTERNAL: "This is a bug in mcp-remote-ssh; the session may still be usable",
};

// Retryable by default: failures that happen before anything reached the
// remote side (connect, handshake, a refused channel, a connection already
// gone). Once a command or transfer may have started, `outcomeUnknown()`
// takes the retry advice back, whatever the code.
const RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "CONNECT_REFUSED",
  "CONNECT_TIMEOUT",
  "CONNECTION_LOST",
  "CHANNEL_OPEN_FAILED",
  "HANDSHAKE_FAILED",
  "SFTP_CHANNEL_RESET",
]);

/** Options of {@linkcode SshMcpError}. */
export interface SshMcpErrorOptions {
  /**
   * What the agent can do next.
   * @default the code's entry in {@linkcode DEFAULT_HINTS}
   */
  hint?: string;
  /** The error this one explains. */
  cause?: unknown;
  /**
   * Whether the same call may succeed if repeated.
   * @default derived from the code
   */
  retryable?: boolean;
}

/** The one error type that crosses layers; everything else is mapped into it. */
export class SshMcpError extends Error {
  /** Stable machine-readable code. */
  readonly code: ErrorCode;
  /** What the agent can do next: the throw site's, else the code's {@linkcode DEFAULT_HINTS} entry. */
  readonly hint: string;
  /** Whether repeating the call may succeed. */
  readonly retryable: boolean;

  /** Creates an error with a stable code. */
  constructor(code: ErrorCode, message: string, options: SshMcpErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = "SshMcpError";
    this.code = code;
    this.hint = options.hint ?? DEFAULT_HINTS[code];
    this.retryable = options.retryable ?? RETRYABLE.has(code);
  }
}

/** The hint of a command whose outcome is unknown. */
export const COMMAND_OUTCOME_UNKNOWN = "The command may have run: check the remote state before running it again";

/**
 * The same failure, said of an operation that may already have taken effect
 * on the remote side: not retryable, and the hint says to look before
 * repeating it. An agent told "retryable" after a lost `echo x >> f` would
 * append twice; the remote state is the only one that knows.
 *
 * @param error The failure as the lower layer reported it (its hint is kept after the new one).
 * @param hint What may have happened and what to check.
 * @returns A non-retryable error with the same code and message, caused by `error`.
 *
 * @example
 * ```ts
 * const lost = new SshMcpError("CONNECTION_LOST", "Connection lost", { hint: "Call ssh_connect again" });
 * outcomeUnknown(lost).retryable; // false
 * ```
 */
export function outcomeUnknown(error: SshMcpError, hint: string = COMMAND_OUTCOME_UNKNOWN): SshMcpError {
  if (!error.retryable && error.hint?.startsWith(hint)) return error; // said already
  return new SshMcpError(error.code, error.message, {
    hint: `${hint}. ${error.hint}`,
    cause: error,
    retryable: false,
  });
}

/** The shape of an MCP tool error result that keeps the code. */
export interface ToolErrorResult {
  [key: string]: unknown;
  isError: true;
  content: { type: "text"; text: string }[];
  _meta: { code: ErrorCode; retryable: boolean; hint: string };
}

/**
 * Turns anything thrown by a tool into an MCP error result.
 *
 * The SDK would flatten a thrown error to its message and lose the code, so
 * tools catch and map here. Unknown errors become INTERNAL without their
 * stack, which may hold paths or secrets.
 */
export function toToolResult(error: unknown): ToolErrorResult {
  const e = error instanceof SshMcpError
    ? error
    : new SshMcpError("INTERNAL", `Unexpected failure: ${describe(error)}`, {
      hint: "This is a bug in mcp-remote-ssh; the session may still be usable",
    });
  const text = `[${e.code}] ${e.message}\nHint: ${e.hint}`;
  return {
    isError: true,
    content: [{ type: "text", text }],
    _meta: { code: e.code, retryable: e.retryable, hint: e.hint },
  };
}

function describe(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}
