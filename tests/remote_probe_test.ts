/**
 * ssh_connect tells the agent what kind of remote it reached, and ssh_execute
 * stays truthful there: login files that print (their text is reported, never
 * mixed into a command's output), a forced command (the agent is told its
 * commands are replaced), and Windows (no POSIX wrapper is sent; exec is
 * refused with its own code).
 *
 * @module
 */

import assert from "node:assert/strict";
import { joinTestAccount, type TestAccount, writeHomeFile } from "./fixtures/account.ts";
import { dropbearAvailable, startDropbear } from "./fixtures/dropbear.ts";
import { call, callOk, connectAs, startServer } from "./fixtures/mcp.ts";
import { startInProcessServer } from "./fixtures/in_process.ts";
import { fakeWindows } from "./fixtures/fake_windows.ts";
import { sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const root = Deno.uid() === 0 && Deno.build.os === "linux";
const skip = !root || !sshdAvailable();

/** An account whose login files print on stdout and stderr, as an unguarded `.bashrc` does. */
async function noisyAccount(name: string): Promise<TestAccount> {
  const account = await joinTestAccount({ name, shell: "/bin/bash" });
  await writeHomeFile(account, ".bashrc", 'echo "Welcome to the box"\necho "stty: not a tty" >&2\n');
  await writeHomeFile(account, ".profile", 'echo "profile says hi"\n. ~/.bashrc\n');
  return account;
}

Deno.test({ name: "login files that print: reported once, never in a command's output", ignore: skip }, async (t) => {
  const account = await noisyAccount("mcp-rssh-noisy2");
  try {
    await t.step("OpenSSH (internal-sftp): exec is clean and SFTP works", async () => {
      await using sshd = await startSshd();
      const kh = await sshd.writeKnownHosts();
      await using server = await startInProcessServer({ args: ["--known-hosts", kh] });
      const c = server.client;
      const connected = await connectAs(c, sshd, account.name, sshd.keys.ed25519.path);
      const remote = connected.structured.remote;
      assert.match(remote.login_output ?? "", /Welcome to the box/);
      assert.match(remote.login_output ?? "", /stty: not a tty/);
      assert.equal(remote.exec, "posix");
      assert.match(connected.text, /login files print/);
      const id = connected.structured.session_id;
      const r = await callOk(c, "ssh_execute", { session_id: id, command: "echo ok; echo bad >&2" });
      assert.equal(r.structured.stdout, "ok\n");
      assert.equal(r.structured.stderr, "bad\n");
      assert.equal(r.structured.login_output, undefined, "the same noise is not repeated on every call");
      assert.doesNotMatch(r.text, /Welcome|MCP/);
      // A timeout still finds the PID behind the noise and kills the command.
      const timed = await callOk(c, "ssh_execute", { session_id: id, command: "sleep 771", timeout: 1 });
      assert.equal(timed.structured.timed_out, true);
      assert.equal(timed.structured.warning, undefined, timed.text);
      const listed = await callOk(c, "ssh_list_remote_dir", { session_id: id, remote_path: "/" });
      assert.ok(listed.structured.entries.length > 0);
    });

    await t.step({
      name: "Dropbear (SFTP through the login shell): exec is clean, SFTP fails naming the cause",
      ignore: !dropbearAvailable(),
      fn: async () => {
        await using dropbear = await startDropbear({ user: account });
        const kh = await dropbear.writeKnownHosts();
        await using server = await startInProcessServer({ args: ["--known-hosts", kh] });
        const c = server.client;
        const connected = await connectAs(c, dropbear, account.name, dropbear.key.path);
        assert.match(connected.structured.remote.login_output ?? "", /Welcome to the box/);
        const id = connected.structured.session_id;
        // SFTP before any command: after one, opening the SFTP channel retires the spare shell,
        // and Dropbear 2022.83 (Debian 12's) closes a session channel opened just as another
        // channel's process exits, before its subsystem request runs (mkj/dropbear#173, fixed
        // by mkj/dropbear#326 in 2024.86): then ssh2 reports "Unable to start subsystem" and the
        // answer is SFTP_UNAVAILABLE, about one time in three. That is not what this step tests.
        const listed = await call(c, "ssh_list_remote_dir", { session_id: id, remote_path: "/" });
        assert.equal(listed.code, "SFTP_LOGIN_OUTPUT", listed.text);
        const r = await callOk(c, "ssh_execute", { session_id: id, command: "echo ok" });
        assert.equal(r.structured.stdout, "ok\n");
        assert.equal(r.structured.stderr, "");
        const again = await callOk(c, "ssh_execute", { session_id: id, command: "echo still" });
        assert.equal(again.structured.stdout, "still\n");
      },
    });
  } finally {
    account.leave();
  }
});

Deno.test({ name: "a forced command: the agent is told its commands are replaced", ignore: skip }, async (t) => {
  const account = await joinTestAccount({ name: "mcp-rssh-forced", shell: "/bin/bash" });
  try {
    await t.step("OpenSSH ForceCommand", async () => {
      await using sshd = await startSshd({
        extraConfig: `Match User ${account.name}\n  ForceCommand echo forced-reply\n`,
      });
      const kh = await sshd.writeKnownHosts();
      await using server = await startInProcessServer({ args: ["--known-hosts", kh] });
      const c = server.client;
      const connected = await connectAs(c, sshd, account.name, sshd.keys.ed25519.path);
      assert.equal(connected.structured.remote.exec, "replaced", connected.text);
      assert.match(connected.structured.remote.note ?? "", /forced-reply/);
      assert.match(connected.text, /does not run the commands it is sent/);
      const r = await callOk(c, "ssh_execute", { session_id: connected.structured.session_id, command: "echo hi" });
      assert.equal(r.structured.stdout, "forced-reply\n");
      assert.match(r.structured.warning ?? "", /may not have run as asked/);
      assert.match(r.text, /Warning: .*may not have run as asked/);
    });

    await t.step("a sudo password is never sent to a forced command", async () => {
      // Forced `cat` echoes its stdin: a password written there would come back in stdout. The
      // flag file switches it on after the probe has seen an ordinary account.
      const flag = `/tmp/mcp-rssh-forced-${crypto.randomUUID()}`;
      const forced = `if [ -e ${flag} ]; then cat; else eval "$SSH_ORIGINAL_COMMAND"; fi`;
      await using sshd = await startSshd({ extraConfig: `Match User ${account.name}\n  ForceCommand ${forced}\n` });
      const kh = await sshd.writeKnownHosts();
      await using server = await startServer({ args: ["--known-hosts", kh] });
      const c = server.client;
      const secret = `pw-${crypto.randomUUID()}`;
      const connect = () => connectAs(c, sshd, account.name, sshd.keys.ed25519.path);
      try {
        const before = await connect();
        assert.equal(before.structured.remote.exec, "posix", before.text);
        await Deno.writeTextFile(flag, "");
        const sid = before.structured.session_id;
        const r = await callOk(c, "ssh_sudo_execute", { session_id: sid, command: "id", password: secret, timeout: 3 });
        // `cat` waits for an EOF that never comes: the password was held back until the timeout.
        assert.equal(r.structured.timed_out, true, r.text);
        assert.match(r.structured.warning ?? "", /start marker never arrived/, r.text);
        assert.ok(!r.text.includes(secret) && !r.structured.stdout.includes(secret), "the password was echoed back");
        // Once the probe has seen the forced command, a password is refused before anything is sent.
        const after = await connect();
        assert.equal(after.structured.remote.exec, "replaced", after.text);
        const refused = await call(c, "ssh_sudo_execute", {
          session_id: after.structured.session_id,
          command: "id",
          password: secret,
        });
        assert.equal(refused.code, "EXEC_UNSUPPORTED", refused.text);
      } finally {
        await Deno.remove(flag).catch(() => {});
      }
    });

    await t.step({
      name: "Dropbear -c",
      ignore: !dropbearAvailable(),
      fn: async () => {
        await using dropbear = await startDropbear({ user: account, forcedCommand: "echo dropbear-forced" });
        const kh = await dropbear.writeKnownHosts();
        await using server = await startInProcessServer({ args: ["--known-hosts", kh] });
        const c = server.client;
        const connected = await connectAs(c, dropbear, account.name, dropbear.key.path);
        assert.equal(connected.structured.remote.exec, "replaced", connected.text);
        const r = await callOk(c, "ssh_execute", { session_id: connected.structured.session_id, command: "echo hi" });
        assert.equal(r.structured.stdout, "dropbear-forced\n");
        assert.match(r.structured.warning ?? "", /may not have run as asked/);
      },
    });
  } finally {
    account.leave();
  }
});

Deno.test({ name: "a probe that gets no answer in time says unknown, not forced", ignore: skip }, async () => {
  const account = await joinTestAccount({ name: "mcp-rssh-slowrc", shell: "/bin/bash" });
  try {
    // Twice the timeout: the probe cannot finish, and the connect itself (key exchange,
    // authentication) keeps 4 s of it on a loaded machine, where 2 s was seen to run out.
    await writeHomeFile(account, ".bashrc", "sleep 8\n");
    await using sshd = await startSshd();
    const kh = await sshd.writeKnownHosts();
    await using server = await startInProcessServer({ args: ["--known-hosts", kh] });
    const c = server.client;
    // What is left of connect_timeout bounds the probe.
    const connected = await connectAs(c, sshd, account.name, sshd.keys.ed25519.path, { connect_timeout: 4 });
    assert.equal(connected.structured.remote.exec, "unknown", connected.text);
    assert.match(connected.structured.remote.note ?? "", /no answer within/);
    assert.doesNotMatch(connected.text, /does not run the commands/);
    const r = await callOk(c, "ssh_execute", { session_id: connected.structured.session_id, command: "echo ok" });
    assert.equal(r.structured.stdout, "ok\n");
  } finally {
    account.leave();
  }
});

Deno.test("a Windows server: no POSIX line is sent, and ssh_execute says it is unavailable", async (t) => {
  for (
    const [what, ident] of [
      ["OpenSSH for Windows, known by its version", "OpenSSH_for_Windows_9.5"],
      ["another server whose shell answers like cmd.exe", "OpenSSH_9.6"],
    ] as const
  ) {
    await t.step(what, async () => {
      await using win = await fakeWindows(ident);
      await using server = await startInProcessServer({ args: ["--known-hosts", win.knownHosts] });
      const c = server.client;
      const connected = await callOk(c, "ssh_connect", {
        host: "127.0.0.1",
        port: win.port,
        username: "someone",
        password: "x",
      });
      assert.equal(connected.structured.remote.exec, "windows", connected.text);
      assert.equal(connected.structured.remote.os, "Windows");
      assert.match(connected.text, /Windows server: ssh_execute and ssh_sudo_execute are unavailable/);
      const sent = win.execs.length;
      if (ident.includes("Windows")) assert.equal(sent, 0, `exec requests sent: ${win.execs.join(" | ")}`);
      for (const tool of ["ssh_execute", "ssh_sudo_execute"]) {
        const r = await call(c, tool, { session_id: connected.structured.session_id, command: "dir" });
        assert.equal(r.code, "EXEC_UNSUPPORTED", r.text);
      }
      assert.equal(win.execs.length, sent, "ssh_execute sent a command to a Windows server");
    });
  }
});
