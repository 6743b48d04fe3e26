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
  | "SESSION_LIMIT"
  | "CHANNEL_OPEN_FAILED"
  | "COMMAND_TIMEOUT"
  | "CWD_FAILED"
  | "EXEC_UNSUPPORTED"
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
  | "CANCELLED"
  | "INTERNAL";

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
  /** What the agent can do next. */
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
  /** What the agent can do next, if anything. */
  readonly hint?: string;
  /** Whether repeating the call may succeed. */
  readonly retryable: boolean;

  /** Creates an error with a stable code. */
  constructor(code: ErrorCode, message: string, options: SshMcpErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = "SshMcpError";
    this.code = code;
    this.hint = options.hint;
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
    hint: error.hint === undefined ? hint : `${hint}. ${error.hint}`,
    cause: error,
    retryable: false,
  });
}

/** The shape of an MCP tool error result that keeps the code. */
export interface ToolErrorResult {
  [key: string]: unknown;
  isError: true;
  content: { type: "text"; text: string }[];
  _meta: { code: ErrorCode; retryable: boolean; hint?: string };
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
  const text = `[${e.code}] ${e.message}` + (e.hint ? `\nHint: ${e.hint}` : "");
  return {
    isError: true,
    content: [{ type: "text", text }],
    _meta: { code: e.code, retryable: e.retryable, ...(e.hint ? { hint: e.hint } : {}) },
  };
}

function describe(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}
