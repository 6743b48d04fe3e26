// The pure parts of remote_path.ts; the home asked of real servers is in tests/remote_paths_test.ts.

import assert from "node:assert/strict";
import { SshMcpError } from "../errors.ts";
import { expandHome, resolveRemotePath, startsAtHome } from "./remote_path.ts";

Deno.test("expandHome() puts ~ and ~/… in the home and leaves every other ~ alone", () => {
  const cases: [string, string][] = [
    ["~", "/home/ann"],
    ["~/", "/home/ann"],
    ["~/app.py", "/home/ann/app.py"],
    ["~/a/b/", "/home/ann/a/b/"],
    ["~//x", "/home/ann//x"],
    ["~/..", "/home/ann/.."],
    ["a~b", "a~b"],
    ["/x/~", "/x/~"],
    ["./~", "./~"],
    ["x/~/y", "x/~/y"],
    ["~$lock.docx", "~$lock.docx"], // an office lock file, not a user
    ["~~", "~~"],
    ["/abs", "/abs"],
    ["rel/p", "rel/p"],
  ];
  for (const [path, want] of cases) assert.equal(expandHome(path, "/home/ann"), want, path);
  assert.equal(expandHome("~/x", "/"), "/x", "a home of / makes no //");
  assert.equal(startsAtHome("~"), true);
  assert.equal(startsAtHome("~x"), false);
});

Deno.test("expandHome() refuses ~user/… with the reason and a way to name a file that starts with ~", () => {
  for (const path of ["~root", "~root/x", "~bob.smith/.ssh", "~_svc/", "~machine$"]) {
    assert.throws(() => expandHome(path, "/home/ann"), (e: unknown) => {
      assert.ok(e instanceof SshMcpError);
      assert.equal(e.code, "INVALID_ARGUMENT");
      assert.match(e.message, /only ~ and ~\/… are expanded/);
      assert.match(e.hint ?? "", /\.\/~/);
      return true;
    }, path);
  }
});

Deno.test("resolveRemotePath() asks for the home only when the path needs it", async () => {
  let asked = 0;
  const home = () => {
    asked++;
    return Promise.resolve("/home/ann");
  };
  assert.equal(await resolveRemotePath("/etc/x", home), "/etc/x");
  assert.equal(await resolveRemotePath("a~b", home), "a~b");
  assert.equal(asked, 0);
  assert.equal(await resolveRemotePath("~/x", home), "/home/ann/x");
  assert.equal(asked, 1);
  await assert.rejects(resolveRemotePath("~root/x", home), SshMcpError);
  assert.equal(asked, 1);
});
