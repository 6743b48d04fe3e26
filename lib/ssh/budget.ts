/**
 * A queue that keeps the number of open channels on one connection below
 * the server's limit (OpenSSH `MaxSessions`), so a burst of parallel calls
 * waits its turn instead of failing.
 *
 * @module
 */

import { SshMcpError } from "../errors.ts";

/** Anything that says when it has closed, like an ssh2 channel. */
export interface Closable {
  /** Registers a one-time close listener. */
  once(event: "close", listener: () => void): unknown;
}

/** Counts channel slots; a slot is held from open until the channel closes. */
export class ChannelBudget {
  #max: number;
  #inUse = 0;
  #waiters: { wake: () => void; fail: (e: unknown) => void }[] = [];
  #failed: unknown = null;

  /** Creates a budget of `max` concurrent channels. */
  constructor(max: number) {
    if (!Number.isInteger(max) || max < 1) {
      throw new RangeError(`Channel budget must be a positive integer, got ${max}`);
    }
    this.#max = max;
  }

  /** Channels currently open or opening. */
  get inUse(): number {
    return this.#inUse;
  }

  /** Channels waiting for a slot. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /**
   * Waits for a slot, then opens a channel with `open`. If the server still
   * refuses (its limit is lower than ours), waits for another channel of ours
   * to close and tries again.
   */
  async run<T extends Closable>(signal: AbortSignal | undefined, open: () => Promise<T>): Promise<T> {
    for (let attempt = 0;; attempt++) {
      await this.#acquire(signal);
      let channel: T;
      try {
        channel = await open();
      } catch (error) {
        const othersOpen = this.#inUse > 1;
        this.#release();
        const refused = error instanceof SshMcpError && error.code === "CHANNEL_OPEN_FAILED";
        if (refused && othersOpen && attempt < 50) {
          await this.#nextRelease(signal);
          continue;
        }
        throw error;
      }
      channel.once("close", () => this.#release());
      return channel;
    }
  }

  /** Fails every waiter and every later call with `reason` (the connection is gone). */
  fail(reason: unknown): void {
    this.#failed = reason;
    for (const w of this.#waiters.splice(0)) w.fail(reason);
  }

  #acquire(signal?: AbortSignal): Promise<void> {
    if (this.#failed !== null) return Promise.reject(this.#failed);
    signal?.throwIfAborted();
    if (this.#inUse < this.#max) {
      this.#inUse++;
      return Promise.resolve();
    }
    return this.#wait(signal).then(() => {
      this.#inUse++;
    });
  }

  #nextRelease(signal?: AbortSignal): Promise<void> {
    return this.#wait(signal);
  }

  #wait(signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        wake: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
        fail: (e: unknown) => {
          signal?.removeEventListener("abort", onAbort);
          reject(e);
        },
      };
      const onAbort = () => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  #release(): void {
    this.#inUse--;
    // A woken waiter re-checks nothing: it takes the slot just freed.
    const next = this.#waiters.shift();
    if (next) next.wake();
  }
}
