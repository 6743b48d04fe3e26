// The checks of sftp.ts that need no server. Reads, writes and transfers
// against a real sshd are in tests/files_test.ts and tests/special_files_test.ts.

import assert from "node:assert/strict";
import { SshMcpError } from "../errors.ts";
import { type RemoteStat, requireRegularFile } from "./sftp.ts";

const at = (type: RemoteStat["type"], special?: RemoteStat["special"]): RemoteStat => ({
  path: "/srv/x",
  type,
  ...(special === undefined ? {} : { special }),
  size: 0,
  mode: 0o644,
  mtime: new Date(0).toISOString(),
  uid: 0,
  gid: 0,
});

Deno.test("requireRegularFile() passes a regular file only, naming what anything else is", () => {
  requireRegularFile(at("file"), "read");
  for (const kind of ["FIFO", "socket", "character device", "block device"] as const) {
    assert.throws(() => requireRegularFile(at("other", kind), "read"), (e: unknown) => {
      assert.ok(e instanceof SshMcpError);
      assert.equal(e.code, "NOT_A_REGULAR_FILE");
      assert.equal(e.message, `Cannot read /srv/x: it is a ${kind}, not a regular file`);
      assert.match(e.hint ?? "", /ssh_execute/);
      return true;
    });
  }
  assert.throws(() => requireRegularFile(at("directory"), "download"), (e: unknown) => {
    assert.ok(e instanceof SshMcpError);
    assert.equal(e.code, "IS_A_DIRECTORY");
    return true;
  });
});

Deno.test("requireRegularFile() tells a writer that replacing the special file is not writing into it", () => {
  assert.throws(() => requireRegularFile(at("other", "FIFO"), "write"), (e: unknown) => {
    assert.ok(e instanceof SshMcpError);
    assert.match(e.hint ?? "", /remove it first/);
    return true;
  });
});
