/**
 * What a client sent, checked against JSON-RPC 2.0 before the SDK sees it, so
 * that every request gets an answer.
 *
 * The SDK (1.32) parses each message with one zod schema and, when that fails,
 * reports an error to the transport and drops the message: invalid JSON, a
 * wrong `jsonrpc`, a batch, an id like 1.5, `params: null` or `[]` were read
 * and never answered, and the client waited forever
 * (modelcontextprotocol/typescript-sdk#2247). Params that fail a method's own
 * schema escape its handler as a ZodError and are answered -32603 instead of
 * -32602 (typescript-sdk#2284). Both transports run every message through
 * {@linkcode checkMessage} and write the reply it gives themselves.
 *
 * Batches: MCP 2025-06-18 removed JSON-RPC batching and the SDK implements
 * 2025-11-25, so over stdio a batch is refused element by element: each
 * request in it gets its own -32600 (with its id, so the client can match it),
 * as JSON-RPC answers a batch with an array. Over streamable HTTP the SDK runs
 * batches of valid messages itself (older clients may send them); see http.ts.
 *
 * @module
 */

// @ts-types="@modelcontextprotocol/sdk/types"
import { ClientRequestSchema, type JSONRPCMessage, JSONRPCMessageSchema } from "@modelcontextprotocol/sdk/types.js";

/** JSON-RPC 2.0 error codes used here. */
export const PARSE_ERROR = -32700;
/** The message is not a valid Request object. */
export const INVALID_REQUEST = -32600;
/** The method's parameters are invalid. */
export const INVALID_PARAMS = -32602;

/** A JSON-RPC error response this layer writes itself. */
export interface ErrorReply {
  jsonrpc: "2.0";
  /** The request's id, or null when it cannot be read (JSON-RPC 2.0 §5). */
  id: string | number | null;
  error: { code: number; message: string };
}

/** The outcome of a check: a message for the SDK, or why not and what to answer (null: nothing, by the spec). */
export type Checked =
  | { message: JSONRPCMessage }
  | { problem: string; reply: ErrorReply | ErrorReply[] | null };

const MEMBERS = new Set(["jsonrpc", "id", "method", "params"]);

// The params schema of each request method a client may send, from the SDK's own list.
const REQUEST_SCHEMAS = new Map<string, (typeof ClientRequestSchema.options)[number]>(
  ClientRequestSchema.options.map((schema) => [schema.shape.method.value, schema]),
);

/** Checks one line of stdio (or one HTTP body) as JSON text. */
export function checkText(text: string): Checked {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // The parser's own message quotes the input, which may hold a password: not repeated.
    return refuse(null, PARSE_ERROR, "Parse error: the message is not valid JSON");
  }
  return checkValue(value);
}

/**
 * Checks a parsed message. A batch (array) is never passed on: each element
 * is checked, and each request in it answered with -32600.
 */
export function checkValue(value: unknown): Checked {
  if (!Array.isArray(value)) return checkOne(value);
  if (value.length === 0) return refuse(null, INVALID_REQUEST, "Invalid Request: an empty batch");
  const replies: ErrorReply[] = [];
  for (const element of value) {
    const one = checkOne(element);
    if ("message" in one) {
      if ("method" in one.message && "id" in one.message) {
        replies.push(errorReply(
          one.message.id,
          INVALID_REQUEST,
          "Invalid Request: JSON-RPC batches are not supported (MCP 2025-06-18 removed them); " +
            "send each request as its own message",
        ));
      }
    } else if (one.reply !== null) {
      replies.push(...(Array.isArray(one.reply) ? one.reply : [one.reply]));
    }
  }
  // Notifications and responses in a batch are answered by nothing, as JSON-RPC says.
  return { problem: "a JSON-RPC batch", reply: replies.length === 0 ? null : replies };
}

/** Checks one message (not a batch). */
export function checkOne(value: unknown): Checked {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return refuse(null, INVALID_REQUEST, "Invalid Request: a JSON-RPC message is an object");
  }
  const m = value as Record<string, unknown>;
  const hasId = Object.hasOwn(m, "id");
  const id = hasId ? readableId(m.id) : null;
  if (!Object.hasOwn(m, "method")) {
    // A response (to roots/list, say): nothing may answer it, valid or not.
    if (Object.hasOwn(m, "result") || Object.hasOwn(m, "error")) return sdkParse(m, undefined);
    return refuse(id, INVALID_REQUEST, "Invalid Request: no method");
  }
  // Without an id it is a notification: JSON-RPC answers none, even a malformed one.
  const answer = hasId ? id : undefined;
  if (m.jsonrpc !== "2.0") return refuse(answer, INVALID_REQUEST, 'Invalid Request: jsonrpc must be "2.0"');
  if (typeof m.method !== "string") return refuse(answer, INVALID_REQUEST, "Invalid Request: method must be a string");
  if (hasId && !(typeof m.id === "string" || Number.isSafeInteger(m.id))) {
    return refuse(answer, INVALID_REQUEST, "Invalid Request: the id must be a string or an integer (MCP)");
  }
  for (const key of Object.keys(m)) {
    if (!MEMBERS.has(key)) return refuse(answer, INVALID_REQUEST, `Invalid Request: unexpected member ${q(key)}`);
  }
  if (Object.hasOwn(m, "params")) {
    if (Array.isArray(m.params)) {
      return refuse(answer, INVALID_PARAMS, `Invalid params: ${m.method} takes its params by name (an object)`);
    }
    if (m.params === null || typeof m.params !== "object") {
      return refuse(answer, INVALID_REQUEST, "Invalid Request: params must be an object, or left out");
    }
  }
  const schema = hasId ? REQUEST_SCHEMAS.get(m.method) : undefined;
  if (schema !== undefined) {
    const parsed = schema.safeParse({ method: m.method, params: m.params });
    if (!parsed.success) {
      const where = parsed.error.issues.map((i) => `${i.path.map(String).join(".")}: ${i.message}`).join("; ");
      return refuse(answer, INVALID_PARAMS, `Invalid params for ${m.method}: ${where}`);
    }
  }
  return sdkParse(m, answer);
}

/** The JSON text of a reply (or of a batch of replies), without the newline. */
export function replyText(reply: ErrorReply | ErrorReply[]): string {
  return JSON.stringify(reply);
}

function sdkParse(m: Record<string, unknown>, answer: string | number | null | undefined): Checked {
  const parsed = JSONRPCMessageSchema.safeParse(m);
  if (parsed.success) return { message: parsed.data };
  // Whatever the checks above did not foresee: a request is still answered.
  return refuse(answer, INVALID_REQUEST, "Invalid Request: not a JSON-RPC 2.0 message MCP accepts");
}

// The id to answer with: the request's own when it can be sent back as it was
// read; an integer beyond 2^53 was already rounded by JSON.parse, and echoing
// the rounded value would name another request, so null (JSON-RPC: "if there
// was an error in detecting the id").
function readableId(id: unknown): string | number | null {
  if (typeof id === "string") return id;
  if (typeof id === "number" && Number.isFinite(id) && Math.abs(id) <= Number.MAX_SAFE_INTEGER) return id;
  return null;
}

function refuse(id: string | number | null | undefined, code: number, message: string): Checked {
  return { problem: message, reply: id === undefined ? null : errorReply(id, code, message) };
}

function errorReply(id: string | number | null, code: number, message: string): ErrorReply {
  return { jsonrpc: "2.0", id, error: { code, message } };
}

function q(text: string): string {
  return JSON.stringify(text.length > 40 ? text.slice(0, 40) + "…" : text);
}
