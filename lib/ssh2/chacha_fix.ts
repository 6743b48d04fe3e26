/**
 * Stops a per-packet memory leak of ssh2's chacha20-poly1305 under Deno.
 *
 * ssh2 creates up to three `chacha20` ciphers per packet and calls only
 * `update()` on each, never `final()`. Deno's node:crypto frees a cipher's
 * native state in `final()`, so every packet leaked ~0.8 KB: 2 GB of output
 * grew the server by >100 MiB and a busy session grew without bound.
 * chacha20 is a stream cipher: `final()` right after the single `update()`
 * yields nothing more, so finishing each one there changes no bytes.
 *
 * This module must be evaluated before ssh2 is, because ssh2 copies
 * `createCipheriv` out of the crypto module when it loads; import ssh2 only
 * through `./ssh2.ts`. The wrappers are installed then, but finish nothing
 * until {@linkcode enableLeakFix} (./patches.ts) has checked the ssh2
 * version and {@linkcode leakFixSelfTest} has passed.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import crypto from "node:crypto";

type Finishable = { update(...args: unknown[]): unknown; final(): unknown };

let enabled = false;

function finishAfterUpdate<T>(create: (...args: never[]) => T) {
  return function (this: unknown, ...args: never[]): T {
    const cipher = create.apply(this, args);
    if (!enabled || String(args[0]).toLowerCase() !== "chacha20") return cipher;
    const c = cipher as unknown as Finishable;
    const update = c.update;
    c.update = function (this: Finishable, ...updateArgs: unknown[]) {
      const out = update.apply(this, updateArgs);
      this.final();
      return out;
    };
    return cipher;
  };
}

/** node:crypto's own functions, for code that calls `final()` itself (./chacha_decipher.ts). */
export const unpatched: Pick<typeof crypto, "createCipheriv" | "createDecipheriv"> = {
  createCipheriv: crypto.createCipheriv,
  createDecipheriv: crypto.createDecipheriv,
};

crypto.createCipheriv = finishAfterUpdate(crypto.createCipheriv) as typeof crypto.createCipheriv;
crypto.createDecipheriv = finishAfterUpdate(crypto.createDecipheriv) as typeof crypto.createDecipheriv;

/** Turns the fix on or off for ciphers created from now on (./patches.ts decides). */
export function enableLeakFix(on: boolean): void {
  enabled = on;
}

/** Whether chacha20 ciphers are finished after their update. */
export function leakFixEnabled(): boolean {
  return enabled;
}

/**
 * With the fix on: a chacha20 cipher from node:crypto still gives the
 * unpatched output, and is finished after its update (its native state is
 * released, so a second update is refused). Returns why it failed, or null.
 * ssh2's own use of it (one update per cipher) is proven by
 * ./patches.ts sealing and opening packets with ssh2's cipher code.
 */
export function leakFixSelfTest(): string | null {
  if (!enabled) return "the leak fix is not enabled";
  const key = Buffer.alloc(32, 7);
  const iv = Buffer.alloc(16, 1);
  const data = Buffer.from("mcp-remote-ssh leak fix self-test");
  try {
    const expected = unpatched.createCipheriv("chacha20", key, iv).update(data);
    const finished = crypto.createCipheriv("chacha20", key, iv);
    const got = finished.update(data);
    if (!got.equals(expected)) return "a finished chacha20 cipher gave other bytes";
    try {
      finished.update(data);
    } catch {
      return null; // finished: the native state is gone
    }
    return "node:crypto kept a chacha20 cipher usable after final()";
  } catch (error) {
    return `node:crypto's chacha20 failed: ${error instanceof Error ? error.message : String(error)}`;
  }
}
