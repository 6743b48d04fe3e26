/**
 * The error of the ssh_config reader: every failure names the file and line it
 * comes from, so a user can fix their `~/.ssh/config` without guessing.
 *
 * @module
 */

import { SshMcpError } from "../errors.ts";

/**
 * Why a config line failed:
 * - `invalid`: OpenSSH would reject it too (bad syntax, bad value, unknown keyword or token);
 * - `refused`: it applies to this host and would make the client run a program or load code,
 *   which this server never does;
 * - `unsupported`: OpenSSH accepts it, but this reader cannot reproduce its meaning
 *   (`Match final`, `${VAR}` from the user's shell environment, `~user`).
 */
export type SshConfigErrorKind = "invalid" | "refused" | "unsupported";

const HINTS: Record<SshConfigErrorKind, string> = {
  invalid: "Fix the named line of the ssh config file (`ssh -G HOST` shows how OpenSSH reads it)",
  refused:
    "The server cannot run programs from ssh_config: use ProxyJump instead of ProxyCommand, or a Host alias without that line",
  unsupported: "Rewrite the named line without that feature, or give host, port and user explicitly",
};

/** A line of an ssh_config file that could not be read or applied. */
export class SshConfigError extends SshMcpError {
  /** The file the line is in (as it was opened, after `~` expansion). */
  readonly file: string;
  /** 1-based line number; 0 when the failure concerns the whole file. */
  readonly line: number;
  /** Why the line failed. */
  readonly kind: SshConfigErrorKind;

  /**
   * Creates an error whose message starts with `file line N:` like OpenSSH's own.
   *
   * @param kind Why the line failed.
   * @param at Where: the file and 1-based line (0 for the whole file).
   * @param reason What is wrong, in sentence case without a final period.
   */
  constructor(kind: SshConfigErrorKind, at: { file: string; line: number }, reason: string, cause?: unknown) {
    const where = at.line > 0 ? `${at.file} line ${at.line}` : at.file;
    super("INVALID_ARGUMENT", `${where}: ${reason}`, { hint: HINTS[kind], cause });
    this.name = "SshConfigError";
    this.file = at.file;
    this.line = at.line;
    this.kind = kind;
  }
}
