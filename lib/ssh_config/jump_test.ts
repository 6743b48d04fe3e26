import assert from "node:assert/strict";
import { parseProxyJump } from "./jump.ts";

Deno.test("parseProxyJump() parses hops in order, user at the last @", () => {
  assert.deepEqual(parseProxyJump("a@b@h1:2222,h2,ssh://u@h3:23,[::1]:2022,ssh://[fe80::1]"), [
    { user: "a@b", host: "h1", port: 2222 },
    { host: "h2" },
    { user: "u", host: "h3", port: 23 },
    { host: "::1", port: 2022 },
    { host: "fe80::1" },
  ]);
});

Deno.test("parseProxyJump() knows none and drops a trailing comment", () => {
  assert.equal(parseProxyJump("none"), "none");
  assert.equal(parseProxyJump("NONE"), "none");
  assert.deepEqual(parseProxyJump("bastion # via the bastion"), [{ host: "bastion" }]);
});

Deno.test("parseProxyJump() rejects bad hops", () => {
  for (const bad of ["h:0", "h:65536", "h:x", "@h", "a,,b", "", "ssh://u;p@h", "ssh://h/path", "[::1"]) {
    assert.equal(typeof parseProxyJump(bad), "string", bad);
    assert.notEqual(parseProxyJump(bad), "none", bad);
  }
});
