/**
 * End to end: remote file tools over SFTP through the MCP client, against a
 * real sshd. (Uploads, downloads and local confinement come with issue 4's
 * transfer tools.)
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { call, callOk, connectWithKey, startServer } from "./fixtures/mcp.ts";
import { sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable();
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

function pattern(size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (i * 131 + (i >> 8)) & 0xff;
  return out;
}

Deno.test({ name: "remote files: read, write, edit, list and manage over SFTP", ignore: skip }, async (t) => {
  await using sshd = await startSshd();
  const kh = await sshd.writeKnownHosts();
  await using server = await startServer({ args: ["--known-hosts", kh] });
  const c = server.client;
  const sid = await connectWithKey(c, sshd);
  const dir = `/tmp/mcp-files-${crypto.randomUUID()}`;
  await callOk(c, "ssh_manage_remote", { action: "mkdir", session_id: sid, remote_path: `${dir}/a/b`, parents: true });
  const remoteSha = async (path: string) =>
    (await callOk(c, "ssh_execute", { session_id: sid, command: `sha256sum '${path}'` })).structured.stdout.split(
      " ",
    )[0];

  try {
    await t.step("sizes around packet boundaries and all byte values survive a round trip", async () => {
      const all = new Uint8Array(256).map((_, i) => i);
      const cases: [string, Uint8Array][] = [
        ["empty", new Uint8Array(0)],
        ["one", new Uint8Array([7])],
        ["32767", pattern(32767)],
        ["32768", pattern(32768)],
        ["32769", pattern(32769)],
        ["256k-1", pattern(262143)],
        ["256k", pattern(262144)],
        ["256k+1", pattern(262145)],
        ["bytes", all],
        ["crlf", new TextEncoder().encode("line one\r\nline two\r\n\r\nend")],
      ];
      for (const [name, data] of cases) {
        const path = `${dir}/${name}`;
        const w = await callOk(c, "ssh_write_remote_file", {
          session_id: sid,
          remote_path: path,
          content: Buffer.from(data).toString("base64"),
          encoding: "base64",
        });
        assert.equal(w.structured.sha256, sha(data), name);
        assert.equal(await remoteSha(path), sha(data), `${name}: the remote file differs`);
        const r = await callOk(c, "ssh_read_remote_file", { session_id: sid, remote_path: path, max_bytes: 300000 });
        const got = r.structured.encoding === "base64"
          ? new Uint8Array(Buffer.from(r.structured.content, "base64"))
          : new TextEncoder().encode(r.structured.content);
        assert.equal(sha(got), sha(data), name);
        assert.equal(r.structured.size, data.length);
        assert.equal(r.structured.complete, true);
      }
      const crlf = await callOk(c, "ssh_read_remote_file", { session_id: sid, remote_path: `${dir}/crlf` });
      assert.equal(crlf.structured.encoding, "utf8");
      assert.equal(crlf.structured.content, "line one\r\nline two\r\n\r\nend");
    });

    await t.step("reads by byte range and by line range; binary can be refused", async () => {
      await callOk(c, "ssh_write_remote_file", {
        session_id: sid,
        remote_path: `${dir}/lines`,
        content: "l1\nl2\nl3\nl4\n",
      });
      const range = await callOk(c, "ssh_read_remote_file", {
        session_id: sid,
        remote_path: `${dir}/lines`,
        offset: 3,
        length: 5,
      });
      assert.equal(range.structured.content, "l2\nl3");
      assert.equal(range.structured.complete, false);
      const lines = await callOk(c, "ssh_read_remote_file", {
        session_id: sid,
        remote_path: `${dir}/lines`,
        line_start: 2,
        line_count: 2,
      });
      assert.equal(lines.structured.content, "l2\nl3\n");
      assert.equal(lines.structured.offset, 3);
      const refused = await call(c, "ssh_read_remote_file", {
        session_id: sid,
        remote_path: `${dir}/bytes`,
        binary: "refuse",
      });
      assert.equal(refused.code, "BINARY_FILE");
    });

    await t.step(
      "create refuses to clobber, overwrite replaces atomically with the mode kept, append appends",
      async () => {
        const path = `${dir}/cfg`;
        await callOk(c, "ssh_write_remote_file", {
          session_id: sid,
          remote_path: path,
          content: "v1\n",
          file_mode: "0640",
        });
        const again = await call(c, "ssh_write_remote_file", { session_id: sid, remote_path: path, content: "v2\n" });
        assert.equal(again.code, "FILE_EXISTS");
        await callOk(c, "ssh_write_remote_file", {
          session_id: sid,
          remote_path: path,
          content: "v2\n",
          mode: "overwrite",
        });
        await callOk(c, "ssh_write_remote_file", {
          session_id: sid,
          remote_path: path,
          content: "v3\n",
          mode: "append",
        });
        const r = await callOk(c, "ssh_read_remote_file", { session_id: sid, remote_path: path });
        assert.equal(r.structured.content, "v2\nv3\n");
        const st = await callOk(c, "ssh_stat_remote", { session_id: sid, remote_path: path });
        assert.equal(st.structured.mode, "0640");
        const ls = await callOk(c, "ssh_execute", {
          session_id: sid,
          command: `ls -A '${dir}' | grep -c '\\.tmp$' || true`,
        });
        assert.equal(ls.structured.stdout.trim(), "0", "a temporary file was left behind");
      },
    );

    await t.step("edits need an exact, unique match and an unchanged file; refused edits write nothing", async () => {
      const path = `${dir}/edit.txt`;
      await callOk(c, "ssh_write_remote_file", { session_id: sid, remote_path: path, content: "a=1\nb=2\nb=2\n" });
      const before = await remoteSha(path);
      const none = await call(c, "ssh_edit_remote_file", {
        session_id: sid,
        remote_path: path,
        old_text: "c=3",
        new_text: "x",
      });
      assert.equal(none.code, "EDIT_NO_MATCH");
      const two = await call(c, "ssh_edit_remote_file", {
        session_id: sid,
        remote_path: path,
        old_text: "b=2",
        new_text: "b=9",
      });
      assert.equal(two.code, "EDIT_AMBIGUOUS");
      assert.match(two.text, /occurs 2 times/);
      const stale = await call(c, "ssh_edit_remote_file", {
        session_id: sid,
        remote_path: path,
        old_text: "a=1",
        new_text: "a=5",
        expected_sha256: "0".repeat(64),
      });
      assert.equal(stale.code, "PRECONDITION_FAILED");
      assert.equal(await remoteSha(path), before, "a refused edit changed the file");
      const done = await callOk(c, "ssh_edit_remote_file", {
        session_id: sid,
        remote_path: path,
        old_text: "a=1",
        new_text: "a=5",
        expected_sha256: before,
      });
      assert.equal(done.structured.sha256_before, before);
      assert.equal(await remoteSha(path), done.structured.sha256_after);
      const both = await callOk(c, "ssh_edit_remote_file", {
        session_id: sid,
        remote_path: path,
        old_text: "b=2",
        new_text: "b=9",
        expected_count: 2,
      });
      assert.equal(both.structured.replacements, 2);
      const r = await callOk(c, "ssh_read_remote_file", { session_id: sid, remote_path: path });
      assert.equal(r.structured.content, "a=5\nb=9\nb=9\n");
    });

    await t.step("listing shows types, odd names and symlinks, recurses to a depth and pages", async () => {
      const tree = `${dir}/tree`;
      await callOk(c, "ssh_execute", {
        session_id: sid,
        command: `mkdir -p '${tree}/sub/deeper' '${tree}/empty' && echo x > '${tree}/sub/deeper/f' && ` +
          `touch '${tree}/with space' "${tree}/quo'te" '${tree}/-dash' '${tree}/ünï' && ln -s sub '${tree}/link'`,
      });
      const top = await callOk(c, "ssh_list_remote_dir", { session_id: sid, remote_path: tree });
      const names = top.structured.entries.map((e: { name: string }) => e.name);
      assert.deepEqual(names, ["-dash", "empty", "link", "quo'te", "sub", "with space", "ünï"]);
      const link = top.structured.entries.find((e: { name: string }) => e.name === "link");
      assert.equal(link.type, "symlink");
      assert.equal(link.target, "sub");
      const deep = await callOk(c, "ssh_list_remote_dir", { session_id: sid, remote_path: tree, depth: 2 });
      assert.ok(deep.structured.entries.some((e: { path: string }) => e.path === `${tree}/sub/deeper/f`));
      const page = await callOk(c, "ssh_list_remote_dir", { session_id: sid, remote_path: tree, offset: 2, limit: 2 });
      assert.deepEqual(page.structured.entries.map((e: { name: string }) => e.name), ["link", "quo'te"]);
      assert.equal(page.structured.truncated, true);
    });

    await t.step("rename refuses to clobber; chmod; remove needs recursive for a full directory", async () => {
      await callOk(c, "ssh_write_remote_file", { session_id: sid, remote_path: `${dir}/r1`, content: "1" });
      await callOk(c, "ssh_write_remote_file", { session_id: sid, remote_path: `${dir}/r2`, content: "2" });
      const clobber = await call(c, "ssh_manage_remote", {
        action: "rename",
        session_id: sid,
        remote_path: `${dir}/r1`,
        to_path: `${dir}/r2`,
      });
      assert.equal(clobber.code, "FILE_EXISTS");
      await callOk(c, "ssh_manage_remote", {
        action: "rename",
        session_id: sid,
        remote_path: `${dir}/r1`,
        to_path: `${dir}/r3`,
      });
      await callOk(c, "ssh_manage_remote", {
        action: "chmod",
        session_id: sid,
        remote_path: `${dir}/r3`,
        file_mode: "600",
      });
      assert.equal(
        (await callOk(c, "ssh_stat_remote", { session_id: sid, remote_path: `${dir}/r3` })).structured.mode,
        "0600",
      );
      const full = await call(c, "ssh_manage_remote", {
        action: "remove",
        session_id: sid,
        remote_path: `${dir}/tree`,
      });
      assert.equal(full.isError, true);
      const gone = await callOk(c, "ssh_manage_remote", {
        action: "remove",
        session_id: sid,
        remote_path: `${dir}/tree`,
        recursive: true,
      });
      assert.ok(gone.structured.removed >= 10);
      const missing = await call(c, "ssh_stat_remote", { session_id: sid, remote_path: `${dir}/tree` });
      assert.equal(missing.code, "SFTP_NO_SUCH_FILE");
    });

    await t.step("permission denied is a clear error", async () => {
      const r = await call(c, "ssh_write_remote_file", {
        session_id: sid,
        remote_path: "/root/mcp-denied",
        content: "x",
      });
      assert.equal(r.code, "SFTP_PERMISSION_DENIED", r.text);
    });
  } finally {
    await call(c, "ssh_manage_remote", { action: "remove", session_id: sid, remote_path: dir, recursive: true });
  }
});

Deno.test({ name: "a server without an sftp subsystem gives SFTP_UNAVAILABLE, not a hang", ignore: skip }, async () => {
  await using sshd = await startSshd({ sftp: false });
  const kh = await sshd.writeKnownHosts();
  await using server = await startServer({ args: ["--known-hosts", kh] });
  const sid = await connectWithKey(server.client, sshd);
  const r = await call(server.client, "ssh_list_remote_dir", { session_id: sid, remote_path: "/tmp" });
  assert.equal(r.code, "SFTP_UNAVAILABLE", r.text);
  const still = await callOk(server.client, "ssh_execute", { session_id: sid, command: "echo ok" });
  assert.equal(still.structured.stdout, "ok\n");
});
