/**
 * An MCP stdio transport on Deno's own stdin/stdout.
 *
 * The SDK's StdioServerTransport goes through Deno's node:process stream
 * emulation; this one reads Deno.stdin into a reused buffer and writes each
 * message with one write, in order. It also reports the two ways a client
 * goes away as a close: stdin EOF and a stdout that can no longer be written.
 * A line that is not a valid message is answered here (jsonrpc.ts), never
 * dropped: the SDK's own stdio transport leaves such requests unanswered.
 *
 * @module
 */

// @ts-types="@modelcontextprotocol/sdk/shared/stdio"
import { serializeMessage } from "@modelcontextprotocol/sdk/shared/stdio.js";
// @ts-types="@modelcontextprotocol/sdk/shared/transport"
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
// @ts-types="@modelcontextprotocol/sdk/types"
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { checkText, INVALID_REQUEST, replyText } from "./jsonrpc.ts";
import { settle } from "./pending.ts";

/** Options of {@linkcode DenoStdioTransport}. */
export interface DenoStdioOptions {
  /**
   * Largest message accepted; a larger one closes the transport.
   * @default 64 MiB
   */
  maxMessageBytes?: number;
  /** Where messages come from; Deno.stdin unless testing. */
  input?: { read(p: Uint8Array): Promise<number | null> };
  /** Where messages go; Deno.stdout unless testing. */
  output?: { write(p: Uint8Array): Promise<number> };
  /**
   * After stdin EOF, how long requests already read may take to be answered
   * before the transport closes anyway (the client has left).
   * @default 5000
   */
  drainMs?: number;
}

/** Why the transport closed. */
export type CloseReason = "stdin closed" | "stdout closed" | "closed";

/** MCP over this process's stdin and stdout. */
export class DenoStdioTransport implements Transport {
  /** Called once when the transport closes. */
  onclose?: () => void;
  /** Called on errors that do not close the transport (a bad message). */
  onerror?: (error: Error) => void;
  /** Called for each message received. */
  onmessage?: (message: JSONRPCMessage) => void;
  /** Set when the transport has closed, saying why. */
  closeReason: CloseReason | null = null;
  #unanswered = new Set<string | number>();
  #drainMs: number;
  #drained: (() => void) | null = null;

  #input: NonNullable<DenoStdioOptions["input"]>;
  #output: NonNullable<DenoStdioOptions["output"]>;
  #maxBytes: number;
  #partial: Uint8Array[] = []; // bytes of a line not yet complete
  #partialBytes = 0;
  #oversized = false; // the line being read passed the limit: its bytes are dropped up to its newline
  #decoder = new TextDecoder();
  #writing: Promise<void> = Promise.resolve();
  #encoder = new TextEncoder();

  /** Creates the transport; reading starts with start(). */
  constructor(options: DenoStdioOptions = {}) {
    this.#input = options.input ?? Deno.stdin;
    this.#output = options.output ?? Deno.stdout;
    this.#maxBytes = options.maxMessageBytes ?? 64 * 1024 * 1024;
    this.#drainMs = options.drainMs ?? 5000;
  }

  /** Starts reading messages. */
  start(): Promise<void> {
    this.#readLoop();
    return Promise.resolve();
  }

  /** Writes one message; messages go out whole and in call order. */
  send(message: JSONRPCMessage): Promise<void> {
    settle(this.#unanswered, message, "out");
    if (this.#unanswered.size === 0) this.#drained?.();
    return this.#write(serializeMessage(message));
  }

  // One message (a line of JSON) out, after every message before it.
  #write(line: string): Promise<void> {
    const bytes = this.#encoder.encode(line);
    const write = this.#writing.then(async () => {
      if (this.closeReason !== null) return;
      try {
        for (let off = 0; off < bytes.length;) off += await this.#output.write(bytes.subarray(off));
      } catch (error) {
        // The client closed its end: nobody is listening any more.
        this.#close("stdout closed");
        throw error;
      }
    });
    this.#writing = write.catch(() => {});
    return write;
  }

  /** Stops reading and reports the close. */
  close(): Promise<void> {
    this.#close("closed");
    return Promise.resolve();
  }

  #close(reason: CloseReason): void {
    if (this.closeReason !== null) return;
    this.closeReason = reason;
    this.#partial = [];
    this.onclose?.();
  }

  async #readLoop(): Promise<void> {
    const chunk = new Uint8Array(64 * 1024);
    try {
      while (this.closeReason === null) {
        const n = await this.#input.read(chunk);
        if (n === null) break;
        this.#take(chunk.subarray(0, n));
      }
      await this.#drain();
      this.#close("stdin closed");
    } catch (error) {
      // Unreadable stdin.
      this.onerror?.(error instanceof Error ? error : new Error(String(error)));
      this.#close("closed");
    }
  }

  // Splits input into lines; a partial line is kept as its chunks and joined
  // once, so a large message costs one copy rather than one per chunk.
  #take(bytes: Uint8Array): void {
    let start = 0;
    for (let nl = bytes.indexOf(10); nl >= 0; nl = bytes.indexOf(10, start)) {
      this.#keep(bytes.subarray(start, nl));
      const line = joinChunks(this.#partial, this.#partialBytes);
      this.#partial = [];
      this.#partialBytes = 0;
      start = nl + 1;
      if (this.#oversized) this.#refuseOversized();
      else this.#deliver(this.#decoder.decode(line).replace(/\r$/, ""));
      if (this.closeReason !== null) return;
    }
    this.#keep(bytes.subarray(start).slice()); // copied: the read buffer is reused
  }

  #keep(part: Uint8Array): void {
    if (part.length === 0 || this.#oversized) return;
    this.#partialBytes += part.length;
    if (this.#partialBytes > this.#maxBytes) {
      // Not kept, and not a reason to close: closing would end every SSH
      // session of this client for one bad message.
      this.#oversized = true;
      this.#partial = [];
      this.#partialBytes = 0;
      return;
    }
    this.#partial.push(part);
  }

  // Its id cannot be read without keeping it all, so the answer has id null (JSON-RPC 2.0 §5).
  #refuseOversized(): void {
    this.#oversized = false;
    const problem = `MCP message larger than ${this.#maxBytes} bytes`;
    this.onerror?.(new Error(`Refused a message: ${problem}`));
    this.#write(replyText({ jsonrpc: "2.0", id: null, error: { code: INVALID_REQUEST, message: problem } }) + "\n")
      .catch(() => {});
  }

  #deliver(line: string): void {
    if (line.trim() === "") return;
    const checked = checkText(line);
    if (!("message" in checked)) {
      this.onerror?.(new Error(`Refused a message: ${checked.problem}`));
      if (checked.reply !== null) this.#write(replyText(checked.reply) + "\n").catch(() => {});
      return;
    }
    const message = checked.message;
    settle(this.#unanswered, message, "in");
    if (this.#unanswered.size === 0) this.#drained?.();
    this.onmessage?.(message);
  }

  // After stdin EOF, requests already read still get their answers (a client
  // may pipe a batch and close), but a client that left is not waited for long.
  #drain(): Promise<void> {
    const answered = this.#unanswered.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, this.#drainMs);
      this.#drained = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    // Then the answers already handed to send() must reach stdout before the close.
    return answered.then(() => this.#writing);
  }
}

function joinChunks(chunks: Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}
