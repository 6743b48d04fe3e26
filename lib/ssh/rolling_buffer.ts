/**
 * The last N bytes of an endless stream, addressed by absolute offset, so a
 * reader can keep a cursor and learn how much it missed when it fell behind.
 *
 * @module
 */

/** A bounded window onto a byte stream. */
export class RollingBuffer {
  #capacity: number;
  #chunks: Uint8Array[] = [];
  #size = 0;
  #start = 0; // absolute offset of the first kept byte

  /** Keeps at most `capacity` bytes. */
  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`Buffer capacity must be a positive integer, got ${capacity}`);
    }
    this.#capacity = capacity;
  }

  /** Absolute offset of the oldest byte still kept. */
  get start(): number {
    return this.#start;
  }

  /** Absolute offset just past the newest byte (total bytes ever pushed). */
  get end(): number {
    return this.#start + this.#size;
  }

  /** Appends bytes, forgetting the oldest beyond the capacity. */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    if (chunk.length >= this.#capacity) {
      this.#start += this.#size + chunk.length - this.#capacity;
      this.#chunks = [chunk.slice(chunk.length - this.#capacity)];
      this.#size = this.#capacity;
      return;
    }
    this.#chunks.push(chunk.slice()); // the caller may reuse its buffer
    this.#size += chunk.length;
    while (this.#size > this.#capacity) {
      const over = this.#size - this.#capacity;
      const first = this.#chunks[0];
      if (first.length <= over) {
        this.#chunks.shift();
        this.#size -= first.length;
        this.#start += first.length;
      } else {
        this.#chunks[0] = first.subarray(over);
        this.#size -= over;
        this.#start += over;
      }
    }
  }

  /** Bytes from absolute offset `from` to `to`, clamped to what is kept. */
  slice(from: number, to: number): Uint8Array {
    const lo = Math.max(from, this.#start);
    const hi = Math.min(to, this.end);
    if (hi <= lo) return new Uint8Array(0);
    const out = new Uint8Array(hi - lo);
    let pos = this.#start;
    let written = 0;
    for (const chunk of this.#chunks) {
      const chunkEnd = pos + chunk.length;
      if (chunkEnd > lo && pos < hi) {
        const a = Math.max(lo, pos) - pos;
        const b = Math.min(hi, chunkEnd) - pos;
        out.set(chunk.subarray(a, b), written);
        written += b - a;
      }
      if (chunkEnd >= hi) break;
      pos = chunkEnd;
    }
    return out;
  }
}
