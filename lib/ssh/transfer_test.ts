// The symlink rule of tree downloads, on its own: which remote links may be
// created locally. End to end it is tested in tests/transfer_tree_test.ts.

import assert from "node:assert/strict";
import { splitLinks } from "./transfer.ts";

/** The links `splitLinks` keeps, from `rel -> target` pairs in a tree with `sub/deep/`. */
function kept(...links: [string, string][]): string[] {
  const entries = [
    { rel: "sub", type: "directory" },
    { rel: "sub/deep", type: "directory" },
    ...links.map(([rel, target]) => ({ rel, type: "symlink", target })),
  ];
  const { kept, skipped } = splitLinks(entries);
  assert.equal(kept.length + skipped.length, entries.length);
  return kept.filter((e) => e.type === "symlink").map((e) => e.rel);
}

Deno.test("splitLinks() keeps ordinary relative links: siblings, names below, and `..` up to the top", () => {
  assert.deepEqual(
    kept(
      ["sub/deep/lib", "../lib/x.so"],
      ["sub/file", "sibling/file"],
      ["sub/deep/top", "../.."],
      ["sub/deep/here", "."],
      ["sub/deep/dot", "./x/./y/"],
      ["sub/deep/dangling", "missing"],
      ["top", "sub/deep/x"],
    ),
    ["sub/deep/lib", "sub/file", "sub/deep/top", "sub/deep/here", "sub/deep/dot", "sub/deep/dangling", "top"],
  );
});

Deno.test("splitLinks() skips absolute links, empty ones and more `..` than the link's depth", () => {
  assert.deepEqual(
    kept(["abs", "/etc"], ["sub/deep/out", "../../../etc"], ["up", ".."], ["empty", ""], ["nul", "a\0b"]),
    [],
  );
});

Deno.test("splitLinks() skips any `..` after a name, which a case-insensitive file system could send through a link", () => {
  // On APFS `X` is the link `x` (the top): `X/../../../etc` is then /etc's
  // neighbourhood, while a check reading `X` as a directory saw `sub/etc`.
  const { kept: links, skipped } = splitLinks([
    { rel: "sub", type: "directory" },
    { rel: "sub/deep", type: "directory" },
    { rel: "sub/deep/x", type: "symlink", target: "../.." },
    { rel: "sub/deep/l", type: "symlink", target: "X/../../../etc" },
    { rel: "sub/deep/n", type: "symlink", target: "x\u0301/../../.." },
    { rel: "sub/deep/in", type: "symlink", target: "deeper/../file" },
    { rel: "sub/deep/through", type: "symlink", target: "x/.." },
  ]);
  assert.deepEqual(links.filter((e) => e.type === "symlink").map((e) => e.rel), ["sub/deep/x"]);
  assert.deepEqual(skipped.map((l) => `${l.path} -> ${l.target}`), [
    "sub/deep/l -> X/../../../etc",
    "sub/deep/n -> x\u0301/../../..",
    "sub/deep/in -> deeper/../file",
    "sub/deep/through -> x/..",
  ]);
});
