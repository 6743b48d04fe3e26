/**
 * The one summary line of tests/run_tests.ts, which .ci/run reads: it adds up the runs, and never
 * says ok (or 0 failed) for a run whose `deno test` process failed.
 *
 * @module
 */

import assert from "node:assert/strict";
import { mergeSummaries } from "./run_tests.ts";

Deno.test("mergeSummaries() adds up the counts and steps of both deno test processes", () => {
  const line = mergeSummaries([
    { summaries: ["ok | 700 passed (400 steps) | 0 failed | 1 ignored (5m2s)"], code: 0 },
    { summaries: ["ok | 60 passed (2 steps) | 0 failed (9s)"], code: 0 },
  ], 303_000);
  assert.equal(line, "ok | 760 passed (402 steps) | 0 failed | 1 ignored (5m3s)");
});

Deno.test("mergeSummaries() says FAILED with the failures of a run that reported them", () => {
  const line = mergeSummaries([
    { summaries: ["FAILED | 698 passed (400 steps) | 2 failed (1 step) (5m2s)"], code: 1 },
    { summaries: ["ok | 60 passed | 0 failed (9s)"], code: 0 },
  ], 1500);
  assert.equal(line, "FAILED | 758 passed (400 steps) | 2 failed (1 step) (1s)");
});

Deno.test("mergeSummaries() counts a process that failed without a summary (crashed, killed) as a failure", () => {
  const crashed = mergeSummaries([
    { summaries: [], code: 1 },
    { summaries: ["ok | 60 passed | 0 failed (9s)"], code: 0 },
  ], 9_000);
  assert.equal(crashed, "FAILED | 60 passed | 1 failed (9s)");
  // .ci/run reads `^(ok|FAILED) \| N passed`, so the line keeps that shape even when nothing reported.
  assert.equal(
    mergeSummaries([{ summaries: [], code: 1 }, { summaries: [], code: 0 }], 10),
    "FAILED | 0 passed | 1 failed (10ms)",
  );
  // An ok summary from a process that then exited non-zero (an error after its tests) is not ok either.
  assert.match(
    mergeSummaries([{ summaries: ["ok | 5 passed | 0 failed (1s)"], code: 1 }], 1000),
    /^FAILED \| 5 passed \| 1 failed/,
  );
});
