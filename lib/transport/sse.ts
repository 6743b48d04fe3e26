/**
 * The SSE transport of MCP 2024-11-05, for older clients: one event stream
 * per session, messages POSTed beside it.
 *
 * @module
 */

// @ts-types="@modelcontextprotocol/sdk/shared/transport"
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
// @ts-types="@modelcontextprotocol/sdk/types"
import { type JSONRPCMessage, JSONRPCMessageSchema } from "@modelcontextprotocol/sdk/types.js";
import { refusal } from "./responses.ts";

/**
 * The SSE transport (MCP 2024-11-05): a GET opens an event stream whose
 * first event names the URL to POST messages to; replies go down the stream.
 */
export class SseTransport implements Transport {
  sessionId: string;
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  #endpoint: string;
  #controller: ReadableStreamDefaultController<Uint8Array> | null = null;
  #closed = false;
  #keepAlive = 0;

  constructor(sessionId: string, endpoint: string) {
    this.sessionId = sessionId;
    this.#endpoint = endpoint;
  }

  start(): Promise<void> {
    return Promise.resolve();
  }

  /** The event stream for the GET that opened the session. */
  response(signal: AbortSignal): Response {
    const stream = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
        this.#write(`event: endpoint\ndata: ${this.#endpoint}\n\n`);
        this.#keepAlive = Number(setInterval(() => this.#write(": keep-alive\n\n"), 15_000));
      },
      cancel: () => this.close(),
    });
    signal.addEventListener("abort", () => this.close(), { once: true });
    return new Response(stream, {
      headers: { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" },
    });
  }

  /** A POSTed message (or batch) for the server. */
  deliver(body: unknown): Response {
    const refused = refusal(body);
    if (refused !== null) return refused;
    const messages = Array.isArray(body) ? body : [body];
    for (const raw of messages) this.onmessage?.(JSONRPCMessageSchema.parse(raw));
    return new Response("Accepted\n", { status: 202 });
  }

  send(message: JSONRPCMessage): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("SSE stream is closed"));
    this.#write(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
    return Promise.resolve();
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    clearInterval(this.#keepAlive);
    try {
      this.#controller?.close();
    } catch {
      // the client already went away
    }
    this.onclose?.();
    return Promise.resolve();
  }

  #write(text: string): void {
    try {
      this.#controller?.enqueue(new TextEncoder().encode(text));
    } catch {
      this.close();
    }
  }
}
