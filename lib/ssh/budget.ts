/**
 * A queue that keeps the number of open channels on one connection below
 * the server's limit (OpenSSH `MaxSessions`), so a burst of parallel calls
 * waits its turn instead of failing.
 *
 * @module
 */

interface Waiter {
  wake: () => void;
  fail: (e: unknown) => void;
}

/** Counts channel slots; a slot is held from open until the channel closes. */
export class ChannelBudget {
  #max: number;
  #inUse = 0;
  #queue: Waiter[] = []; // want a slot, first come first served
  #observers: Waiter[] = []; // want to hear of the next release only
  #failed: unknown = null;

  /** Creates a budget of `max` concurrent channels. */
  constructor(max: number) {
    if (!Number.isInteger(max) || max < 1) {
      throw new RangeError(`Channel budget must be a positive integer, got ${max}`);
    }
    this.#max = max;
  }

  /** Slots in all. */
  get max(): number {
    return this.#max;
  }

  /** Slots currently taken. */
  get inUse(): number {
    return this.#inUse;
  }

  /** Callers waiting for a slot. */
  get waiting(): number {
    return this.#queue.length;
  }

  /**
   * Waits for a free slot and takes it. Returns the function that gives it
   * back; calling that more than once is harmless, so it can be tied to
   * both a failed open and a channel's close. An `urgent` caller (killing a
   * timed-out command) goes to the front of the queue.
   */
  async acquire(signal?: AbortSignal, urgent = false): Promise<() => void> {
    if (this.#failed !== null) throw this.#failed;
    signal?.throwIfAborted();
    if (this.#inUse < this.#max && this.#queue.length === 0) {
      this.#inUse++;
    } else {
      await this.#wait(this.#queue, signal, urgent); // the releaser hands its slot over
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#release();
    };
  }

  /**
   * Waits until some slot is given back. Used after the server refused a
   * channel although we had a slot: its limit is lower than ours, so the
   * next close is the moment to try again.
   */
  nextRelease(signal?: AbortSignal): Promise<void> {
    if (this.#failed !== null) return Promise.reject(this.#failed);
    return this.#wait(this.#observers, signal);
  }

  /** Fails every waiter and every later call with `reason` (the connection is gone). */
  fail(reason: unknown): void {
    this.#failed = reason;
    for (const w of [...this.#queue.splice(0), ...this.#observers.splice(0)]) w.fail(reason);
  }

  #wait(list: Waiter[], signal?: AbortSignal, first = false): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      // An abort event never comes for a signal already aborted: the wait would never end.
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        const i = list.indexOf(waiter);
        if (i >= 0) list.splice(i, 1);
        reject(signal!.reason);
      };
      const waiter: Waiter = {
        wake: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
        fail: (e) => {
          signal?.removeEventListener("abort", onAbort);
          reject(e);
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      if (first) list.unshift(waiter);
      else list.push(waiter);
    });
  }

  #release(): void {
    for (const o of this.#observers.splice(0)) o.wake();
    const next = this.#queue.shift();
    if (next) next.wake(); // slot passes straight on; inUse is unchanged
    else this.#inUse--;
  }
}
