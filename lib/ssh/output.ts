/**
 * Byte-capped capture of one output stream.
 *
 * Remote output is bytes and may be endless (`yes`), so a stream keeps at
 * most `maxBytes`: the first half and a rolling last half. Memory is bounded
 * by the cap whatever the stream's size; the total is still counted so the
 * cut can say what was dropped.
 *
 * @module
 */

import { utf8LeadingContinuations, utf8SafeEnd } from "./utf8.ts";

/** What a finished capture holds. */
export interface CapturedOutput {
  /** UTF-8 text; when truncated, head + marker + tail. */
  text: string;
  /** Bytes the stream carried in total. */
  totalBytes: number;
  /** Bytes left out of `text`. */
  droppedBytes: number;
  /** Whether anything was left out. */
  truncated: boolean;
}

/** Collects a byte stream under a cap, keeping its head and its tail. */
export class OutputCapture {
  // Buffers grow with the output: most commands print little, and a
  // cap-sized allocation per stream per command is garbage the GC frees late.
  #head = new Uint8Array(0);
  #headSize: number;
  #headLen = 0;
  #tail = new Uint8Array(0);
  #tailSize: number;
  #tailStart = 0; // ring start
  #tailLen = 0;
  #total = 0;

  /** Creates a capture that keeps at most `maxBytes` bytes. */
  constructor(maxBytes: number) {
    if (!Number.isInteger(maxBytes) || maxBytes < 2) {
      throw new RangeError(`Output cap must be an integer of at least 2 bytes, got ${maxBytes}`);
    }
    this.#headSize = Math.ceil(maxBytes / 2);
    this.#tailSize = maxBytes - this.#headSize;
  }

  /** Bytes seen so far. */
  get totalBytes(): number {
    return this.#total;
  }

  /** Adds a chunk of the stream. */
  push(chunk: Uint8Array): void {
    this.#total += chunk.length;
    let rest = chunk;
    if (this.#headLen < this.#headSize) {
      const n = Math.min(rest.length, this.#headSize - this.#headLen);
      this.#growHead(this.#headLen + n);
      this.#head.set(rest.subarray(0, n), this.#headLen);
      this.#headLen += n;
      rest = rest.subarray(n);
    }
    if (rest.length === 0) return;
    if (this.#tail.length === 0) this.#tail = new Uint8Array(this.#tailSize);
    const cap = this.#tail.length;
    if (rest.length >= cap) {
      this.#tail.set(rest.subarray(rest.length - cap));
      this.#tailStart = 0;
      this.#tailLen = cap;
      return;
    }
    let end = (this.#tailStart + this.#tailLen) % cap;
    for (let i = 0; i < rest.length;) {
      const n = Math.min(rest.length - i, cap - end);
      this.#tail.set(rest.subarray(i, i + n), end);
      i += n;
      end = (end + n) % cap;
    }
    const len = this.#tailLen + rest.length;
    if (len > cap) {
      this.#tailStart = (this.#tailStart + len - cap) % cap;
      this.#tailLen = cap;
    } else {
      this.#tailLen = len;
    }
  }

  /** The last (at most `maxBytes`) bytes seen so far, for a glimpse of where the stream is. */
  recent(maxBytes: number): Uint8Array {
    if (this.#tailLen > 0) {
      const tail = this.#tailBytes();
      return tail.subarray(Math.max(0, tail.length - maxBytes));
    }
    return this.#head.slice(Math.max(0, this.#headLen - maxBytes), this.#headLen);
  }

  /** Decodes what was kept; a cut never splits a UTF-8 character. */
  finish(): CapturedOutput {
    const kept = this.#headLen + this.#tailLen;
    const dropped = this.#total - kept;
    const tail = this.#tailBytes();
    if (dropped === 0) {
      const all = new Uint8Array(kept);
      all.set(this.#head.subarray(0, this.#headLen));
      all.set(tail, this.#headLen);
      return { text: decode(all), totalBytes: this.#total, droppedBytes: 0, truncated: false };
    }
    const head = this.#head.subarray(0, utf8SafeEnd(this.#head, this.#headLen));
    const tailFrom = utf8LeadingContinuations(tail);
    const droppedAll = this.#total - head.length - (tail.length - tailFrom);
    const marker = `\n[... ${droppedAll} bytes omitted of ${this.#total} total ...]\n`;
    return {
      text: decode(head) + marker + decode(tail.subarray(tailFrom)),
      totalBytes: this.#total,
      droppedBytes: droppedAll,
      truncated: true,
    };
  }

  #growHead(needed: number): void {
    if (needed <= this.#head.length) return;
    const size = Math.min(this.#headSize, Math.max(needed, this.#head.length * 2, 4096));
    const grown = new Uint8Array(size);
    grown.set(this.#head.subarray(0, this.#headLen));
    this.#head = grown;
  }

  #tailBytes(): Uint8Array {
    const cap = this.#tail.length;
    if (this.#tailStart + this.#tailLen <= cap) {
      return this.#tail.slice(this.#tailStart, this.#tailStart + this.#tailLen);
    }
    const out = new Uint8Array(this.#tailLen);
    const first = cap - this.#tailStart;
    out.set(this.#tail.subarray(this.#tailStart));
    out.set(this.#tail.subarray(0, this.#tailLen - first), first);
    return out;
  }
}

function decode(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

/**
 * The last non-empty line of `text`, trimmed and at most 100 characters: a
 * glimpse of where a running command's output stands, for progress reports.
 */
export function lastLine(text: string): string {
  const line = text.split(/\r?\n|\r/).map((l) => l.trim()).filter((l) => l !== "").at(-1) ?? "";
  return line.length > 100 ? line.slice(0, 99) + "…" : line;
}
