/**
 * Interactive shells on a PTY that an agent can drive: send text and keys,
 * read what arrived since the last read (raw, as text, or as the screen a
 * person would see), and wait for a prompt or for quiet.
 *
 * @module
 */

import type { ClientChannel } from "../ssh2/mod.ts";
import type { Buffer } from "node:buffer";
import { SshMcpError } from "../errors.ts";
import type { ExitStatus, SshConnection } from "./connection.ts";
import { lastLine as lastLineOf } from "./output.ts";
import { RollingBuffer } from "./rolling_buffer.ts";
import { utf8LeadingContinuations, utf8SafeEnd } from "./utf8.ts";
import { readableEnd } from "./shell_read.ts";
import { echoEnd, expectedEcho } from "./shell_echo.ts";
import type { Screen, ScreenSnapshot } from "./terminal.ts";
import { toText } from "./terminal_text.ts";
import { compileMatcher, type Matcher, type PatternMatch } from "./pattern.ts";

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
  /** Ends the wait for a channel slot and the open (the caller's cancel or deadline). */
  signal?: AbortSignal;
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
  /** Offset in the output stream just past what was read (pass as a wait's `after`). */
  offset: number;
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
  /** Also return once no output has arrived (in `screen` mode: the screen has not changed) for this long. */
  quietMs?: number;
  /**
   * Match only output from this stream offset on; by default, output after
   * the last send and its echo.
   */
  after?: number;
  /**
   * `screen`: quiet means the rendered screen stopped changing (programs that
   * repaint settle), and the result is the screen.
   * @default "text"
   */
  mode?: "text" | "screen";
  timeoutMs: number;
  /** Byte limit of the output returned. */
  maxBytes: number;
  signal?: AbortSignal;
}

const SEARCH_WINDOW = 64 * 1024; // unread text searched per check
// Thread steps of a regex search between turns of the event loop (about a
// millisecond; see lib/ssh/pattern.ts for why the search is linear).
const SLICE_STEPS = 100_000;
// Input the remote program has not read yet, beyond which sends are refused.
const MAX_PENDING_INPUT = 4 * 1024 * 1024;
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
  #closing = false; // close() was called: output is no longer rendered
  #finalScreen: ScreenSnapshot | null = null;
  #lastOutputAt = performance.now();
  // The last send: where output stood then, its expected echo, and where
  // the echo was found to end (null until known). See ./shell_echo.ts.
  #lastSend: { offset: number; echo: number[]; end: number | null } | null = null;
  #listeners = new Set<() => void>();
  #onClose: () => void;
  #size: { cols: number; rows: number };

  private constructor(
    id: string,
    parts: {
      channel: ClientChannel;
      status: ExitStatus;
      closed: Promise<void>;
      screen: Screen;
      options: Required<Omit<ShellOptions, "signal">>;
    },
  ) {
    this.id = id;
    this.#channel = parts.channel;
    this.#status = parts.status;
    this.#buffer = new RollingBuffer(parts.options.bufferBytes);
    this.#screen = parts.screen;
    this.#onClose = () => {};
    this.#size = { cols: parts.options.cols, rows: parts.options.rows };
    parts.channel.on("data", (chunk: Buffer) => this.#output(chunk));
    // A PTY merges stderr into stdout; anything on the extended stream is still output.
    parts.channel.stderr.on("data", (chunk: Buffer) => this.#output(chunk));
    // Without a listener, an ssh2 channel error (a write racing the
    // server's close) would be an uncaught error and end the process.
    parts.channel.on("error", () => {});
    parts.closed.then(async () => {
      this.#closed = true;
      this.#notify();
      this.#onClose();
      // Keep what the screen showed at the end, then free the emulator.
      await this.#screenWritten;
      if (!this.#screen.disposed) this.#finalScreen = this.#screen.snapshot();
      this.#disposeScreen();
    });
  }

  /** Opens a PTY shell on a connection. */
  static async open(connection: SshConnection, id: string, options: ShellOptions = {}): Promise<Shell> {
    const opts: Required<Omit<ShellOptions, "signal">> = {
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
      opened = await connection.shell({ term: opts.term, cols: opts.cols, rows: opts.rows }, {
        signal: options.signal,
      });
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

  /**
   * Resolves once the shell has printed something and then nothing for
   * `quietMs` (its prompt, as a rule), or it ended, or `timeoutMs` passed;
   * consumes nothing. Text sent before the prompt is typed ahead: the
   * terminal echoes it at once and the shell's line editor echoes it again
   * after the prompt, so a wait after such a send could match the second
   * echo, or take the first prompt for the answer.
   */
  ready(quietMs: number, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const started = performance.now();
    return new Promise((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = () => {
        clearTimeout(timer);
        this.#listeners.delete(check);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const check = () => {
        const now = performance.now();
        if (this.#closed || signal?.aborted || now - started >= timeoutMs) return done();
        const quietAt = this.#buffer.end > 0 ? this.#lastOutputAt + quietMs : Infinity;
        if (now >= quietAt) return done();
        clearTimeout(timer);
        timer = setTimeout(check, Math.max(1, Math.min(quietAt, started + timeoutMs) - now));
      };
      this.#listeners.add(check);
      signal?.addEventListener("abort", done, { once: true });
      check();
    });
  }

  /** Bytes of output the shell has produced since it opened. */
  get outputBytes(): number {
    return this.#buffer.end;
  }

  /** The last non-empty line of output (as text, at most 100 characters), for progress reports. */
  lastLine(): string {
    const from = Math.max(this.#buffer.start, this.#buffer.end - 512);
    return lastLineOf(toText(new TextDecoder().decode(this.#buffer.slice(from, this.#buffer.end))));
  }

  /** The PTY size as last set (at open or by resize). */
  get size(): { cols: number; rows: number } {
    return { ...this.#size };
  }

  /** Registers a callback for the end of the shell. */
  set onClose(callback: () => void) {
    this.#onClose = callback;
    if (this.#closed) callback();
  }

  /** Sends text as typed (no newline added); returns the output offset at the time of sending. */
  send(text: string): number {
    this.#assertOpen();
    if (this.#channel.writableLength > MAX_PENDING_INPUT) {
      throw new SshMcpError("INPUT_BLOCKED", `Shell ${this.id} is not reading its input`, {
        hint: "The program has megabytes of unread input; wait for it, or interrupt it with ctrl+c",
      });
    }
    this.#channel.write(text);
    const offset = this.#buffer.end;
    this.#lastSend = { offset, echo: expectedEcho(text), end: null };
    return offset;
  }

  /** Changes the PTY size (the remote program gets SIGWINCH). */
  resize(cols: number, rows: number): void {
    this.#assertOpen();
    this.#channel.setWindow(rows, cols, 0, 0);
    // At once: the program's redraw for the new size comes back over the
    // network, after this.
    this.#screen.resize(cols, rows);
    this.#size = { cols, rows };
  }

  /** Reads what arrived since the last read, up to `maxBytes` bytes. */
  async read(mode: ReadMode, maxBytes: number): Promise<ShellRead> {
    if (mode === "screen") {
      // Only bytes the emulator has parsed are shown, so only they count as read.
      const shownTo = this.#buffer.end;
      await this.#screenWritten;
      const snap = this.#finalScreen ?? this.#screen.snapshot();
      const unread = Math.max(0, shownTo - Math.max(this.#cursor, this.#buffer.start));
      const dropped = Math.max(0, this.#buffer.start - this.#cursor);
      this.#cursor = Math.max(this.#cursor, shownTo);
      return {
        output: snap.lines.join("\n"),
        bytes: unread,
        droppedBytes: dropped,
        remainingBytes: 0,
        offset: this.#cursor,
        screen: { cursor: snap.cursor, cols: snap.cols, rows: snap.rows },
        ...this.#exit(),
      };
    }
    const dropped = Math.max(0, this.#buffer.start - this.#cursor);
    let from = Math.max(this.#cursor, this.#buffer.start);
    // A little more than asked for, to hand out a whole escape sequence or
    // character when the limit is smaller than the next one.
    const window = this.#buffer.slice(from, from + Math.max(maxBytes, 512));
    // Never hand out half a character: skip the tail of one cut off by a
    // drop, and leave an incomplete one at the end for the next read.
    const skip = utf8LeadingContinuations(window);
    const final = this.#closed;
    const end = readableEnd(window, { start: skip, limit: Math.min(window.length, skip + maxBytes), final });
    const bytes = window.subarray(skip, end);
    from += skip;
    this.#cursor = from + bytes.length;
    const raw = new TextDecoder().decode(bytes);
    // A character or escape sequence still arriving is not "unread output"
    // the agent could read now: only what a read could return counts.
    const unread = this.#buffer.end - this.#cursor;
    const tail = this.#buffer.slice(this.#cursor, this.#buffer.end);
    const held = unread > 0 && unread <= 512 && readableEnd(tail, { start: 0, limit: tail.length, final }) === 0;
    return {
      output: mode === "text" ? toText(raw) : raw,
      bytes: bytes.length,
      droppedBytes: dropped + skip,
      remainingBytes: held ? 0 : unread,
      offset: this.#cursor,
      ...this.#exit(),
    };
  }

  /**
   * Waits until the unread output (as text) contains `pattern`, or no output
   * has arrived for `quietMs`, or the shell closes, or `timeoutMs` passes;
   * then reads (as text) what arrived.
   */
  async wait(options: WaitOptions): Promise<ShellWait> {
    // Compiled before anything waits: a refused pattern is an error at once.
    const matcher = options.pattern === undefined ? null : compileMatcher(options.pattern, options.regex ?? false);
    if (options.signal?.aborted) {
      throw new SshMcpError("CANCELLED", "Wait was cancelled; the shell keeps running");
    }
    const started = performance.now();
    const screenQuiet = options.mode === "screen" && options.quietMs !== undefined;
    // Screen mode samples the rendered screen: output arriving is not a
    // change when it repaints what is already shown (top, watch).
    let screenKey = screenQuiet ? this.#screenKey() : "";
    let screenChangedAt = started;
    let sampledTo = this.#buffer.end;
    const sampleEvery = Math.min(100, Math.max(10, (options.quietMs ?? 0) / 4));
    const sampleScreen = (now: number) => {
      if (this.#screenBacklog > 0 || sampledTo === this.#buffer.end) return;
      sampledTo = this.#buffer.end;
      const key = this.#screenKey();
      if (key !== screenKey) {
        screenKey = key;
        screenChangedAt = now;
      }
    };
    let match: string | null = null;
    let consumeTo: number | null = null; // absolute byte offset just past the match
    const reason = await new Promise<ShellWait["reason"]>((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      let sliceTimer: ReturnType<typeof setTimeout> | undefined;
      let done = false;
      const finish = (why: ShellWait["reason"]) => {
        done = true;
        clearTimeout(timer);
        clearTimeout(sliceTimer);
        this.#listeners.delete(onOutput);
        options.signal?.removeEventListener("abort", onAbort);
        resolve(why);
      };
      const onAbort = () => finish("timeout");
      let checkedTo = -Infinity; // output already searched, but for an overlap
      let scanning = false; // a search is running in slices
      // Searches the output not searched yet; a search too long for one
      // slice continues after other work had its turn, so a big window and a
      // big program never hold the event loop (the deadline still applies).
      const scan = (m: Matcher) => {
        const from = this.#searchFrom(options.after);
        if (from === null) return; // the echo of the send is still arriving
        const found = this.#window(Math.max(from, checkedTo - MATCH_OVERLAP));
        checkedTo = this.#buffer.end;
        const search = m.search(found.text);
        scanning = true;
        const step = () => {
          if (done) return;
          if (!search.run(SLICE_STEPS)) {
            sliceTimer = setTimeout(step, 0);
            return;
          }
          scanning = false;
          if (search.result !== null) {
            match = search.result.text;
            consumeTo = found.endOf(search.result);
            return finish("matched");
          }
          check(); // output may have arrived meanwhile
        };
        step();
      };
      const check = () => {
        if (done) return;
        if (matcher !== null && !scanning && this.#buffer.end > checkedTo) scan(matcher);
        if (done) return;
        // A shell that closed or went quiet ends the wait only once its
        // last output has been searched.
        if (!scanning && this.#closed) return finish("closed");
        const now = performance.now();
        if (now - started >= options.timeoutMs) return finish("timeout");
        let next = started + options.timeoutMs;
        if (options.quietMs !== undefined && !scanning) {
          if (screenQuiet) sampleScreen(now);
          const quietAt = screenQuiet
            ? screenChangedAt + options.quietMs
            : Math.max(this.#lastOutputAt, started) + options.quietMs;
          const settled = !screenQuiet || sampledTo === this.#buffer.end;
          if (now >= quietAt && settled) return finish("quiet");
          next = Math.min(next, screenQuiet ? now + sampleEvery : quietAt);
        }
        clearTimeout(timer);
        timer = setTimeout(check, Math.max(1, next - now));
      };
      // Output comes in bursts of small chunks (one per SSH packet): one
      // check per burst, not per chunk, keeps the rescanned overlap from
      // costing more than the output itself.
      let checkQueued = false;
      const onOutput = () => {
        if (checkQueued) return;
        checkQueued = true;
        // Screen mode looks once the emulator has drawn the output.
        const after = screenQuiet ? this.#screenWritten : Promise.resolve();
        after.then(() => {
          checkQueued = false;
          check();
        });
      };
      this.#listeners.add(onOutput);
      options.signal?.addEventListener("abort", onAbort, { once: true });
      check();
    });
    if (options.signal?.aborted) {
      throw new SshMcpError("CANCELLED", "Wait was cancelled; the shell keeps running");
    }
    if (options.mode === "screen") return { ...await this.read("screen", options.maxBytes), reason, match };
    // A match consumes output only through the match: what follows (often
    // the next prompt) stays unread for the next wait or read.
    const end = consumeTo as number | null;
    const limit = end === null ? Infinity : end - Math.max(this.#cursor, this.#buffer.start);
    const read = await this.read("text", Math.max(0, Math.min(options.maxBytes, limit)));
    return { ...read, reason, match };
  }

  /** Ends the shell (closes its channel). */
  close(): void {
    this.#closing = true;
    if (!this.#closed) this.#channel.close();
    if (this.#paused) this.#channel.resume(); // let the close come through
    this.#disposeScreen();
  }

  #disposeScreen(): void {
    this.#screenWritten = this.#screenWritten.then(() => this.#screen.dispose());
  }

  #output(chunk: Uint8Array): void {
    this.#buffer.push(chunk);
    this.#lastOutputAt = performance.now();
    if (this.#closing || this.#closed) return this.#notify(); // nobody will look at the screen again
    // The emulator parses in time slices and keeps what it has not parsed
    // yet. Like a slow terminal, it slows the program down instead: past a
    // backlog the channel is paused, so SSH flow control stops the remote.
    this.#screenBacklog += chunk.length;
    const resumeIfDrained = () => {
      this.#screenBacklog -= chunk.length;
      if (this.#paused && this.#screenBacklog < SCREEN_BACKLOG_LOW) {
        this.#paused = false;
        this.#channel.resume();
      }
    };
    // A write the emulator refuses (disposed meanwhile) must not become an
    // unhandled rejection, nor leave the channel paused.
    this.#screenWritten = this.#screen.write(chunk).then(resumeIfDrained, resumeIfDrained);
    if (!this.#paused && this.#screenBacklog > SCREEN_BACKLOG_HIGH) {
      this.#paused = true;
      this.#channel.pause();
    }
    // Waiters hear of the chunk once its screen write is queued: a screen-mode
    // wait then looks after this chunk is drawn. Told before, it looked while
    // the chunk was still pending, and with output every few tens of ms (a
    // repainting program) every look found the emulator busy and never sampled.
    this.#notify();
  }

  // Where a wait may look for its pattern, or null while the echo of the
  // last send is still arriving. Output before the last send is stale (the
  // previous prompt); its echo is the agent's own typing, not an answer.
  // An `after` before the last send asks for output before it: then the echo
  // is not skipped, since the agent chose to look there.
  #searchFrom(after: number | undefined): number | null {
    const send = this.#lastSend;
    if (send === null || (after !== undefined && after < send.offset)) return after ?? this.#cursor;
    if (send.end === null) {
      if (this.#buffer.start > send.offset) {
        send.end = send.offset; // the echo fell out of the buffer: nothing left to skip
      } else {
        const out = this.#buffer.slice(send.offset, send.offset + SEARCH_WINDOW);
        const end = echoEnd(send.echo, out, this.#closed || out.length >= SEARCH_WINDOW);
        if (end === null) return null;
        send.end = send.offset + end;
      }
    }
    return Math.max(after ?? 0, send.end);
  }

  #screenKey(): string {
    const snap = this.#finalScreen ?? (this.#screen.disposed ? null : this.#screen.snapshot());
    return snap === null ? "" : `${snap.cursor.row},${snap.cursor.col}\n${snap.lines.join("\n")}`;
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) listener();
  }

  // The unread output (as text) to search: at most SEARCH_WINDOW bytes and
  // nothing before `since`. `endOf` maps a match in that text back to the
  // byte offset just past it, by bisection on how much text a prefix of the
  // bytes renders to (the match itself is computed once, on the whole
  // window, so anchors and greedy patterns see all of it).
  #window(since: number): { text: string; endOf(found: PatternMatch): number } {
    const from = Math.max(this.#cursor, this.#buffer.end - SEARCH_WINDOW, this.#buffer.start, since);
    const raw = this.#buffer.slice(from, this.#buffer.end);
    const skip = utf8LeadingContinuations(raw);
    // A character still arriving is searched once whole (the overlap
    // rescans it), not as U+FFFD.
    const bytes = raw.subarray(skip, Math.max(skip, utf8SafeEnd(raw)));
    const decode = (n: number) => toText(new TextDecoder().decode(bytes.subarray(0, n)));
    const endOf = (found: PatternMatch) => {
      const textEnd = found.index + found.text.length;
      // No byte renders to more than one UTF-16 unit of text, so no prefix
      // shorter than the match end can hold it: a prompt matched at the end
      // of the window takes a few decodes, not one per halving of 64 KB.
      let lo = Math.min(textEnd, bytes.length);
      let hi = bytes.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (decode(mid).length >= textEnd) hi = mid;
        else lo = mid + 1;
      }
      return from + skip + utf8SafeEnd(bytes, Math.max(hi, 1));
    };
    return { text: decode(bytes.length), endOf };
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
