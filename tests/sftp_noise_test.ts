/**
 * End to end: login files that print in non-interactive shells (issue 14).
 * OpenSSH starts an external sftp-server through the account's login shell
 * (`$SHELL -c /usr/lib/openssh/sftp-server`), and bash started by sshd reads
 * ~/.bashrc, so an unguarded `echo` there arrives before the SFTP protocol
 * and corrupts it. OpenSSH's own sftp fails too ("Received message too long
 * 1919251316"); what matters is that the error says why, not "no SFTP
 * subsystem", and that the connection stays usable for commands.
 */

import assert from "node:assert/strict";
import { call, callOk, startServer } from "./fixtures/mcp.ts";
import { sshdAvailable, startSshd } from "./fixtures/sshd.ts";
import { joinTestAccount } from "./fixtures/account.ts";
import { isFile } from "./fixtures/process.ts";

const SFTP_SERVER = "/usr/lib/openssh/sftp-server";
const root = Deno.uid() === 0;
const skip = !sshdAvailable() || !root || !isFile(SFTP_SERVER);

Deno.test({
  name: "login output before SFTP gives SFTP_LOGIN_OUTPUT with the text and a hint, and exec still works",
  ignore: skip,
}, async () => {
  await using sshd = await startSshd({ sftp: false, extraConfig: `Subsystem sftp ${SFTP_SERVER}` });
  const noisy = await joinTestAccount({ name: "mcp-rssh-noisy", shell: "/bin/bash" });
  try {
    const bashrc = `${noisy.home}/.bashrc`;
    await Deno.writeTextFile(bashrc, 'echo "welcome to the box"\n');
    await Deno.chown(bashrc, noisy.uid, noisy.gid);
    const kh = await sshd.writeKnownHosts();
    await using server = await startServer({ args: ["--known-hosts", kh] });
    const c = server.client;
    const connect = async (username: string) =>
      (await callOk(c, "ssh_connect", {
        host: sshd.host,
        port: sshd.port,
        username,
        private_key_path: sshd.keys.ed25519.path,
      })).structured.session_id as string;

    const sid = await connect(noisy.name);
    const listed = await call(c, "ssh_list_remote_dir", { session_id: sid, remote_path: "/tmp" });
    assert.equal(listed.code, "SFTP_LOGIN_OUTPUT", listed.text);
    assert.match(listed.text, /welc/, "the text recovered from the bogus packet length");
    assert.match(listed.text, /mcp-rssh-noisy/);
    assert.match(listed.text, /non-interactive shells/);
    assert.match(listed.text, /\[ -t 1 \]/);

    // The connection survives: commands run (after the same greeting), and a second file call says the same.
    const ran = await callOk(c, "ssh_execute", { session_id: sid, command: "echo ok" });
    assert.match(ran.structured.stdout, /ok\n$/, ran.text);
    const again = await call(c, "ssh_read_remote_file", { session_id: sid, remote_path: "/etc/hostname" });
    assert.equal(again.code, "SFTP_LOGIN_OUTPUT", again.text);
    await callOk(c, "ssh_execute", { session_id: sid, command: "true" });

    // Control: the same server serves SFTP to an account whose login files print nothing.
    const quiet = await connect(sshd.user);
    const ok = await callOk(c, "ssh_list_remote_dir", { session_id: quiet, remote_path: "/tmp" });
    assert.ok(Array.isArray(ok.structured.entries), ok.text);
  } finally {
    noisy.leave();
  }
});
