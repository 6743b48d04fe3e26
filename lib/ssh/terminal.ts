/**
 * A headless terminal emulator (xterm.js) fed with a PTY's output, for the
 * screen a person would see. Loaded only when a shell opens: the emulator
 * costs memory a server that only runs commands should not pay.
 *
 * @module
 */

import xterm from "@xterm/headless";

const MIN_COLS = 2;
const MAX_COLS = 1000;
const MIN_ROWS = 2;
const MAX_ROWS = 500;

function checkSize(cols: number, rows: number): void {
  if (!Number.isInteger(cols) || cols < MIN_COLS || cols > MAX_COLS) {
    throw new RangeError(`Terminal width must be an integer from ${MIN_COLS} to ${MAX_COLS} columns, got ${cols}`);
  }
  if (!Number.isInteger(rows) || rows < MIN_ROWS || rows > MAX_ROWS) {
    throw new RangeError(`Terminal height must be an integer from ${MIN_ROWS} to ${MAX_ROWS} rows, got ${rows}`);
  }
}

/** Options for {@linkcode Screen}. */
export interface ScreenOptions {
  /** Width in columns, 2 to 1000. */
  cols: number;
  /** Height in rows, 2 to 500. */
  rows: number;
  /**
   * Lines kept above the visible screen.
   * @default {1000}
   */
  scrollback?: number;
}

/** What the screen shows at one moment. */
export interface ScreenSnapshot {
  /** One string per visible row, top to bottom, trailing spaces trimmed. */
  lines: string[];
  /** Cursor position, 0-based. */
  cursor: { row: number; col: number };
  /** Width in columns. */
  cols: number;
  /** Height in rows. */
  rows: number;
}

/** A headless terminal emulator fed with a PTY's output. */
export class Screen {
  #term: InstanceType<typeof xterm.Terminal>;
  // Resolvers of writes xterm has not processed yet: a disposed terminal never
  // calls back, and awaiting callers must not hang on it.
  #pending = new Set<() => void>();
  #disposed = false;

  /** Creates an empty screen; throws RangeError for a size out of bounds. */
  constructor(options: ScreenOptions) {
    const { cols, rows, scrollback = 1000 } = options;
    checkSize(cols, rows);
    if (!Number.isInteger(scrollback) || scrollback < 0) {
      throw new RangeError(`Scrollback must be a non-negative integer, got ${scrollback}`);
    }
    this.#term = new xterm.Terminal({ cols, rows, scrollback, allowProposedApi: true });
  }

  /**
   * Feeds output; resolves once the emulator has processed it. Bytes go to the
   * emulator undecoded, so a UTF-8 character split across chunks renders whole.
   */
  write(data: string | Uint8Array): Promise<void> {
    if (this.#disposed) return Promise.reject(new Error("Cannot write to screen: it has been disposed"));
    // xterm queues writes and parses them in call order, calling each callback
    // once its chunk is parsed; chaining promises here would cost a timer tick
    // per chunk for the same order.
    return new Promise((resolve) => {
      const done = () => {
        this.#pending.delete(done);
        resolve();
      };
      this.#pending.add(done);
      this.#term.write(data, done);
    });
  }

  /** Whether dispose() was called. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /** The visible screen now: `rows` strings (trailing spaces trimmed), and the cursor (0-based row/col). */
  snapshot(): ScreenSnapshot {
    this.#checkOpen("read");
    const term = this.#term;
    // `active` is the alternate buffer while a full-screen program runs, so
    // this shows whichever one is on screen.
    const buffer = term.buffer.active;
    const lines: string[] = [];
    for (let y = 0; y < term.rows; y++) {
      lines.push(buffer.getLine(buffer.baseY + y)?.translateToString(true) ?? "");
    }
    // After writing the last column xterm parks the cursor one past it until
    // the next character wraps; a person sees it on the last column.
    const col = Math.min(buffer.cursorX, term.cols - 1);
    return { lines, cursor: { row: buffer.cursorY, col }, cols: term.cols, rows: term.rows };
  }

  /** Changes the size now; throws RangeError for a size out of bounds. */
  resize(cols: number, rows: number): void {
    this.#checkOpen("resize");
    checkSize(cols, rows);
    this.#term.resize(cols, rows);
  }

  /** Frees the emulator; pending writes resolve, later calls throw. Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#term.dispose();
    for (const done of [...this.#pending]) done();
  }

  /** Same as {@linkcode Screen.dispose}, for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  #checkOpen(action: string): void {
    if (this.#disposed) throw new Error(`Cannot ${action} screen: it has been disposed`);
  }
}
