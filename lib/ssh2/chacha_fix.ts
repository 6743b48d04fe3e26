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
 * through `./ssh2.ts`.
 *
 * @module
 */

import crypto from "node:crypto";

type Finishable = { update(...args: unknown[]): unknown; final(): unknown };

function finishAfterUpdate<T>(create: (...args: never[]) => T) {
  return function (this: unknown, ...args: never[]): T {
    const cipher = create.apply(this, args);
    if (String(args[0]).toLowerCase() !== "chacha20") return cipher;
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
