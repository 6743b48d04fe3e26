/**
 * Shared plumbing of tool handlers: the result shape and bounded opens.
 * Errors are mapped once, in dispatch.ts.
 *
 * @module
 */

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
