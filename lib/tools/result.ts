/**
 * Shared plumbing of tool handlers: the result shape and bounded opens.
 * Errors are mapped once, in dispatch.ts.
 *
 * @module
 */

import type { Config } from "../config.ts";
import { SshMcpError } from "../errors.ts";
import type { Session } from "../sessions.ts";
import type { SFTPWrapper } from "../ssh2/mod.ts";
import { setRequestDeadline } from "../ssh/sftp.ts";

/** A successful tool result: structured data plus text for clients that show only text. */
export interface ToolSuccess<T> {
  [key: string]: unknown;
  content: { type: "text"; text: string }[];
  structuredContent: T & Record<string, unknown>;
}

/** Builds a success result. */
export function ok<T extends object>(structured: T, text: string): ToolSuccess<T> {
  return { content: [{ type: "text", text }], structuredContent: structured as T & Record<string, unknown> };
}

/**
 * Runs `open` (waiting for a channel slot and the server's answer) under the
 * call's cancel `signal` and a deadline of `ms`, after which it fails with
 * `timedOut()`. File calls and shell opens have no `timeout` argument, and
 * many clients never cancel: without this, a session whose every slot is held
 * (shells, a stuck SFTP channel sshd keeps) would make them wait for ever.
 */
export async function openWithin<T>(
  ms: number,
  signal: AbortSignal | undefined,
  timedOut: () => Error,
  open: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const expiry = new AbortController();
  const timer = setTimeout(() => expiry.abort(timedOut()), ms);
  try {
    return await open(signal ? AbortSignal.any([expiry.signal, signal]) : expiry.signal);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The session's shared SFTP channel, opened within the default command
 * timeout: each request may wait on a silent channel that long, past which
 * the channel is stuck (lib/ssh/sftp.ts) and is replaced. `signal` (the
 * call's cancel) bounds the wait for it to open, as it bounds each request.
 */
export async function sessionSftp(session: Session, config: Config, signal?: AbortSignal): Promise<SFTPWrapper> {
  const deadlineMs = config.defaultTimeoutSeconds * 1000;
  const sf = await openWithin(deadlineMs, signal, () =>
    new SshMcpError(
      "SFTP_TIMEOUT",
      `No SFTP channel on session ${session.id} within ${config.defaultTimeoutSeconds} s`,
      {
        hint: "Every channel of the session is taken (shells, commands, or SFTP channels stuck on the server) or " +
          "the server did not start its SFTP subsystem: close shells you no longer need, or reconnect",
      },
    ), (opening) => session.connection.sftp({ signal: opening }));
  setRequestDeadline(sf, deadlineMs);
  return sf;
}

/**
 * The text of `bytes` if they are valid UTF-8 and mostly printable, else
 * null (sent as base64). Control characters cost up to six bytes each once
 * escaped in JSON, twice over (text and structured): a page of them would
 * outgrow what clients read in one message.
 */
export function asText(bytes: Uint8Array): string | null {
  let controls = 0;
  for (const b of bytes) if (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) controls++;
  if (controls * 10 > bytes.length) return null;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}
