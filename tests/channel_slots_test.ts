/**
 * Every channel slot has one owner and is given back on every path: a
 * caller that gives up in the queue, one that gives up while its channel is
 * opening, a channel the server refuses, a channel that closes, a
 * connection that is lost. Driven on the SSH layer against a real sshd,
 * where the slots can be counted.
 */

import assert from "node:assert/strict";
import type { SshConnection } from "../lib/ssh/connection.ts";
import { SshMcpError } from "../lib/errors.ts";
import { execCommand } from "../lib/ssh/exec.ts";
import { openConnection, signalAll, type Sshd, sshdAvailable, startSshd } from "./fixtures/sshd.ts";
import { waitFor } from "./fixtures/process.ts";

const skip = !sshdAvailable();
if (skip) console.warn("SKIP channel slot tests: no sshd on this machine (apt-get install openssh-server)");

function connect(sshd: Sshd, maxChannels = 10): Promise<SshConnection> {
  return openConnection(sshd, { maxChannels });
}

/** Starts a command that holds one slot until its stdin ends (`release()`); its streams are read so its close can come. */
async function hold(conn: SshConnection) {
  const held = await conn.exec("cat");
  held.channel.resume();
  held.channel.stderr.resume();
  return { ...held, release: () => held.channel.eof() };
}

async function run(conn: SshConnection, command: string): Promise<string> {
  const r = await execCommand(conn, { command, timeoutMs: 30_000, maxOutputBytes: 65536 });
  assert.equal(r.exitCode, 0, `${command}: ${r.stderr}`);
  return r.stdout;
}

Deno.test({ name: "a caller that gives up in the queue gives its place back", ignore: skip }, async () => {
  await using sshd = await startSshd();
  await using conn = await connect(sshd, 1);
  const held = await hold(conn);
  await assert.rejects(conn.exec("true", { signal: AbortSignal.timeout(200) }), (e) => e instanceof DOMException);
  assert.deepEqual(conn.channelSlots, { inUse: 1, waiting: 0 });
  held.release();
  await held.closed;
  assert.deepEqual(conn.channelSlots, { inUse: 0, waiting: 0 });
  assert.equal(await run(conn, "echo next"), "next\n");
});

Deno.test({
  name: "a channel that opens after its caller gave up is killed, closed and its slot freed",
  ignore: skip,
}, async () => {
  await using sshd = await startSshd({ maxSessions: 10 });
  await using conn = await connect(sshd, 10);
  const marker = `sleep 6${Math.floor(Math.random() * 90 + 10)}`;
  for (let i = 0; i < 10; i++) {
    // Gives up the moment the open is on the wire: the channel arrives later, with nobody waiting.
    const ac = new AbortController();
    await assert.rejects(
      conn.exec(marker, { signal: ac.signal, onSent: () => ac.abort(new Error("gave up")) }),
      /gave up/,
    );
  }
  await waitFor(() => conn.channelSlots.inUse === 0, `every slot back (now ${conn.channelSlots.inUse})`);
  // The late commands got a KILL: none of them is left running.
  await waitFor(
    async () => (await run(conn, `ps -u "$(id -u)" -o args= | grep -cx -- '${marker}' || true`)).trim() === "0",
    "the late commands to be gone",
  );
  // The same through execCommand, whose late channels are killed by process group (the wrapper's PID line).
  const wrapped = `sleep 7${Math.floor(Math.random() * 90 + 10)}`;
  for (let i = 0; i < 10; i++) {
    const r = await execCommand(conn, { command: wrapped, timeoutMs: 1e-6, maxOutputBytes: 1024 });
    assert.equal(r.timedOut, true);
  }
  await waitFor(() => conn.channelSlots.inUse === 0, `every slot back (now ${conn.channelSlots.inUse})`);
  await waitFor(
    async () => (await run(conn, `ps -u "$(id -u)" -o args= | grep -cx -- '${wrapped}' || true`)).trim() === "0",
    "the late wrapped commands to be gone",
  );
  // All ten slots work again, at once.
  const outs = await Promise.all(Array.from({ length: 10 }, (_, i) => run(conn, `echo ${i}`)));
  assert.deepEqual(outs, Array.from({ length: 10 }, (_, i) => `${i}\n`));
  assert.deepEqual(conn.channelSlots, { inUse: 0, waiting: 0 });
});

Deno.test({ name: "a channel the server refuses gives its slot back", ignore: skip }, async () => {
  // MaxSessions 0: sshd refuses every session channel (forwarding would still work).
  await using sshd = await startSshd({ maxSessions: 0 });
  await using conn = await connect(sshd, 2);
  await assert.rejects(
    conn.exec("true"),
    (e) => e instanceof SshMcpError && e.code === "CHANNEL_OPEN_FAILED",
  );
  assert.deepEqual(conn.channelSlots, { inUse: 0, waiting: 0 });
  await assert.rejects(conn.sftp(), (e) => e instanceof SshMcpError);
  assert.deepEqual(conn.channelSlots, { inUse: 0, waiting: 0 });
});

Deno.test({ name: "a closed channel gives its slot back, exec and SFTP alike", ignore: skip }, async () => {
  await using sshd = await startSshd();
  await using conn = await connect(sshd, 2);
  assert.equal(await run(conn, "echo one"), "one\n");
  assert.deepEqual(conn.channelSlots, { inUse: 0, waiting: 0 });
  const sftp = await conn.sftp();
  assert.equal(conn.channelSlots.inUse, 1);
  const closed = new Promise((r) => sftp.once("close", r));
  sftp.end();
  await closed;
  assert.deepEqual(conn.channelSlots, { inUse: 0, waiting: 0 });
});

Deno.test({
  name: "an SFTP open waits within its caller's signal, and is given up once every caller has",
  ignore: skip,
}, async () => {
  await using sshd = await startSshd();
  await using conn = await connect(sshd, 1);
  const held = await hold(conn);
  // Queued behind the one slot: each caller's own deadline ends its wait.
  await assert.rejects(conn.sftp({ signal: AbortSignal.timeout(200) }), (e) => e instanceof DOMException);
  assert.deepEqual(conn.channelSlots, { inUse: 1, waiting: 0 });
  // Two callers share one open; the first giving up does not end the second's wait.
  const impatient = new AbortController();
  const first = conn.sftp({ signal: impatient.signal });
  const second = conn.sftp({ signal: AbortSignal.timeout(30_000) });
  impatient.abort(new Error("first gave up"));
  await assert.rejects(first, /first gave up/);
  assert.equal(conn.channelSlots.waiting, 1);
  held.release();
  const sftp = await second;
  assert.equal(sftp, await conn.sftp());
  assert.equal(conn.channelSlots.inUse, 1);
});

Deno.test({ name: "a lost connection fails the queue and every later open at once", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const before = await sshd.childPids();
  await using conn = await connect(sshd, 1);
  const held = await hold(conn);
  const pids = await sshd.sessionPids(before);
  const queued = conn.exec("true");
  const sftpQueued = conn.sftp();
  await waitFor(() => conn.channelSlots.waiting === 2, "two callers queued");
  signalAll(pids, "SIGKILL");
  for (const p of [queued, sftpQueued]) {
    await assert.rejects(p, (e) => e instanceof SshMcpError && e.code === "CONNECTION_LOST");
  }
  await held.closed;
  await assert.rejects(conn.exec("true"), (e) => e instanceof SshMcpError && e.code === "CONNECTION_LOST");
});
