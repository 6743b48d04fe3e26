/**
 * Small responses shared by the HTTP transports: plain-text refusals,
 * JSON-RPC errors, and a JSON body read under a size limit.
 *
 * @module
 */

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
