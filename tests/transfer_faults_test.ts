/**
 * End to end: transfers under faults. A cancelled transfer really stops and
 * cleans up; a frozen peer ends it with the bytes done; a full disk on
 * either side is a coded error with nothing left behind.
 */

import assert from "node:assert/strict";
import { call, callOk, connectWithKey, startServer } from "./fixtures/mcp.ts";
import { signalAll, type Sshd, sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable();

/** Bytes written (any write syscall) by the given processes so far. */
async function written(pids: number[]): Promise<number> {
  let sum = 0;
  for (const pid of pids) {
    const io = await Deno.readTextFile(`/proc/${pid}/io`).catch(() => "");
    sum += Number(io.match(/^wchar: (\d+)/m)?.[1] ?? 0);
  }
  return sum;
}

/** Connects a fresh session and returns it with the sshd processes serving it. */
async function sessionWithPids(c: Parameters<typeof connectWithKey>[0], sshd: Sshd) {
  const before = await sshd.childPids();
  const sid = await connectWithKey(c, sshd);
  await callOk(c, "ssh_execute", { session_id: sid, command: "true" });
  return { sid, pids: await sshd.sessionPids(before) };
}

async function tempsIn(c: Parameters<typeof connectWithKey>[0], sid: string, dir: string): Promise<string> {
  const r = await callOk(c, "ssh_execute", { session_id: sid, command: `ls -A ${dir}` });
  return r.structured.stdout;
}

Deno.test({ name: "a cancelled upload stops sending and leaves no file behind", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const root = await Deno.makeTempDir({ prefix: "mcp-cancel-" });
  const remote = `/tmp/mcp-cancel-${crypto.randomUUID()}`;
  try {
    const kh = await sshd.writeKnownHosts(`${root}/kh`);
    await using server = await startServer({ args: ["--known-hosts", kh, "--allow-local-dir", root] });
    const c = server.client;
    const { sid, pids } = await sessionWithPids(c, sshd);
    await callOk(c, "ssh_manage_remote", { action: "mkdir", session_id: sid, remote_path: remote });
    // 8 GiB of zeros, sparse here: far longer to send than this test runs.
    const big = await Deno.open(`${root}/big`, { create: true, write: true });
    await big.truncate(8 * 1024 ** 3);
    big.close();

    const ac = new AbortController();
    let progressed = 0;
    const pending = c.callTool(
      {
        name: "ssh_upload_file",
        arguments: { session_id: sid, local_path: `${root}/big`, remote_path: `${remote}/big` },
      },
      undefined,
      {
        signal: ac.signal,
        onprogress: (p) => {
          progressed = p.progress;
          if (p.progress >= 64 * 1024 * 1024) ac.abort();
        },
      },
    );
    await assert.rejects(pending);
    assert.ok(progressed >= 64 * 1024 * 1024, "the upload never got going");

    // The temporary file goes away, and the session's sshd stops writing:
    // a transfer left running would still be pushing ~100s of MB/s.
    let left = "";
    for (let i = 0; i < 50; i++) {
      left = await tempsIn(c, sid, remote);
      if (left === "") break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(left, "", "the temporary file was left behind");
    const w0 = await written(pids);
    await new Promise((r) => setTimeout(r, 1000));
    const w1 = await written(pids);
    assert.ok(w1 - w0 < 4 * 1024 * 1024, `sshd wrote ${w1 - w0} bytes in the second after the cancel`);

    // The session is still good for the next transfer.
    await Deno.writeTextFile(`${root}/small`, "small\n");
    await callOk(c, "ssh_upload_file", {
      session_id: sid,
      local_path: `${root}/small`,
      remote_path: `${remote}/small`,
      verify: true,
    });
    await callOk(c, "ssh_manage_remote", { action: "remove", session_id: sid, remote_path: remote, recursive: true });
  } finally {
    // The "remote" side is this machine: a failed run must not leave its big file behind.
    await Deno.remove(remote, { recursive: true }).catch(() => {});
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test({ name: "a frozen peer ends a download with the bytes done", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const root = await Deno.makeTempDir({ prefix: "mcp-frozen-" });
  let frozen: number[] = [];
  const remote = `/tmp/mcp-frozen-${crypto.randomUUID()}`;
  try {
    const kh = await sshd.writeKnownHosts(`${root}/kh`);
    const config = `${root}/config.json`;
    await Deno.writeTextFile(config, JSON.stringify({ keepalive_interval: 1, keepalive_count_max: 2 }));
    await Deno.mkdir(`${root}/in`);
    await using server = await startServer({
      args: ["--known-hosts", kh, "--config", config, "--allow-local-dir", `${root}/in`],
    });
    const c = server.client;
    const { sid, pids } = await sessionWithPids(c, sshd);
    await callOk(c, "ssh_execute", { session_id: sid, command: `head -c 1G /dev/zero > ${remote}` });
    let stopped = false;
    const result = await c.callTool(
      {
        name: "ssh_download_file",
        arguments: { session_id: sid, remote_path: remote, local_path: `${root}/in/got` },
      },
      undefined,
      {
        timeout: 60_000,
        onprogress: (p) => {
          if (!stopped && p.progress >= 32 * 1024 * 1024) {
            stopped = true;
            frozen = pids;
            signalAll(pids, "SIGSTOP"); // TCP stays up, the peer says nothing
          }
        },
      },
    );
    assert.ok(stopped, "the download never got going");
    assert.equal(result.isError, true);
    const text = (result.content as { text: string }[])[0].text;
    assert.match(text, /CONNECTION_LOST/);
    assert.match(text, /after \d+ of 1073741824 bytes/);
    assert.equal((result._meta as { retryable?: boolean }).retryable, false, "a cut transfer was called retryable");
    const left: string[] = [];
    for await (const e of Deno.readDir(`${root}/in`)) left.push(e.name);
    assert.deepEqual(left, [], "a partial download was left behind");
    signalAll(frozen, "SIGCONT");
    frozen = [];
    const check = await connectWithKey(c, sshd);
    await callOk(c, "ssh_execute", { session_id: check, command: `rm -f ${remote}` });
  } finally {
    // The "remote" side is this machine: a failed run must not leave its big file behind.
    await Deno.remove(remote, { recursive: true }).catch(() => {});
    signalAll(frozen, "SIGCONT");
    await Deno.remove(root, { recursive: true });
  }
});

/** A 4 MiB tmpfs at a new directory, or null when this machine cannot mount (not root). */
async function smallDisk(): Promise<{ path: string; [Symbol.asyncDispose](): Promise<void> } | null> {
  const path = await Deno.makeTempDir({ prefix: "mcp-full-" });
  const mounted = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", "size=4m,mode=0777", "tmpfs", path],
    stdout: "null",
    stderr: "null",
  }).output().catch(() => null);
  if (mounted?.code !== 0) {
    await Deno.remove(path);
    return null;
  }
  return {
    path,
    async [Symbol.asyncDispose]() {
      await new Deno.Command("umount", { args: [path] }).output();
      await Deno.remove(path, { recursive: true });
    },
  };
}

const canMount = !skip && Deno.uid() === 0;

Deno.test({ name: "a full disk on either side is a coded error with nothing left", ignore: !canMount }, async () => {
  await using sshd = await startSshd();
  await using disk = await smallDisk();
  assert.ok(disk !== null, "mount failed although running as root");
  const root = await Deno.makeTempDir({ prefix: "mcp-full-root-" });
  try {
    const kh = await sshd.writeKnownHosts(`${root}/kh`);
    await using server = await startServer({
      args: ["--known-hosts", kh, "--allow-local-dir", root, "--allow-local-dir", disk.path],
    });
    const c = server.client;
    const sid = await connectWithKey(c, sshd);
    const data = new Uint8Array(8 * 1024 * 1024);
    for (let i = 0; i < data.length; i += 65536) crypto.getRandomValues(data.subarray(i, i + 65536));
    await Deno.writeFile(`${root}/big`, data);

    // The sshd user writes into the mount, the remote side of this test.
    const up = await call(c, "ssh_upload_file", {
      session_id: sid,
      local_path: `${root}/big`,
      remote_path: `${disk.path}/big`,
    });
    assert.equal(up.code, "REMOTE_DISK_FULL", up.text);
    assert.match(up.text, /after \d+ of 8388608 bytes/);
    assert.equal(await tempsIn(c, sid, disk.path), "", "something was left on the full remote disk");

    const remote = `/tmp/mcp-full-${crypto.randomUUID()}`;
    await callOk(c, "ssh_upload_file", { session_id: sid, local_path: `${root}/big`, remote_path: remote });
    const down = await call(c, "ssh_download_file", {
      session_id: sid,
      remote_path: remote,
      local_path: `${disk.path}/got`,
    });
    assert.equal(down.code, "LOCAL_DISK_FULL", down.text);
    const left: string[] = [];
    for await (const e of Deno.readDir(disk.path)) left.push(e.name);
    assert.deepEqual(left, [], "something was left on the full local disk");
    await callOk(c, "ssh_execute", { session_id: sid, command: `rm -f ${remote}` });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test(
  { name: "transfers stay byte-exact while keys are renewed every 1 MiB; a denied path is coded", ignore: skip },
  async () => {
    await using sshd = await startSshd({ extraConfig: "LogLevel DEBUG1\nRekeyLimit 1M" });
    const root = await Deno.makeTempDir({ prefix: "mcp-rekey-" });
    const remote = `/tmp/mcp-rekey-${crypto.randomUUID()}`;
    try {
      const kh = await sshd.writeKnownHosts(`${root}/kh`);
      await using server = await startServer({ args: ["--known-hosts", kh, "--allow-local-dir", root] });
      const c = server.client;
      const sid = await connectWithKey(c, sshd);
      const data = new Uint8Array(24 * 1024 * 1024);
      for (let i = 0; i < data.length; i += 65536) crypto.getRandomValues(data.subarray(i, i + 65536));
      await Deno.writeFile(`${root}/data`, data);
      // Commands run alongside, so rekeying meets channel traffic of both kinds.
      const alongside = Array.from(
        { length: 8 },
        (_, i) =>
          callOk(c, "ssh_execute", { session_id: sid, command: `head -c 1M /dev/urandom | sha256sum; echo ${i}` }),
      );
      const up = await callOk(c, "ssh_upload_file", {
        session_id: sid,
        local_path: `${root}/data`,
        remote_path: remote,
        verify: true,
      });
      const down = await callOk(c, "ssh_download_file", {
        session_id: sid,
        remote_path: remote,
        local_path: `${root}/back`,
        verify: true,
      });
      assert.equal(up.structured.sha256, down.structured.sha256);
      assert.deepEqual(await Deno.readFile(`${root}/back`), data);
      const rekeys = sshd.logs().match(/SSH2_MSG_KEXINIT sent/g)?.length ?? 0;
      assert.ok(rekeys >= 20, `only ${rekeys} key exchanges:\n${sshd.logs().slice(-3000)}`);
      for (const [i, r] of (await Promise.all(alongside)).entries()) {
        assert.match(r.structured.stdout, new RegExp(`\n${i}\n$`));
      }

      const denied = await call(c, "ssh_upload_file", {
        session_id: sid,
        local_path: `${root}/data`,
        remote_path: "/root/mcp-denied",
      });
      assert.equal(denied.code, "SFTP_PERMISSION_DENIED", denied.text);
      const deniedDown = await call(c, "ssh_download_file", {
        session_id: sid,
        remote_path: "/root/.bashrc",
        local_path: `${root}/stolen`,
      });
      assert.ok(["SFTP_PERMISSION_DENIED", "SFTP_NO_SUCH_FILE"].includes(deniedDown.code!), deniedDown.text);
      await assert.rejects(Deno.stat(`${root}/stolen`));
      await callOk(c, "ssh_execute", { session_id: sid, command: `rm -f ${remote}` });
    } finally {
      // The "remote" side is this machine: a failed run must not leave its big file behind.
      await Deno.remove(remote, { recursive: true }).catch(() => {});
      await Deno.remove(root, { recursive: true });
    }
  },
);
