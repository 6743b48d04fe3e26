/**
 * Why an SFTP session could not open, as a coded error. Two causes look the
 * same from far away and need opposite advice:
 *
 * - the server refused the `sftp` subsystem: it offers none
 *   (`SFTP_UNAVAILABLE`);
 * - the subsystem started, but what came back first was not SFTP: the
 *   server starts an external sftp-server through the account's login shell
 *   (OpenSSH's `Subsystem sftp /usr/lib/openssh/sftp-server` runs it with
 *   `$SHELL -c`, Dropbear always does), and login files that print even in
 *   non-interactive shells put their text in front of the protocol
 *   (`SFTP_LOGIN_OUTPUT`). OpenSSH's sftp fails there too ("Received message
 *   too long 1919251316"); the fix is on the server, in those login files.
 *
 * @module
 */

import { SshMcpError } from "../errors.ts";
import { sftpFirstBytes } from "../ssh2/mod.ts";

/** Most characters of recovered login output shown in a message. */
export const SHOWN_CHARS = 80;

/** What the mapping needs to know of the connection. */
export interface SftpOpenContext {
  /** The server, as the user named it. */
  host: string;
  /** The account whose login files the hint names. */
  username: string;
}

/**
 * Maps the error ssh2 gives for a failed SFTP open while the connection is
 * up. ssh2 marks every failure of its SFTP parser with `level:
 * "sftp-protocol"`; before the session is ready, that means the server's
 * first bytes were not an SSH_FXP_VERSION packet. Anything else (the
 * subsystem request refused, the channel ended before a VERSION) keeps
 * meaning the server offers no SFTP.
 *
 * @param err What ssh2 passed to the `sftp()` callback.
 * @param context The connection's host and user, for the message and hint.
 * @returns `SFTP_LOGIN_OUTPUT` or `SFTP_UNAVAILABLE`, caused by `err`.
 *
 * @example
 * ```ts
 * const err = Object.assign(new Error("Packet length 2003135587 exceeds max length of 262144"), {
 *   level: "sftp-protocol",
 * });
 * sftpOpenError(err, { host: "box", username: "ann" }).message;
 * // 'Server box sent text instead of SFTP, starting "welc"'
 * ```
 */
export function sftpOpenError(err: Error, context: SftpOpenContext): SshMcpError {
  if ((err as { level?: unknown }).level !== "sftp-protocol") {
    return new SshMcpError("SFTP_UNAVAILABLE", `Server ${context.host} offers no SFTP subsystem`, {
      hint: "Enable `Subsystem sftp` in its sshd_config, or use ssh_execute for file work",
      cause: err,
    });
  }
  const text = textBefore(sftpFirstBytes(err) ?? recoveredText(err));
  const what = text === null
    ? `Server ${context.host} sent something other than SFTP when the SFTP session started`
    : `Server ${context.host} sent text instead of SFTP, starting "${escapeText(text, SHOWN_CHARS)}"`;
  return new SshMcpError("SFTP_LOGIN_OUTPUT", what, {
    hint: `The login files of ${context.username} print output even in non-interactive shells ` +
      "(e.g. an echo in ~/.bashrc); this server starts SFTP through the login shell, so that output corrupts it. " +
      "Print only in interactive shells: `[ -t 1 ] && echo …` or `case $- in *i*) …`. " +
      "ssh_execute still works (its output starts with the same text)",
    cause: err,
  });
}

/**
 * The login output of `bytes`: up to the first NUL. Text has none, and the
 * sftp-server's VERSION packet, which may have come in the same read, starts
 * with one (the high byte of its length), so what is shown does not depend on
 * how the bytes were split on their way.
 */
function textBefore(bytes: Uint8Array | null): Uint8Array | null {
  if (bytes === null) return null;
  const end = bytes.indexOf(0);
  if (end === 0) return null;
  return end < 0 ? bytes : bytes.subarray(0, end);
}

/**
 * The bytes ssh2 read as the first packet's length, when its message names
 * them: they are the first four bytes of whatever the server sent. With the
 * SFTP repair on (../ssh2/sftp_fix.ts) the error carries more of them;
 * without it, ssh2 keeps nothing else (no field, no buffer), so its message
 * is the only place they survive; the code above does not depend on it.
 */
export function recoveredText(err: Error): Uint8Array | null {
  const length = /^Packet length (\d+) exceeds max length/.exec(err.message)?.[1];
  if (length === undefined) return null;
  const n = Number(length);
  if (!Number.isSafeInteger(n) || n > 0xffff_ffff) return null;
  return Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

/**
 * Bytes shown as ASCII, anything else escaped (`\n`, `\t`, `\r`, `\\`, `\"`,
 * `\xNN`) so that remote bytes cannot steer a terminal or break the quoting;
 * cut at `max` characters of output, marked with `…`.
 */
export function escapeText(bytes: Uint8Array, max: number = SHOWN_CHARS): string {
  let out = "";
  for (const b of bytes) {
    const piece = b === 0x0a
      ? "\\n"
      : b === 0x0d
      ? "\\r"
      : b === 0x09
      ? "\\t"
      : b === 0x5c
      ? "\\\\"
      : b === 0x22
      ? '\\"'
      : b >= 0x20 && b < 0x7f
      ? String.fromCharCode(b)
      : `\\x${b.toString(16).padStart(2, "0")}`;
    if (out.length + piece.length > max) return out + "…";
    out += piece;
  }
  return out;
}
