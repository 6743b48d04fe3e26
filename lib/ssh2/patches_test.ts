import assert from "node:assert/strict";
import crypto from "node:crypto";
import { Buffer } from "node:buffer";
import type { Logger } from "../log.ts";
import { preparePatches } from "./patches.ts";
import { EXPECTED_WINDOW_ADJUST, queuedWindowAdjust } from "./rekey_fix.ts";

function recorder(): { logger: Logger; warnings: string[] } {
  const warnings: string[] = [];
  const keep = (m: string) => void warnings.push(m);
  return { logger: { debug() {}, info() {}, warn: keep, error: keep }, warnings };
}

Deno.test("preparePatches() turns every repair on for the pinned ssh2, silently, once per process", async () => {
  const first = recorder();
  const status = await preparePatches(first.logger);
  assert.deepEqual(status, { leakFix: true, rekeyFix: true, fastDecipher: true, socketLending: true });
  assert.deepEqual(first.warnings, []);
  // The repairs really run: ssh2's queued packets are exact, chacha20 ciphers are finished.
  assert.equal(queuedWindowAdjust(), EXPECTED_WINDOW_ADJUST);
  const c = crypto.createCipheriv("chacha20", Buffer.alloc(32), Buffer.alloc(16));
  c.update(Buffer.from("x"));
  assert.throws(() => c.update(Buffer.from("y")));
  // Decided once: a second caller gets the same answer and no log line.
  const second = recorder();
  assert.equal(await preparePatches(second.logger), status);
  assert.deepEqual(second.warnings, []);
});
