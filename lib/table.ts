/**
 * The table a session keeps its shells, forwards (and later jobs) in: one
 * type that reserves a slot, opens, looks up or answers `*_NOT_FOUND`, and
 * closes all, so tools keep no maps or counters of their own.
 *
 * A slot is reserved before the asynchronous open starts: two parallel
 * opens can neither take the same id nor both slip past the limit, and a
 * table closed while an open was under way closes what that open brings
 * instead of keeping it where nothing would close it later.
 *
 * @module
 */

import { type ErrorCode, SshMcpError } from "./errors.ts";

/** What a table holds: anything that can be closed (a shell, a forward). */
export interface Closable {
  /** Ends the thing; may return a promise that settles when it has ended. */
  close(): unknown;
}

/** What changed in a table, for listeners such as the MCP resources. */
export interface TableChange {
  /** `open`: an entry was added (or replaced); `close`: one was removed. */
  type: "open" | "close";
  /** The entry's id. */
  id: string;
}

/** Options of {@linkcode Table}. */
export interface TableOptions {
  /** What an entry is called in messages, lower case: "shell", "forward". */
  kind: string;
  /** Who owns the table, for messages: "Session s-1a2b". */
  owner: string;
  /** The code of {@linkcode Table.lookup} for an unknown id, e.g. SHELL_NOT_FOUND. */
  notFound: ErrorCode;
  /**
   * What the agent can do about an unknown id.
   * @default {"List the open ones and use one of their ids"}
   */
  notFoundHint?: string;
  /**
   * Entries allowed at once, open and reserved together.
   * @default {Infinity}
   */
  limit?: number;
  /**
   * The code of a reserve past the limit, e.g. SHELL_LIMIT.
   * @default {"LIMIT_EXCEEDED"}
   */
  limitCode?: ErrorCode;
  /**
   * What the agent can do about the limit.
   * @default {"Close the ones you no longer need"}
   */
  limitHint?: string;
  /**
   * A new id when {@linkcode Table.reserve} is given none; `taken` says which are in use.
   * @default {"<kind>-1", "<kind>-2", ...: the first one free}
   */
  newId?: (taken: (id: string) => boolean) => string;
  /**
   * The error of a reserve or fill after {@linkcode Table.closeAll}.
   * @default {CONNECTION_LOST "<owner> was closed while the <kind> opened"}
   */
  closedError?: () => SshMcpError;
}

/** A slot taken by {@linkcode Table.reserve}: filled once, or released. */
export interface Reservation<T> extends Disposable {
  /** The id the slot holds. */
  readonly id: string;
  /**
   * Puts the opened value in the slot and returns it. If the table was closed
   * meanwhile, closes the value and throws the table's closed error.
   */
  fill(value: T): T;
  /** Gives the slot back unfilled (the open failed); safe to call after fill. */
  release(): void;
}

/**
 * Entries by id with a Map's read API (`get`, `has`, `values()`, `size`,
 * iteration), plus reserve/fill, coded lookup, closeAll and change events.
 *
 * @example
 * ```ts
 * const shells = new Table<Shell>({ kind: "shell", owner: "Session s-1", notFound: "SHELL_NOT_FOUND", limit: 8 });
 * const shell = await shells.open(undefined, (id) => Shell.open(connection, id));
 * shells.lookup(shell.id); // the shell, or SHELL_NOT_FOUND
 * await shells.closeAll();
 * ```
 */
export class Table<T extends Closable> implements Iterable<[string, T]> {
  #entries = new Map<string, T>();
  #reserved = new Set<string>();
  #listeners = new Set<(change: TableChange) => void>();
  #closed = false;
  #options: TableOptions;

  /** Creates an empty table. */
  constructor(options: TableOptions) {
    this.#options = options;
  }

  /** Entries open now (reserved slots not included). */
  get size(): number {
    return this.#entries.size;
  }

  /** Slots reserved and not yet filled or released. */
  get reserved(): number {
    return this.#reserved.size;
  }

  /** Whether {@linkcode Table.closeAll} has run: nothing can be opened any more. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The entry with `id`, or undefined. */
  get(id: string): T | undefined {
    return this.#entries.get(id);
  }

  /** Whether an entry with `id` is open (a reserved slot does not count). */
  has(id: string): boolean {
    return this.#entries.has(id);
  }

  /** The ids of the open entries. */
  keys(): MapIterator<string> {
    return this.#entries.keys();
  }

  /** The open entries. */
  values(): MapIterator<T> {
    return this.#entries.values();
  }

  /** The open entries with their ids. */
  entries(): MapIterator<[string, T]> {
    return this.#entries.entries();
  }

  /** Iterates `[id, entry]` like a Map. */
  [Symbol.iterator](): MapIterator<[string, T]> {
    return this.#entries.entries();
  }

  /**
   * The entry with `id`, or the table's `*_NOT_FOUND` error.
   *
   * @param id The id an agent sent.
   * @returns The open entry.
   * @throws {SshMcpError} With the table's `notFound` code when there is none.
   */
  lookup(id: string): T {
    const entry = this.#entries.get(id);
    if (entry === undefined) {
      const { owner, kind, notFound, notFoundHint } = this.#options;
      throw new SshMcpError(notFound, `${owner} has no ${kind} ${JSON.stringify(id.slice(0, 64))}`, {
        hint: notFoundHint ?? "List the open ones and use one of their ids",
      });
    }
    return entry;
  }

  /**
   * Takes a slot before an asynchronous open. Ids in use (open or reserved)
   * are refused, and so is a slot past the limit.
   *
   * @param id The id wanted; without one, `newId` picks a free one.
   * @returns The reservation; fill it with the opened value or release it.
   * @throws {SshMcpError} INVALID_ARGUMENT for an id in use, the limit code past the limit, the closed error after closeAll.
   */
  reserve(id?: string): Reservation<T> {
    const { kind, owner } = this.#options;
    if (this.#closed) throw this.#closedError();
    const taken = (name: string) => this.#entries.has(name) || this.#reserved.has(name);
    if (id !== undefined && taken(id)) {
      throw new SshMcpError("INVALID_ARGUMENT", `${capitalized(kind)} ${JSON.stringify(id)} is already open`, {
        hint: `Use it, close it, or choose another id`,
      });
    }
    const limit = this.#options.limit ?? Infinity;
    if (this.#entries.size + this.#reserved.size >= limit) {
      throw new SshMcpError(this.#options.limitCode ?? "LIMIT_EXCEEDED", `${owner} already has ${limit} ${kind}s`, {
        hint: this.#options.limitHint ?? "Close the ones you no longer need",
      });
    }
    const chosen = id ?? (this.#options.newId ?? defaultNewId(kind))(taken);
    if (taken(chosen)) throw new Error(`newId returned ${JSON.stringify(chosen)}, which is in use`);
    this.#reserved.add(chosen);
    let settled = false;
    const release = () => {
      if (settled) return;
      settled = true;
      this.#reserved.delete(chosen);
    };
    return {
      id: chosen,
      fill: (value: T) => {
        if (settled) throw new Error(`The slot of ${kind} ${JSON.stringify(chosen)} was already filled or released`);
        release();
        if (this.#closed) {
          // Nothing would ever close it: the owner is gone.
          closeQuietly(value);
          throw this.#closedError();
        }
        this.#put(chosen, value);
        return value;
      },
      release,
      [Symbol.dispose]: release,
    };
  }

  /**
   * Reserves a slot, runs `opener` with its id and fills the slot with the
   * result; the slot is released if `opener` fails.
   *
   * @param id The id wanted, or undefined for a new one.
   * @param opener Opens the entry under the given id.
   * @returns The opened entry, now in the table.
   */
  async open(id: string | undefined, opener: (id: string) => Promise<T>): Promise<T> {
    using slot = this.reserve(id);
    return slot.fill(await opener(slot.id));
  }

  /**
   * Adds or replaces an entry without a reservation (the Map API; tools that
   * do their own reserving call this). Throws the closed error after closeAll,
   * having closed `value`.
   */
  set(id: string, value: T): this {
    if (this.#closed) {
      closeQuietly(value);
      throw this.#closedError();
    }
    this.#put(id, value);
    return this;
  }

  /** Removes an entry without closing it (its caller closes it); true if it was there. */
  delete(id: string): boolean {
    const had = this.#entries.delete(id);
    if (had) this.#emit({ type: "close", id });
    return had;
  }

  /**
   * Closes every entry and refuses new ones from then on; entries being
   * opened are closed when their open completes. Every close is awaited;
   * one that fails does not stop the others.
   */
  async closeAll(): Promise<void> {
    this.#closed = true;
    const all = [...this.#entries];
    this.#entries.clear();
    // Started synchronously, all of them, before anything is awaited.
    const closing = all.map(([, value]) => closeQuietly(value));
    for (const [id] of all) this.#emit({ type: "close", id });
    await Promise.all(closing);
  }

  /**
   * Calls `listener` after each change; returns the function that removes it.
   *
   * @param listener Called with what changed; it must not throw.
   * @returns Unsubscribes the listener.
   */
  onChange(listener: (change: TableChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #put(id: string, value: T): void {
    this.#entries.set(id, value);
    this.#emit({ type: "open", id });
  }

  #emit(change: TableChange): void {
    for (const listener of this.#listeners) listener(change);
  }

  #closedError(): SshMcpError {
    return this.#options.closedError?.() ??
      new SshMcpError("CONNECTION_LOST", `${this.#options.owner} was closed while the ${this.#options.kind} opened`, {
        hint: "Call ssh_connect again",
      });
  }
}

// A close that fails is the entry's own business: the table's job is to
// have asked every entry, so the failure is settled here, not rethrown.
function closeQuietly(value: Closable): Promise<void> {
  try {
    return Promise.resolve(value.close()).then(() => {}, () => {});
  } catch {
    return Promise.resolve(); // a synchronous close that threw has still been asked
  }
}

function capitalized(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function defaultNewId(kind: string): (taken: (id: string) => boolean) => string {
  return (taken) => {
    let n = 1;
    while (taken(`${kind}-${n}`)) n++;
    return `${kind}-${n}`;
  };
}
