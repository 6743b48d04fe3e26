/**
 * End to end: sudo's own refusals through ssh_sudo_execute are coded errors (the command did not
 * run), while a command's own failures, whatever they print, stay results. Three accounts of the
 * suite (root only, removed afterwards): the shared one (password, `ALL=(ALL) ALL`), one with no
 * sudoers rule, and one whose only rule is NOPASSWD for `/usr/bin/id`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { joinTestAccount, type TestAccount } from "./fixtures/account.ts";
import { call, callOk, type CallResult, connectAs, startServer } from "./fixtures/mcp.ts";
import { findInPath } from "./fixtures/process.ts";
import { sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable() || Deno.uid() !== 0 || findInPath("sudo") === null;
if (skip) console.warn("SKIP sudo tests: they need root, sshd and sudo (tests/run.sh installs them)");

/** A failure that must be coded, with a hint, never showing the password. */
function assertRefused(r: CallResult, code: string, password?: string): void {
  assert.equal(r.isError, true, r.text);
  assert.equal(r.code, code, r.text);
  assert.match(r.text, new RegExp(`^\\[${code}\\] .*(the command|it) did not run`), r.text);
  assert.match(r.text, /\nHint: \S/, r.text);
  if (password !== undefined) assert.ok(!r.text.includes(password), "the password is in the error text");
}

Deno.test({
  name: "ssh_sudo_execute codes sudo's refusals and keeps the command's own failures as results",
  ignore: skip,
}, async (t) => {
  const shared = await joinTestAccount();
  const none = await joinTestAccount({ name: "mcp-rssh-sudo-none", sudoers: null });
  const onlyId = await joinTestAccount({
    name: "mcp-rssh-sudo-id",
    sudoers: "mcp-rssh-sudo-id ALL=(root) NOPASSWD: /usr/bin/id",
  });
  await using sshd = await startSshd();
  const kh = await sshd.writeKnownHosts();
  await using server = await startServer({ args: ["--known-hosts", kh] });
  const c = server.client;
  const login = async (account: TestAccount) =>
    (await connectAs(c, sshd, account.name, sshd.keys.ed25519.path)).structured.session_id as string;
  const canary = `/tmp/mcp-rssh-sudo-canary-${crypto.randomUUID()}`;
  const touched = () => Deno.stat(canary).then(() => true, () => false);
  try {
    if (shared.password === null || none.password === null || onlyId.password === null) {
      console.warn(`SKIP: ${shared.skipReason ?? none.skipReason ?? onlyId.skipReason}`);
      return;
    }
    const password = shared.password;
    const sid = await login(shared);

    await t.step("the command's own exit, stderr and locale are its own", async () => {
      // Even sudo's words on the command's stderr with exit 1 are the command's.
      const r = await callOk(c, "ssh_sudo_execute", {
        session_id: sid,
        command: 'id -u; echo "${LC_ALL-unset}"; echo "sudo: a password is required" >&2; exit 1',
        password,
      });
      assert.equal(r.structured.exit_code, 1, r.text);
      assert.equal(r.structured.stdout, "0\nunset\n"); // sudo's LC_ALL=C did not reach the command
      assert.equal(r.structured.stderr, "sudo: a password is required\n"); // the marker line is gone
      assert.equal(r.structured.stderr_bytes, r.structured.stderr.length);
    });

    await t.step("a wrong password is SUDO_PASSWORD_WRONG and nothing ran", async () => {
      const wrong = `wrong ${crypto.randomUUID()}`;
      const r = await call(c, "ssh_sudo_execute", { session_id: sid, command: `touch ${canary}`, password: wrong });
      assertRefused(r, "SUDO_PASSWORD_WRONG", wrong);
      assert.match(r.text, /incorrect password attempt/);
      assert.equal(await touched(), false);
    });

    await t.step("no password where sudo needs one is SUDO_PASSWORD_REQUIRED and nothing ran", async () => {
      const r = await call(c, "ssh_sudo_execute", { session_id: sid, command: `touch ${canary}` });
      assertRefused(r, "SUDO_PASSWORD_REQUIRED");
      assert.match(r.text, /a password is required/);
      assert.equal(await touched(), false);
    });

    await t.step("an account not in sudoers is SUDO_NOT_ALLOWED once its password is given", async () => {
      const nid = await login(none);
      const r = await call(c, "ssh_sudo_execute", {
        session_id: nid,
        command: `touch ${canary}`,
        password: none.password,
      });
      assertRefused(r, "SUDO_NOT_ALLOWED", none.password!);
      assert.match(r.text, /is not in the sudoers file/);
      // Without the password sudo cannot tell yet: it asks for one first.
      assertRefused(await call(c, "ssh_sudo_execute", { session_id: nid, command: "true" }), "SUDO_PASSWORD_REQUIRED");
      assert.equal(await touched(), false);
    });

    await t.step("a rule for one program does not cover the shell ssh_sudo_execute runs", async () => {
      const oid = await login(onlyId);
      const r = await call(c, "ssh_sudo_execute", { session_id: oid, command: "id", password: onlyId.password });
      assertRefused(r, "SUDO_NOT_ALLOWED", onlyId.password!);
      assert.match(r.text, /is not allowed to execute/);
      assert.match(r.text, /Hint: .*sh -c/);
    });

    await t.step("no password in the server's logs", () => {
      for (const p of [password, none.password!, onlyId.password!]) assert.ok(!server.stderr().includes(p));
    });
  } finally {
    // The accounts are left when this runtime unloads, after the servers using them are gone.
    await Deno.remove(canary).catch(() => {});
  }
});
