/**
 * End to end: remote paths as people type them (issue 15). `~` and `~/…` are
 * the remote user's home in every file tool and in ssh_execute's cwd, as in
 * OpenSSH's sftp; `~user/…` is refused, not taken literally; a `~` anywhere
 * else is an ordinary character. Writes and uploads create missing parent
 * directories with `parents: true`, and without it a missing parent is its
 * own coded error, never one that names the temporary file.
 *
 * The login account is the suite's own, made for the test and removed after
 * it (needs root), so the home is one the test can look into.
 *
 * @module
 */

import assert from "node:assert/strict";
import { joinTestAccount, type TestAccount } from "./fixtures/account.ts";
import { dropbearAvailable, startDropbear } from "./fixtures/dropbear.ts";
import { call, callOk, type CallResult, connectAs, startServer } from "./fixtures/mcp.ts";
import { exists } from "./fixtures/process.ts";
import { sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const root = Deno.uid() === 0 && Deno.build.os === "linux";
const skip = !root || !sshdAvailable();
if (!root) console.warn("SKIP remote path tests: they make an account, which needs root on Linux");

/** What a temporary name of lib/random.ts `tempName` looks like. */
const TEMP_NAME = /\.mcp-[0-9a-f]+\.tmp/;

function noTempName(r: CallResult): void {
  assert.doesNotMatch(r.text, TEMP_NAME, `the error names the temporary file: ${r.text}`);
}

async function expectError(r: Promise<CallResult>, code: string): Promise<CallResult> {
  const got = await r;
  assert.equal(got.code, code, got.text);
  noTempName(got);
  return got;
}

Deno.test(
  { name: "~ and ~/… are the home in every file tool and in cwd; parents creates", ignore: skip },
  async (t) => {
    const account = await joinTestAccount({ name: "mcp-rssh-paths" });
    const base = await Deno.makeTempDir({ prefix: "mcp-paths-" });
    try {
      await using sshd = await startSshd();
      const kh = await sshd.writeKnownHosts(`${base}/kh`);
      const local = `${base}/root`;
      await Deno.mkdir(local);
      await using server = await startServer({ args: ["--known-hosts", kh, "--allow-local-dir", local] });
      const c = server.client;
      const sid = (await connectAs(c, sshd, account.name, sshd.keys.ed25519.path)).structured.session_id as string;
      const home = account.home;
      const tool = (name: string, args: Record<string, unknown>) => call(c, name, { session_id: sid, ...args });
      const ok = (name: string, args: Record<string, unknown>) => callOk(c, name, { session_id: sid, ...args });

      await t.step("write, read, stat, list, edit, chmod, rename and remove resolve ~/… in the home", async () => {
        const w = await ok("ssh_write_remote_file", { remote_path: "~/app.py", content: "print(1)\n" });
        assert.equal(w.structured.path, `${home}/app.py`, w.text);
        assert.equal(await Deno.readTextFile(`${home}/app.py`), "print(1)\n");
        assert.equal((await Deno.stat(`${home}/app.py`)).uid, account.uid);
        const r = await ok("ssh_read_remote_file", { remote_path: "~/app.py" });
        assert.equal(r.structured.content, "print(1)\n");
        const st = await ok("ssh_stat_remote", { remote_path: "~/app.py" });
        assert.equal(st.structured.path, `${home}/app.py`);
        assert.equal(st.structured.type, "file");
        await ok("ssh_edit_remote_file", { remote_path: "~/app.py", old_text: "1", new_text: "2" });
        assert.equal(await Deno.readTextFile(`${home}/app.py`), "print(2)\n");
        await ok("ssh_manage_remote", { action: "chmod", remote_path: "~/app.py", file_mode: "0600" });
        assert.equal((await Deno.stat(`${home}/app.py`)).mode! & 0o777, 0o600);
        await ok("ssh_manage_remote", { action: "rename", remote_path: "~/app.py", to_path: "~/app2.py" });
        assert.ok(exists(`${home}/app2.py`) && !exists(`${home}/app.py`));
        const listed = await ok("ssh_list_remote_dir", { remote_path: "~/" });
        assert.ok(listed.structured.entries.some((e: { name: string }) => e.name === "app2.py"), listed.text);
        await ok("ssh_manage_remote", { action: "remove", remote_path: "~/app2.py" });
        assert.equal(exists(`${home}/app2.py`), false);
      });

      await t.step("~ alone is the home directory", async () => {
        const st = await ok("ssh_stat_remote", { remote_path: "~" });
        assert.equal(st.structured.path, home);
        assert.equal(st.structured.type, "directory");
        const listed = await ok("ssh_list_remote_dir", { remote_path: "~" });
        assert.equal(listed.structured.path, home);
        await ok("ssh_manage_remote", { action: "mkdir", remote_path: "~/made" });
        assert.ok((await Deno.stat(`${home}/made`)).isDirectory);
      });

      await t.step("a recursive remove of ~ (or /) is refused however it is spelled; the home stays", async () => {
        for (const path of ["~", "~/", `${home}/made/..`, "/", "//"]) {
          const refused = await expectError(
            tool("ssh_manage_remote", { action: "remove", remote_path: path, recursive: true }),
            "INVALID_ARGUMENT",
          );
          assert.match(refused.text, /Refusing to remove/, path);
        }
        assert.ok((await Deno.stat(`${home}/made`)).isDirectory, "nothing in the home was removed");
        // An argument that does nothing for the action is refused before anything remote.
        const stray = await expectError(
          tool("ssh_manage_remote", { action: "remove", remote_path: "~/made", parents: true }),
          "INVALID_ARGUMENT",
        );
        assert.match(stray.text, /parents does not apply/);
      });

      await t.step("a ~ elsewhere in a path is literal, and ~user/… is refused, not taken literally", async () => {
        await ok("ssh_write_remote_file", { remote_path: "a~b", content: "x" }); // relative: in the login directory
        assert.equal(await Deno.readTextFile(`${home}/a~b`), "x");
        await ok("ssh_manage_remote", { action: "mkdir", remote_path: "~/made/~" });
        assert.ok((await Deno.stat(`${home}/made/~`)).isDirectory, "/x/~ is a directory named ~");
        await ok("ssh_write_remote_file", { remote_path: "./~", content: "y" });
        assert.equal(await Deno.readTextFile(`${home}/~`), "y");
        const other = await expectError(
          tool("ssh_write_remote_file", { remote_path: "~root/x", content: "x" }),
          "INVALID_ARGUMENT",
        );
        assert.match(other.text, /~root/);
        assert.equal(exists(`${home}/~root`), false);
      });

      await t.step("parents creates missing directories; without it a missing parent is PARENT_MISSING", async () => {
        const missing = await expectError(
          tool("ssh_write_remote_file", { remote_path: "~/deep/a/b/c.txt", content: "c" }),
          "PARENT_MISSING",
        );
        assert.match(missing.text, new RegExp(`${home}/deep\\b`), "names the missing directory");
        assert.match(missing.text, /c\.txt/, "names the requested path");
        assert.match(missing.text, /parents/, "says how to create it");
        assert.equal(exists(`${home}/deep`), false);
        await ok("ssh_write_remote_file", { remote_path: "~/deep/a/b/c.txt", content: "c", parents: true });
        assert.equal(await Deno.readTextFile(`${home}/deep/a/b/c.txt`), "c");
        const made = await Deno.stat(`${home}/deep/a`);
        assert.ok(made.isDirectory);
        assert.equal(made.uid, account.uid);
        assert.equal(made.mode! & 0o022, 0, "no group/world write on created directories");
        const appended = await expectError(
          tool("ssh_write_remote_file", { remote_path: "~/nowhere/log", content: "l", mode: "append" }),
          "PARENT_MISSING",
        );
        assert.match(appended.text, new RegExp(`${home}/nowhere`));
      });

      await t.step("a parent that is a file is NOT_A_DIRECTORY, with or without parents", async () => {
        await ok("ssh_write_remote_file", { remote_path: "~/plain", content: "p" });
        for (const parents of [false, true]) {
          const r = await expectError(
            tool("ssh_write_remote_file", { remote_path: "~/plain/sub/x", content: "x", parents }),
            "NOT_A_DIRECTORY",
          );
          assert.match(r.text, new RegExp(`${home}/plain\\b`), r.text);
        }
        assert.equal((await Deno.stat(`${home}/plain`)).isFile, true);
      });

      await t.step("uploads and downloads take ~/…, and uploads take parents", async () => {
        await Deno.writeTextFile(`${local}/up.txt`, "up\n");
        const up = await ok("ssh_upload_file", { local_path: `${local}/up.txt`, remote_path: "~/up.txt" });
        assert.equal(up.structured.remote_path, `${home}/up.txt`, up.text);
        assert.equal(await Deno.readTextFile(`${home}/up.txt`), "up\n");
        const down = await ok("ssh_download_file", { remote_path: "~/up.txt", local_path: `${local}/down.txt` });
        assert.equal(down.structured.remote_path, `${home}/up.txt`);
        assert.equal(await Deno.readTextFile(`${local}/down.txt`), "up\n");
        const missing = await expectError(
          tool("ssh_upload_file", { local_path: `${local}/up.txt`, remote_path: "~/ups/x/up.txt" }),
          "PARENT_MISSING",
        );
        assert.match(missing.text, new RegExp(`${home}/ups\\b`));
        await ok("ssh_upload_file", { local_path: `${local}/up.txt`, remote_path: "~/ups/x/up.txt", parents: true });
        assert.equal(await Deno.readTextFile(`${home}/ups/x/up.txt`), "up\n");

        await Deno.mkdir(`${local}/tree/sub`, { recursive: true });
        await Deno.writeTextFile(`${local}/tree/sub/f`, "f");
        const treeArgs = { local_path: `${local}/tree`, remote_path: "~/trees/t1", recursive: true };
        await expectError(tool("ssh_upload_file", treeArgs), "PARENT_MISSING");
        await ok("ssh_upload_file", { ...treeArgs, parents: true });
        assert.equal(await Deno.readTextFile(`${home}/trees/t1/sub/f`), "f");
        const back = await ok("ssh_download_file", {
          remote_path: "~/trees/t1",
          local_path: `${local}/t1`,
          recursive: true,
        });
        assert.equal(back.structured.files, 1);
        assert.equal(await Deno.readTextFile(`${local}/t1/sub/f`), "f");
      });

      await t.step("errors of writes and uploads name the path asked for, never the temporary file", async () => {
        // The account cannot write in /: the temporary file is refused there.
        const denied = await expectError(
          tool("ssh_write_remote_file", { remote_path: "/mcp-rssh-denied", content: "x" }),
          "SFTP_PERMISSION_DENIED",
        );
        assert.match(denied.text, /\/mcp-rssh-denied/);
        await expectError(
          tool("ssh_upload_file", { local_path: `${local}/up.txt`, remote_path: "/mcp-rssh-denied" }),
          "SFTP_PERMISSION_DENIED",
        );
        await expectError(
          tool("ssh_upload_file", { local_path: `${local}/tree`, remote_path: "/mcp-rssh-denied", recursive: true }),
          "SFTP_PERMISSION_DENIED",
        );
        await Deno.writeTextFile("/mcp-rssh-denied-edit", "old\n"); // root's, in a directory the account cannot write
        try {
          await Deno.chmod("/mcp-rssh-denied-edit", 0o666);
          await expectError(
            tool("ssh_edit_remote_file", { remote_path: "/mcp-rssh-denied-edit", old_text: "old", new_text: "new" }),
            "SFTP_PERMISSION_DENIED",
          );
        } finally {
          await Deno.remove("/mcp-rssh-denied-edit");
        }
        assert.equal(exists("/mcp-rssh-denied"), false);
      });

      await t.step("ssh_execute's cwd ~ and ~/… are the home; the rest stays quoted", async () => {
        const pwd = async (cwd: string) => (await ok("ssh_execute", { command: "pwd", cwd })).structured.stdout;
        assert.equal(await pwd("~"), `${home}\n`);
        assert.equal(await pwd("~/"), `${home}\n`);
        await Deno.mkdir(`${home}/it's $(id) here`);
        assert.equal(await pwd("~/it's $(id) here"), `${home}/it's $(id) here\n`);
        assert.equal(await pwd("~/made/~"), `${home}/made/~\n`);
        const literal = await tool("ssh_execute", { command: "pwd", cwd: "~root" });
        assert.equal(literal.code, "CWD_FAILED", literal.text);
      });
    } finally {
      account.leave();
      await Deno.remove(base, { recursive: true });
    }
  },
);

Deno.test({
  name: "~/… resolves in the home on Dropbear too",
  ignore: skip || !dropbearAvailable(),
}, async () => {
  const account: TestAccount = await joinTestAccount({ name: "mcp-rssh-pathsdb" });
  try {
    await using dropbear = await startDropbear({ user: account });
    const kh = await dropbear.writeKnownHosts();
    await using server = await startServer({ args: ["--known-hosts", kh] });
    const c = server.client;
    const sid = (await connectAs(c, dropbear, account.name, dropbear.key.path)).structured.session_id;
    const st = await callOk(c, "ssh_stat_remote", { session_id: sid, remote_path: "~" });
    assert.equal(st.structured.path, account.home);
    await callOk(c, "ssh_write_remote_file", { session_id: sid, remote_path: "~/d/x", content: "db", parents: true });
    assert.equal(await Deno.readTextFile(`${account.home}/d/x`), "db");
    const pwd = await callOk(c, "ssh_execute", { session_id: sid, command: "pwd", cwd: "~/d" });
    assert.equal(pwd.structured.stdout, `${account.home}/d\n`);
  } finally {
    account.leave();
  }
});
