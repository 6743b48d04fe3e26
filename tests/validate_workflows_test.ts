/**
 * The workflow checks of tests/validate_workflows.ts (all but action-validator's schema, which
 * needs npx and runs in .ci/run): a workflow on a retired runner with an action on a retired
 * Node.js fails, and the project's own workflows pass.
 */

import assert from "node:assert/strict";
import { actionRuntime, checkWorkflow, RETIRED_NODE, RETIRED_RUNNERS } from "./validate_workflows.ts";

const HEADER = "name: t\non: push\npermissions:\n  contents: read\njobs:\n";

Deno.test("checkWorkflow() fails macos-13 and actions/checkout v3, pinned or not", () => {
  const workflow = HEADER + [
    "  a:",
    "    runs-on: macos-13",
    "    steps:",
    "      - uses: actions/checkout@v3",
    "      - uses: actions/checkout@f43a0e5ff2bd294095638e18286ca9a3d1956744 # v3.6.0",
    "  b:",
    "    strategy:",
    "      matrix:",
    "        include:",
    '          - { target: x86_64-apple-darwin, os: macos-13, ext: "" }',
    "    runs-on: ${{ matrix.os }}",
    "    steps:",
    "      - run: echo macos-13 in a string is a word too # but not in this comment: macos-12",
    "",
  ].join("\n");
  const { problems } = checkWorkflow(workflow, { today: new Date("2026-12-02") });
  const on = (line: number) => problems.filter((p) => p.startsWith(`line ${line}:`));
  assert.equal(on(7).length, 1, problems.join("\n"));
  assert.match(on(7)[0], /runner macos-13 was retired by GitHub on 2025-12-04/);
  assert.deepEqual(on(9).map((p) => p.replace(/ \(.*/, "")), [
    "line 9: actions/checkout@v3 is not pinned to a commit SHA",
    "line 9: actions/checkout v3 runs on node16, which was retired by GitHub on 2024-10-15",
  ]);
  assert.match(on(10).join("\n"), /actions\/checkout v3\.6\.0 runs on node16, which was retired/);
  assert.match(on(15).join("\n"), /runner macos-13 was retired/);
  // The run line's own word counts (a label can be built in a script); its comment does not.
  assert.equal(on(18).length, 1, problems.join("\n"));
  assert.doesNotMatch(problems.join("\n"), /macos-12/);
});

Deno.test("checkWorkflow() wants a version comment on a SHA pin and the read-only token", () => {
  const { problems } = checkWorkflow(
    "name: t\non: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n" +
      "      - uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8\n",
  );
  assert.deepEqual(problems, [
    'line 7: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 has no "# vX.Y.Z" comment naming its version',
    "no top-level `permissions: contents: read`",
  ]);
});

Deno.test("checkWorkflow() notes a retirement ahead and fails it from its date on", () => {
  const workflow = HEADER + "  a:\n    runs-on: ubuntu-22.04\n    steps:\n      - run: true\n";
  const before = checkWorkflow(workflow, { today: new Date("2027-04-16") });
  assert.deepEqual(before.problems, []);
  assert.match(before.notes.join("\n"), /runner ubuntu-22\.04 retires on 2027-04-17/);
  const after = checkWorkflow(workflow, { today: new Date("2027-04-17") });
  assert.match(after.problems.join("\n"), /runner ubuntu-22\.04 was retired by GitHub on 2027-04-17/);
});

Deno.test("actionRuntime() reads versions between the table's entries, and knows no more than the table", () => {
  assert.equal(actionRuntime("actions/checkout", "4.2.2"), "node20");
  assert.equal(actionRuntime("actions/checkout", "5"), "node24");
  assert.equal(actionRuntime("actions/download-artifact", "6.0.0"), "node20");
  assert.equal(actionRuntime("actions/download-artifact", "7.0.0"), "node24");
  assert.equal(actionRuntime("denoland/setup-deno", "2.0.3"), "node20");
  assert.equal(actionRuntime("denoland/setup-deno", "2.0.4"), "node24");
  assert.equal(actionRuntime("someone/else", "1.0.0"), undefined);
  for (const r of [...Object.values(RETIRED_RUNNERS), ...Object.values(RETIRED_NODE)]) {
    assert.match(r.date, /^\d{4}-\d{2}-\d{2}$/);
    assert.match(r.source, /^https:\/\//);
  }
});

Deno.test("the project's workflows pass the checks", async () => {
  const dir = new URL("../.github/workflows/", import.meta.url);
  let seen = 0;
  for await (const e of Deno.readDir(dir)) {
    if (!/\.ya?ml$/.test(e.name)) continue;
    seen++;
    const { problems, notes } = checkWorkflow(await Deno.readTextFile(new URL(e.name, dir)));
    assert.deepEqual(problems, [], `${e.name}:\n  ${problems.join("\n  ")}`);
    // Every action used is in the runtime table, so none goes unchecked.
    assert.deepEqual(notes.filter((n) => /not known here/.test(n)), [], e.name);
  }
  assert.ok(seen >= 2);
});
