/**
 * The SSH layer on its own against a real sshd: behaviour that the MCP
 * tools rely on but cannot show directly.
 */

import assert from "node:assert/strict";
import { signalChannel, SshConnection } from "../lib/ssh/connection.ts";
import { silentLogger } from "../lib/log.ts";
import { sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable();

Deno.test({ name: "signalChannel() reaches the remote process after stdin EOF was sent", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const kh = await sshd.writeKnownHosts();
  await using conn = await SshConnection.open({
    host: sshd.host,
    port: sshd.port,
    username: sshd.user,
    privateKeyPath: sshd.keys.ed25519.path,
    knownHosts: { files: [kh], writeFile: kh, policy: "strict" },
    logger: silentLogger,
  });
  // `exec` replaces the shell, so the signal lands on sleep itself.
  const { channel, status, closed } = await conn.exec("exec sleep 625");
  channel.resume();
  channel.stderr.resume();
  channel.eof(); // stdin closed first, as every command does
  await new Promise((r) => setTimeout(r, 200));
  signalChannel(channel, "KILL");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    closed.then(() => "closed"),
    new Promise((r) => (timer = setTimeout(() => r("still running"), 10_000))),
  ]);
  clearTimeout(timer);
  if (outcome !== "closed") channel.close();
  assert.equal(outcome, "closed");
  assert.equal(status.signal, "SIGKILL");
});
