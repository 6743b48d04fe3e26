/**
 * Small responses shared by the HTTP transports: plain-text refusals,
 * JSON-RPC errors, and a JSON body read under a size limit.
 *
 * @module
 */

import { checkOne, type ErrorReply, INVALID_REQUEST } from "./jsonrpc.ts";

/** A plain-text response (the gate's refusals). */
export function plain(status: number, text: string): Response {
  return new Response(text + "\n", { status, headers: { "content-type": "text/plain" } });
}

/**
 * A JSON-RPC error response: with no request id (`null`), as the MCP
 * transports answer before a message is read, unless `init.id` names one.
 */
export function jsonError(
  status: number,
  code: number,
  message: string,
  init: { id?: string | number | null; headers?: Record<string, string> } = {},
): Response {
  return new Response(JSON.stringify({ jsonrpc: "2.0", error: { code, message }, id: init.id ?? null }), {
    status,
    headers: { "content-type": "application/json", ...init.headers },
  });
}

/** Reads a JSON body up to `limit` bytes; a Response (413/400) when it cannot. */
export async function readJson(request: Request, limit: number): Promise<unknown | Response> {
  if (request.body === null) return jsonError(400, -32700, "Parse error: empty body");
  const reader = request.body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      return plain(413, `Payload Too Large: the limit is ${limit} bytes`);
    }
    parts.push(value);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.length;
  }
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return jsonError(400, -32700, "Parse error: the body is not JSON");
  }
}

/**
 * The 400 for a POSTed body the SDK must not see (jsonrpc.ts says why), or
 * null to pass it on. A batch whose every message is valid is passed on (the
 * streamable HTTP transport of the SDK runs it); one with an invalid message
 * is refused whole, each request in it answered: the invalid ones with what
 * is wrong, the others with "not run". A malformed notification or response
 * gets a 400 without an id, as MCP's streamable HTTP asks.
 */
export function refusal(body: unknown): Response | null {
  const messages = Array.isArray(body) ? body : [body];
  if (messages.length === 0) return jsonError(400, INVALID_REQUEST, "Invalid Request: an empty batch");
  const checked = messages.map(checkOne);
  if (checked.every((c) => "message" in c)) return null;
  const replies: ErrorReply[] = [];
  let problem = "";
  for (const c of checked) {
    if (!("message" in c)) {
      problem ||= c.problem;
      if (c.reply !== null) replies.push(...(Array.isArray(c.reply) ? c.reply : [c.reply]));
    } else if ("method" in c.message && "id" in c.message) {
      replies.push({
        jsonrpc: "2.0",
        id: c.message.id,
        error: { code: INVALID_REQUEST, message: "Invalid Request: not run, another message of the batch is invalid" },
      });
    }
  }
  if (replies.length === 0) return jsonError(400, INVALID_REQUEST, problem);
  const reply = Array.isArray(body) ? replies : replies[0];
  return new Response(JSON.stringify(reply), { status: 400, headers: { "content-type": "application/json" } });
}
