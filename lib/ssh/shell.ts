/**
 * Interactive shells on a PTY that an agent can drive: send text and keys,
 * read what arrived since the last read (raw, as text, or as the screen a
 * person would see), and wait for a prompt or for quiet.
 *
 * @module
 */

// @ts-types="@types/ssh2"
import type { ClientChannel } from "ssh2";
import type { Buffer } from "node:buffer";
import { SshMcpError } from "../errors.ts";
import type { ExitStatus, SshConnection } from "./connection.ts";
import { RollingBuffer } from "./rolling_buffer.ts";
import { utf8LeadingContinuations, utf8SafeEnd } from "./utf8.ts";
import type { Screen } from "./terminal.ts";
import { toText } from "./terminal_text.ts";

/** Options of {@linkcode Shell.open}. */
export interface ShellOptions {
  /**
   * TERM for the PTY.
   * @default "xterm-256color"
   */
  term?: string;
  /** @default 120 */
  cols?: number;
  /** @default 40 */
  rows?: number;
  /**
   * Output kept for reading, in bytes; older output is dropped (and counted).
   * @default 500000
   */
  bufferBytes?: number;
}

/** How read output is rendered. */
export type ReadMode = "raw" | "text" | "screen";

/** What a read returns. */
export interface ShellRead {
  /** Output since the last read (raw or text), or the screen rows joined by newlines. */
  output: string;
  /** Bytes of output consumed by this read. */
  bytes: number;
  /** Bytes that arrived since the last read but were dropped from the buffer before it. */
  droppedBytes: number;
  /** Bytes that arrived and are still unread (the read hit its byte limit). */
  remainingBytes: number;
  /** For `screen`: the cursor and the size. */
  screen?: { cursor: { row: number; col: number }; cols: number; rows: number };
  closed: boolean;
  exitCode: number | null;
  exitSignal: string | null;
}

/** What a wait returns. */
export interface ShellWait extends ShellRead {
  /** Why the wait ended. */
  reason: "matched" | "quiet" | "timeout" | "closed";
  /** The text that matched the pattern, when one did. */
  match: string | null;
}

/** Options of {@linkcode Shell.wait}. */
export interface WaitOptions {
  /** Text (or a regular expression, with `regex`) to wait for in the unread output (as text). */
  pattern?: string;
  regex?: boolean;
  /** Also return once no output has arrived for this long. */
  quietMs?: number;
  timeoutMs: number;
  /** Byte limit of the output returned. */
  maxBytes: number;
  signal?: AbortSignal;
}

const SEARCH_WINDOW = 64 * 1024; // unread text searched per check: bounds regex cost
// Each new chunk is searched with this much of the output before it, so a
// match split across chunks is still found without rescanning everything.
const MATCH_OVERLAP = 4096;
const SCREEN_BACKLOG_HIGH = 1024 * 1024;
const SCREEN_BACKLOG_LOW = 256 * 1024;

/** One PTY shell. Close it with {@linkcode Shell.close}. */
export class Shell {
  /** The shell's id within its session. */
  readonly id: string;
  #channel: ClientChannel;
  #status: ExitStatus;
  #buffer: RollingBuffer;
  #cursor = 0; // absolute offset of the first unread byte
  #screen: Screen;
  #screenWritten: Promise<void> = Promise.resolve();
  #screenBacklog = 0; // bytes handed to the emulator and not yet parsed
  #paused = false;
  #closed = false;
  #lastOutputAt = performance.now();
  #listeners = new Set<() => void>();
  #onClose: () => void;

  private constructor(
    id: string,
    parts: {
      channel: ClientChannel;
      status: ExitStatus;
      closed: Promise<void>;
      screen: Screen;
      options: Required<ShellOptions>;
    },
  ) {
    this.id = id;
    this.#channel = parts.channel;
    this.#status = parts.status;
    this.#buffer = new RollingBuffer(parts.options.bufferBytes);
    this.#screen = parts.screen;
    this.#onClose = () => {};
    parts.channel.on("data", (chunk: Buffer) => this.#output(chunk));
    // A PTY merges stderr into stdout; anything on the extended stream is still output.
    parts.channel.stderr.on("data", (chunk: Buffer) => this.#output(chunk));
    parts.closed.then(() => {
      this.#closed = true;
      this.#notify();
      this.#onClose();
    });
  }

  /** Opens a PTY shell on a connection. */
  static async open(connection: SshConnection, id: string, options: ShellOptions = {}): Promise<Shell> {
    const opts: Required<ShellOptions> = {
      term: options.term ?? "xterm-256color",
      cols: options.cols ?? 120,
      rows: options.rows ?? 40,
      bufferBytes: options.bufferBytes ?? 500_000,
    };
    // The emulator is loaded on first use: servers that never open a shell
    // do not carry it.
    const { Screen } = await import("./terminal.ts");
    const screen = new Screen({ cols: opts.cols, rows: opts.rows });
    let opened;
    try {
      opened = await connection.shell({ term: opts.term, cols: opts.cols, rows: opts.rows });
    } catch (error) {
      screen.dispose();
      throw error;
    }
    return new Shell(id, { ...opened, screen, options: opts });
  }

  /** Whether the shell has ended. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Registers a callback for the end of the shell. */
  set onClose(callback: () => void) {
    this.#onClose = callback;
    if (this.#closed) callback();
  }

  /** Sends text as typed (no newline added). */
  send(text: string): void {
    this.#assertOpen();
    this.#channel.write(text);
  }

  /** Changes the PTY size (the remote program gets SIGWINCH). */
  resize(cols: number, rows: number): void {
    this.#assertOpen();
    this.#channel.setWindow(rows, cols, 0, 0);
    this.#screenWritten = this.#screenWritten.then(() => this.#screen.resize(cols, rows));
  }

  /** Reads what arrived since the last read, up to `maxBytes` bytes. */
  async read(mode: ReadMode, maxBytes: number): Promise<ShellRead> {
    if (mode === "screen") {
      await this.#screenWritten;
      const snap = this.#screen.snapshot();
      const unread = this.#buffer.end - Math.max(this.#cursor, this.#buffer.start);
      const dropped = Math.max(0, this.#buffer.start - this.#cursor);
      this.#cursor = this.#buffer.end; // the screen shows the result of everything so far
      return {
        output: snap.lines.join("\n"),
        bytes: unread,
        droppedBytes: dropped,
        remainingBytes: 0,
        screen: { cursor: snap.cursor, cols: snap.cols, rows: snap.rows },
        ...this.#exit(),
      };
    }
    const dropped = Math.max(0, this.#buffer.start - this.#cursor);
    let from = Math.max(this.#cursor, this.#buffer.start);
    const window = this.#buffer.slice(from, from + maxBytes);
    // Never hand out half a character: skip the tail of one cut off by a
    // drop, and leave an incomplete one at the end for the next read.
    const skip = utf8LeadingContinuations(window);
    const end = utf8SafeEnd(window);
    const bytes = window.subarray(skip, Math.max(skip, end));
    from += skip;
    this.#cursor = from + bytes.length;
    const raw = new TextDecoder().decode(bytes);
    return {
      output: mode === "text" ? toText(raw) : raw,
      bytes: bytes.length,
      droppedBytes: dropped + skip,
      remainingBytes: this.#buffer.end - this.#cursor,
      ...this.#exit(),
    };
  }

  /**
   * Waits until the unread output (as text) contains `pattern`, or no output
   * has arrived for `quietMs`, or the shell closes, or `timeoutMs` passes;
   * then reads (as text) what arrived.
   */
  async wait(options: WaitOptions): Promise<ShellWait> {
    const matcher = options.pattern === undefined ? null : makeMatcher(options.pattern, options.regex ?? false);
    const started = performance.now();
    let match: string | null = null;
    const reason = await new Promise<ShellWait["reason"]>((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const finish = (why: ShellWait["reason"]) => {
        clearTimeout(timer);
        this.#listeners.delete(check);
        options.signal?.removeEventListener("abort", onAbort);
        resolve(why);
      };
      const onAbort = () => finish("timeout");
      let checkedTo = -Infinity; // output already searched, but for an overlap
      const check = () => {
        if (matcher !== null && this.#buffer.end > checkedTo) {
          const found = matcher(this.#unreadText(checkedTo - MATCH_OVERLAP));
          checkedTo = this.#buffer.end;
          if (found !== null) {
            match = found;
            return finish("matched");
          }
        }
        if (this.#closed) return finish("closed");
        const now = performance.now();
        if (now - started >= options.timeoutMs) return finish("timeout");
        let next = started + options.timeoutMs;
        if (options.quietMs !== undefined) {
          const quietAt = Math.max(this.#lastOutputAt, started) + options.quietMs;
          if (now >= quietAt) return finish("quiet");
          next = Math.min(next, quietAt);
        }
        clearTimeout(timer);
        timer = setTimeout(check, Math.max(1, next - now));
      };
      this.#listeners.add(check);
      options.signal?.addEventListener("abort", onAbort, { once: true });
      check();
    });
    if (options.signal?.aborted) {
      throw new SshMcpError("CANCELLED", "Wait was cancelled; the shell keeps running");
    }
    // A match consumes output only through the match: what follows (often
    // the next prompt) stays unread for the next wait or read.
    const limit = reason === "matched" && matcher !== null ? this.#matchEnd(matcher) : undefined;
    const read = await this.read("text", Math.min(options.maxBytes, limit ?? Infinity));
    return { ...read, reason, match };
  }

  /** Ends the shell (closes its channel). */
  close(): void {
    if (!this.#closed) this.#channel.close();
    this.#screenWritten = this.#screenWritten.then(() => this.#screen.dispose());
  }

  #output(chunk: Uint8Array): void {
    this.#buffer.push(chunk);
    this.#lastOutputAt = performance.now();
    // The emulator parses in time slices and keeps what it has not parsed
    // yet. Like a slow terminal, it slows the program down instead: past a
    // backlog the channel is paused, so SSH flow control stops the remote.
    this.#screenBacklog += chunk.length;
    this.#screenWritten = this.#screen.write(chunk).then(() => {
      this.#screenBacklog -= chunk.length;
      if (this.#paused && this.#screenBacklog < SCREEN_BACKLOG_LOW) {
        this.#paused = false;
        this.#channel.resume();
      }
    });
    if (!this.#paused && this.#screenBacklog > SCREEN_BACKLOG_HIGH) {
      this.#paused = true;
      this.#channel.pause();
    }
    this.#notify();
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) listener();
  }

  #searchWindow(since = -Infinity): { from: number; bytes: Uint8Array } {
    const from = Math.max(this.#cursor, this.#buffer.end - SEARCH_WINDOW, this.#buffer.start, since);
    const bytes = this.#buffer.slice(from, this.#buffer.end);
    const skip = utf8LeadingContinuations(bytes);
    return { from: from + skip, bytes: bytes.subarray(skip) };
  }

  #unreadText(since?: number): string {
    return toText(new TextDecoder().decode(this.#searchWindow(since).bytes));
  }

  // Unread bytes up to the end of the first match: the shortest prefix of the
  // search window whose text still matches (found by bisection).
  #matchEnd(matcher: (text: string) => string | null): number | undefined {
    const { from, bytes } = this.#searchWindow();
    const matches = (n: number) => matcher(toText(new TextDecoder().decode(bytes.subarray(0, n)))) !== null;
    if (!matches(bytes.length)) return undefined;
    let lo = 0;
    let hi = bytes.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (matches(mid)) hi = mid;
      else lo = mid + 1;
    }
    return from + hi - Math.max(this.#cursor, this.#buffer.start);
  }

  #exit(): { closed: boolean; exitCode: number | null; exitSignal: string | null } {
    return { closed: this.#closed, exitCode: this.#status.code, exitSignal: this.#status.signal };
  }

  #assertOpen(): void {
    if (this.#closed) {
      const status = this.#status.code !== null
        ? `exit status ${this.#status.code}`
        : this.#status.signal !== null
        ? `signal ${this.#status.signal}`
        : "no exit status";
      throw new SshMcpError("SHELL_CLOSED", `Shell ${this.id} has ended (${status})`, {
        hint: "Open a new one with ssh_shell_open",
      });
    }
  }
}

function makeMatcher(pattern: string, regex: boolean): (text: string) => string | null {
  if (!regex) return (text) => (text.includes(pattern) ? pattern : null);
  let re: RegExp;
  try {
    re = new RegExp(pattern, "m");
  } catch (error) {
    throw new SshMcpError("INVALID_ARGUMENT", `Invalid regular expression: ${(error as Error).message}`, {
      hint: "Fix the pattern, or pass regex=false to match it as plain text",
    });
  }
  return (text) => re.exec(text)?.[0] ?? null;
}
