import assert from "node:assert/strict";
import denoJson from "../../deno.json" with { type: "json" };
import { installedSsh2Version, PINNED_SSH2_VERSION, pretendSsh2Version, ssh2VersionProblem } from "./guard.ts";

Deno.test("deno.json pins ssh2 to exactly the version the repairs were written for", () => {
  assert.equal(denoJson.imports.ssh2, `npm:ssh2@${PINNED_SSH2_VERSION}`);
  assert.equal(denoJson.imports["ssh2/"], `npm:/ssh2@${PINNED_SSH2_VERSION}/`);
});

Deno.test("installedSsh2Version() reads the version from ssh2's own package.json", () => {
  assert.equal(installedSsh2Version(), PINNED_SSH2_VERSION);
  assert.equal(ssh2VersionProblem(), null);
});

Deno.test("ssh2VersionProblem() names both versions when they differ", () => {
  assert.equal(ssh2VersionProblem("1.17.0"), null);
  for (const other of ["1.17.1", "1.16.0", "2.0.0", "", "1.17.0-beta"]) {
    const problem = ssh2VersionProblem(other);
    assert.ok(problem?.includes(`ssh2 is ${other}, not 1.17.0`), problem ?? "null");
  }
});

Deno.test("pretendSsh2Version() makes the guard see another version (test only)", () => {
  pretendSsh2Version("0.0.0-test");
  try {
    assert.equal(installedSsh2Version(), "0.0.0-test");
    assert.notEqual(ssh2VersionProblem(), null);
  } finally {
    pretendSsh2Version(PINNED_SSH2_VERSION);
  }
});
