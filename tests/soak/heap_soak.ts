/**
 * Soak (`deno task soak`): the heap stays flat over 1500 execs on one connection, where a leak
 * of half a KiB per command shows. `deno task test` runs the same loop over 500
 * (tests/ssh_layer_test.ts), which catches leaks of 1.5 KiB or more per command (one retained
 * channel with its streams is several) in a third of the time.
 *
 * @module
 */

import assert from "node:assert/strict";
import { execHeapGrowthKiB, heapAfterGc } from "../fixtures/heap.ts";
import { openConnection, sshdAvailable, startSshd } from "../fixtures/sshd.ts";

Deno.test(
  { name: "commands leave nothing behind: heap stays flat over 1500 execs", ignore: !sshdAvailable() },
  async () => {
    if (!heapAfterGc()) return;
    await using sshd = await startSshd();
    await using conn = await openConnection(sshd);
    const grownKiB = await execHeapGrowthKiB(conn, { warmup: 300, runs: 1500 });
    // A per-command leak of even 1 KiB would show as 1500 KiB here.
    assert.ok(grownKiB < 750, `heap grew by ${grownKiB.toFixed(0)} KiB over 1500 commands`);
  },
);
