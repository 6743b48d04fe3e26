/**
 * Output kept by handle: the whole stdout and stderr of a command whose
 * result was cut at the cap, readable by byte range until its session
 * closes. One budget bounds everything kept; past it the oldest bytes go
 * first, and a read says how many of its stream are gone.
 *
 * @module
 */

import { randomHex } from "./random.ts";

/** The two streams a command has. */
export type StreamName = "stdout" | "stderr";

/** What a read of one stream returns. */
export interface StreamRead {
  /** The bytes from `offset` on (at most the bytes asked for); empty past the end. */
  bytes: Uint8Array;
  /** Where `bytes` start: the offset asked for, or later when that part was dropped. */
  offset: number;
  /** Bytes the stream has had in all. */
  totalBytes: number;
  /** Bytes dropped from its start to stay in the budget (the first offset still readable). */
  droppedBytes: number;
}

// Fixed-size blocks, recycled: 2 GB streaming through a 64 MiB budget must
// not leave 2 GB of dropped chunks for the garbage collector to find.
class BlockPool {
  #free: Uint8Array[] = [];
  readonly size: number;

  constructor(size: number) {
    this.size = size;
  }

  take(): Uint8Array {
    return this.#free.pop() ?? new Uint8Array(this.size);
  }

  give(block: Uint8Array): void {
    if (this.#free.length < 16) this.#free.push(block);
  }
}

// One stream: its blocks in order, from `start` (bytes before it were dropped) to `total`.
class Stream {
  blocks: { data: Uint8Array; len: number }[] = [];
  start = 0;
  total = 0;

  push(chunk: Uint8Array, pool: BlockPool): void {
    for (let i = 0; i < chunk.length;) {
      let last = this.blocks.at(-1);
      if (last === undefined || last.len === last.data.length) {
        last = { data: pool.take(), len: 0 };
        this.blocks.push(last);
      }
      const n = Math.min(chunk.length - i, last.data.length - last.len);
      last.data.set(chunk.subarray(i, i + n), last.len);
      last.len += n;
      i += n;
    }
    this.total += chunk.length;
  }

  // Drops the oldest block; the bytes it held.
  dropOldest(pool: BlockPool): number {
    const block = this.blocks.shift();
    if (block === undefined) return 0;
    this.start += block.len;
    pool.give(block.data);
    return block.len;
  }

  read(offset: number, maxBytes: number): StreamRead {
    // Past the end reads as the end: nothing, and no promise of more.
    const from = Math.min(Math.max(offset, this.start), this.total);
    const out = new Uint8Array(Math.max(0, Math.min(maxBytes, this.total - from)));
    let at = this.start;
    let filled = 0;
    for (const block of this.blocks) {
      if (filled === out.length) break;
      const end = at + block.len;
      if (end > from) {
        const piece = block.data.subarray(Math.max(0, from + filled - at), Math.min(block.len, from + out.length - at));
        out.set(piece, filled);
        filled += piece.length;
      }
      at = end;
    }
    return { bytes: out, offset: from, totalBytes: this.total, droppedBytes: this.start };
  }
}

/** The kept output of one command. */
export class KeptOutput {
  /** The output_id agents read it by. */
  readonly id: string;
  /** The session it belongs to: only that session's calls may read it. */
  readonly owner: string;
  /** Whether the command may still add output. */
  running = true;
  readonly streams: Record<StreamName, Stream> = { stdout: new Stream(), stderr: new Stream() };
  #store: OutputStore;

  /** Made by {@linkcode OutputStore.open}. */
  constructor(id: string, owner: string, store: OutputStore) {
    this.id = id;
    this.owner = owner;
    this.#store = store;
  }

  /** Keeps a chunk of `stream` (copied into the store's blocks). */
  push(stream: StreamName, chunk: Uint8Array): void {
    if (chunk.length === 0 || !this.#store.has(this.id)) return;
    this.streams[stream].push(chunk, this.#store.pool);
    this.#store.grew(chunk.length);
  }

  /** Reads `stream` from `offset`, at most `maxBytes`. */
  read(stream: StreamName, offset: number, maxBytes: number): StreamRead {
    return this.streams[stream].read(offset, maxBytes);
  }
}

/** Every kept output of the server, under one budget. */
export class OutputStore {
  #entries = new Map<string, KeptOutput>(); // in order of opening: the oldest first
  #used = 0;
  #budget: number;
  /** The blocks every stream keeps its bytes in: an eighth of the budget, at most 256 KiB. */
  readonly pool: BlockPool;

  /** A store that keeps at most `budgetBytes` bytes in all. */
  constructor(budgetBytes: number) {
    this.#budget = budgetBytes;
    this.pool = new BlockPool(Math.max(1024, Math.min(256 * 1024, Math.floor(budgetBytes / 8))));
  }

  /** Bytes kept now. */
  get usedBytes(): number {
    return this.#used;
  }

  /** Starts keeping a command's output for the session `owner`. */
  open(owner: string): KeptOutput {
    let id;
    do id = "o-" + randomHex(6); while (this.#entries.has(id));
    const entry = new KeptOutput(id, owner, this);
    this.#entries.set(id, entry);
    return entry;
  }

  /** Whether `id` is kept. */
  has(id: string): boolean {
    return this.#entries.has(id);
  }

  /** The kept output `id` of session `owner`, if any. */
  get(id: string, owner: string): KeptOutput | undefined {
    const entry = this.#entries.get(id);
    return entry?.owner === owner ? entry : undefined;
  }

  /** Stops keeping `id` and frees its bytes. */
  drop(id: string): void {
    const entry = this.#entries.get(id);
    if (entry === undefined) return;
    this.#entries.delete(id);
    for (const stream of Object.values(entry.streams)) {
      while (stream.blocks.length > 0) this.#used -= stream.dropOldest(this.pool);
    }
  }

  /** Drops everything session `owner` kept (it closed). */
  dropOwner(owner: string): void {
    for (const entry of [...this.#entries.values()]) if (entry.owner === owner) this.drop(entry.id);
  }

  /** Called by an entry that kept `bytes` more: drops the oldest bytes of all until the budget holds. */
  grew(bytes: number): void {
    this.#used += bytes;
    for (const entry of this.#entries.values()) {
      if (this.#used <= this.#budget) return;
      // The oldest entry gives first, from whichever of its streams keeps more, until it has nothing left.
      while (this.#used > this.#budget) {
        const { stdout, stderr } = entry.streams;
        const next = stdout.total - stdout.start >= stderr.total - stderr.start ? stdout : stderr;
        const freed = next.dropOldest(this.pool);
        if (freed === 0) break;
        this.#used -= freed;
      }
    }
  }
}
