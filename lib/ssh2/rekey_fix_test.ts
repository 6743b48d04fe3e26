import assert from "node:assert/strict";
import { EXPECTED_WINDOW_ADJUST, patchPacketWriter, queuedWindowAdjust, rekeyFixSelfTest } from "./rekey_fix.ts";
import type { PacketWriterInternals } from "./internals.ts";

Deno.test("ssh2 unpatched queues a corrupt payload during a rekey (the bug this fix exists for)", () => {
  // Runs first, before the prototype is patched.
  assert.notEqual(queuedWindowAdjust(), EXPECTED_WINDOW_ADJUST);
});

Deno.test("rekeyFixSelfTest() makes packets queued during a rekey carry their exact payload", () => {
  assert.equal(rekeyFixSelfTest(), null);
  assert.equal(queuedWindowAdjust(), EXPECTED_WINDOW_ADJUST);
  // A second run finds the fix in place.
  assert.equal(rekeyFixSelfTest(), null);
});

Deno.test("patchPacketWriter() refuses a class it was not written for", () => {
  class Other {}
  assert.equal(patchPacketWriter(Other.prototype as unknown as PacketWriterInternals), false);
});
