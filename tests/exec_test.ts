/**
 * End to end: ssh_execute and ssh_sudo_execute through the MCP client,
 * against a real sshd.
 */

import assert from "node:assert/strict";
import { call, callOk, connectWithKey, SSH2_REPAIRS_FORCED_OFF, startServer, type TestServer } from "./fixtures/mcp.ts";
import { startInProcessServer } from "./fixtures/in_process.ts";
import { rekeyUnderLoad } from "./fixtures/rekey.ts";
import { type Sshd, sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable();
if (skip) console.warn("SKIP exec tests: no sshd on this machine (apt-get install openssh-server)");

function connect(server: TestServer, sshd: Sshd): Promise<string> {
  return connectWithKey(server.client, sshd);
}

async function rssKiB(pid: number): Promise<{ rss: number; hwm: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const field = (name: string) => Number(status.match(new RegExp(`^${name}:\\s+(\\d+) kB`, "m"))![1]);
  return { rss: field("VmRSS"), hwm: field("VmHWM") };
}

async function remoteProcessCount(server: TestServer, id: string, args: string, allUsers = false): Promise<number> {
  // `ps -o args=` prints each command line; grep -cx matches whole lines only, so the grep itself never counts.
  const r = await callOk(server.client, "ssh_execute", {
    session_id: id,
    command: `ps ${allUsers ? "-e" : `-u "$(id -u)"`} -o args= | grep -cx -- '${args}' || true`,
  });
  return Number(r.structured.stdout.trim());
}

async function waitGone(server: TestServer, id: string, args: string, allUsers = false): Promise<number> {
  let left = -1;
  for (let i = 0; i < 50 && left !== 0; i++) {
    left = await remoteProcessCount(server, id, args, allUsers);
    if (left !== 0) await new Promise((res) => setTimeout(res, 100));
  }
  return left;
}

Deno.test({ name: "ssh_execute runs commands with real results", ignore: skip }, async (t) => {
  await using sshd = await startSshd({ maxSessions: 10 });
  const kh = await sshd.writeKnownHosts();
  await using server = await startServer({ args: ["--known-hosts", kh] });
  const c = server.client;
  const id = await connect(server, sshd);
  const run = (command: string, extra: Record<string, unknown> = {}) =>
    callOk(c, "ssh_execute", { session_id: id, command, ...extra });

  await t.step("exit codes 0, 3, 127 and 255 are results, not errors", async () => {
    for (const [command, code] of [["true", 0], ["exit 3", 3], ["no-such-command-xyz", 127], ["exit 255", 255]]) {
      const r = await run(command as string);
      assert.equal(r.structured.exit_code, code, command as string);
      assert.equal(r.structured.signal, null);
      assert.equal(r.structured.timed_out, false);
    }
    const missing = await run("no-such-command-xyz");
    assert.match(missing.structured.stderr, /not found/);
  });

  await t.step("the exit status of a command that ends at once is never lost", async () => {
    // Its status can arrive in the same packet as the channel confirmation.
    for (let batch = 0; batch < 10; batch++) {
      const results = await Promise.all(Array.from({ length: 10 }, () => run("true")));
      for (const r of results) assert.equal(r.structured.exit_code, 0);
    }
  });

  await t.step("a process killed by a signal is reported as that signal, not exit 0", async () => {
    const r = await run("echo before; kill -KILL $$");
    assert.equal(r.structured.signal, "SIGKILL");
    assert.equal(r.structured.exit_code, null);
    assert.equal(r.structured.stdout, "before\n");
    assert.match(r.text, /killed by signal SIGKILL/);
  });

  await t.step("stdout and stderr stay separate and byte-exact", async () => {
    const r = await run(
      `printf 'out1\\n'; printf 'err1\\n' >&2; printf 'out2 \\342\\202\\254 \\360\\237\\230\\200'; printf 'err2' >&2`,
    );
    assert.equal(r.structured.stdout, "out1\nout2 € 😀");
    assert.equal(r.structured.stderr, "err1\nerr2");
    assert.equal(r.structured.stdout_bytes, new TextEncoder().encode("out1\nout2 € 😀").length);
    assert.equal(r.structured.stderr_bytes, 9);
    assert.equal(r.structured.truncated, false);
  });

  await t.step("a UTF-8 character split across packets is decoded whole", async () => {
    // 32 KiB of 'a' then a 4-byte character lands across SSH channel data packets.
    const r = await run(`head -c 32767 /dev/zero | tr '\\0' a; printf '\\360\\237\\230\\200'; echo`);
    assert.equal(r.structured.stdout, "a".repeat(32767) + "😀\n");
  });

  await t.step("stdin is closed when not given, so cat and read return at once", async () => {
    const r = await run("cat; read x; echo done $?");
    assert.equal(r.structured.stdout, "done 1\n");
    assert.equal(r.structured.timed_out, false);
  });

  await t.step("stdin, cwd and env are passed literally", async () => {
    const r = await run(`cat; pwd; printf '%s\\n' "$FOO" "$BAR"`, {
      stdin: "line1\nline2\n",
      cwd: "/tmp",
      env: { FOO: "a b $(touch /tmp/pwned-env) `id`", BAR: "it's" },
    });
    assert.equal(r.structured.stdout, "line1\nline2\n/tmp\na b $(touch /tmp/pwned-env) `id`\nit's\n");
    const bad = await call(c, "ssh_execute", { session_id: id, command: "pwd", cwd: "/no/such/dir" });
    assert.equal(bad.code, "CWD_FAILED", bad.text);
    assert.match(bad.text, /no\/such\/dir/);
    assert.match(bad.text, /did not run/);
  });

  await t.step(
    "sleep 600 with a 2 s timeout returns timed_out with partial output and leaves nothing running",
    async () => {
      const r = await run("echo started; echo err >&2; sleep 617; echo never", { timeout: 2 });
      assert.equal(r.structured.timed_out, true);
      assert.equal(r.structured.exit_code, null);
      assert.equal(r.structured.stdout, "started\n");
      assert.equal(r.structured.stderr, "err\n");
      let left = -1;
      for (let i = 0; i < 50 && left !== 0; i++) {
        left = await remoteProcessCount(server, id, "sleep 617");
        if (left !== 0) await new Promise((res) => setTimeout(res, 100));
      }
      assert.equal(left, 0, "the remote sleep survived the timeout");
      const after = await run("echo still usable");
      assert.equal(after.structured.stdout, "still usable\n");
    },
  );

  await t.step(
    "a background child holding stdout: the call returns with the exit status, the child lives on as a job",
    async () => {
      const started = performance.now();
      const r = await run("sleep 624 & echo started", { timeout: 30 });
      assert.ok(performance.now() - started < 10_000, "it waited for the child");
      assert.equal(r.structured.timed_out, false);
      assert.equal(r.structured.exit_code, 0, "the shell itself exited 0");
      assert.equal(r.structured.stdout, "started\n");
      assert.equal(r.structured.background_output, true);
      assert.match(r.text, /background child still holds its output/);
      assert.equal(await remoteProcessCount(server, id, "sleep 624"), 1, "the child was killed");
      // Cancelling the job ends the child.
      const job = r.structured.job_id;
      const cancel = await callOk(c, "ssh_job", { session_id: id, action: "cancel", job_id: job });
      assert.equal(cancel.structured.confirmed, true, cancel.text);
      assert.equal(await waitGone(server, id, "sleep 624"), 0, "the background sleep survived");
    },
  );

  await t.step("MCP cancellation of a running command kills it on the remote side", async () => {
    const ac = new AbortController();
    const pending = c.callTool(
      { name: "ssh_execute", arguments: { session_id: id, command: "sleep 618" } },
      undefined,
      {
        signal: ac.signal,
      },
    );
    let running = 0;
    for (let i = 0; i < 50 && running === 0; i++) {
      running = await remoteProcessCount(server, id, "sleep 618");
      if (running === 0) await new Promise((res) => setTimeout(res, 50));
    }
    assert.equal(running, 1, "the command never started");
    ac.abort("test cancels");
    await assert.rejects(pending);
    let left = -1;
    for (let i = 0; i < 50 && left !== 0; i++) {
      left = await remoteProcessCount(server, id, "sleep 618");
      if (left !== 0) await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(left, 0, "the cancelled command is still running");
    assert.equal((await run("echo usable")).structured.stdout, "usable\n");
  });

  await t.step("25 parallel commands on one session all succeed under MaxSessions 10", async () => {
    const results = await Promise.all(
      Array.from({ length: 25 }, (_, i) => run(`sleep 0.2; echo job-${i}`)),
    );
    results.forEach((r, i) => {
      assert.equal(r.structured.exit_code, 0);
      assert.equal(r.structured.stdout, `job-${i}\n`);
    });
  });

  await t.step("8 MiB on stderr then echo ok completes without a flow-control deadlock", async () => {
    const r = await run("head -c 8388608 /dev/zero | tr '\\0' e >&2; echo ok", { timeout: 120 });
    assert.equal(r.structured.exit_code, 0);
    assert.equal(r.structured.stdout, "ok\n");
    assert.equal(r.structured.stderr_bytes, 8388608);
    assert.equal(r.structured.truncated, true);
    assert.match(r.structured.stderr, /bytes omitted of 8388608 total/);
  });

  await t.step("2 GB of output is capped with head and tail kept and memory flat", async () => {
    // Memory is flat when it does not scale with output: after a 256 MB warm-up
    // (heap and buffer pools reach their working size), 2 GB must not raise the peak.
    async function peakDuring(command: string) {
      let peak = (await rssKiB(server.pid!)).rss;
      const sampler = setInterval(async () => {
        try {
          peak = Math.max(peak, (await rssKiB(server.pid!)).rss);
        } catch { /* process gone: the call itself will fail loudly */ }
      }, 50);
      try {
        const r = await run(command, { timeout: 600 });
        return { r, peakMiB: peak / 1024 };
      } finally {
        clearInterval(sampler);
      }
    }
    // `yes y`, not `yes`: the count below must not see another test file's `yes` (tests run in parallel).
    const warm = await peakDuring("yes y | head -c 256M");
    assert.equal(warm.r.structured.stdout_bytes, 256 * 1024 ** 2);
    const { r, peakMiB } = await peakDuring("yes y | head -c 2G; echo tail-marker");
    assert.equal(r.structured.exit_code, 0);
    assert.equal(r.structured.stdout_bytes, 2 * 1024 ** 3 + "tail-marker\n".length);
    assert.equal(r.structured.truncated, true);
    assert.ok(r.structured.stdout.startsWith("y\ny\n"));
    assert.ok(r.structured.stdout.endsWith("y\ntail-marker\n"));
    assert.match(r.structured.stdout, /bytes omitted of 2147483660 total/);
    assert.ok(r.structured.stdout.length < 200_000, `kept ${r.structured.stdout.length} chars`);
    console.log(`server peak RSS: ${warm.peakMiB.toFixed(0)} MiB during 256 MB, ${peakMiB.toFixed(0)} MiB during 2 GB`);
    // What keeps this flat is ssh2's cipher leak fix; with the repairs forced off, ssh2's own leak shows.
    if (SSH2_REPAIRS_FORCED_OFF) console.log("not asserted: the ssh2 repairs are forced off (MCP_TEST_SSH2_VERSION)");
    else {assert.ok(
        peakMiB - warm.peakMiB < 32,
        `peak RSS rose from ${warm.peakMiB} to ${peakMiB} MiB with 8x the output`,
      );}
    assert.equal(await remoteProcessCount(server, id, "yes y"), 0);
  });
});

Deno.test({ name: "ssh_sudo_execute keeps the password off every command line", ignore: skip }, async (t) => {
  await using sshd = await startSshd();
  if (sshd.passwordUser === null) {
    console.warn("SKIP sudo tests: not root, no password user with sudo");
    return;
  }
  const password = sshd.passwordUser.password;
  const kh = await sshd.writeKnownHosts();
  await using server = await startServer({ args: ["--known-hosts", kh] });
  const c = server.client;
  const id = await connect(server, sshd);

  await t.step("with the password, the command runs as root", async () => {
    const r = await callOk(c, "ssh_sudo_execute", { session_id: id, command: "id -u; cat; echo end", password });
    assert.equal(r.structured.exit_code, 0, r.text);
    // The command's stdin is /dev/null: it cannot read the password even by trying.
    assert.equal(r.structured.stdout, "0\nend\n");
    assert.ok(!r.text.includes(password));
  });

  await t.step("the password never appears in any /proc/*/cmdline while sudo runs", async () => {
    const needle = new TextEncoder().encode(password);
    let scans = 0;
    let seen: string | null = null;
    const pending = callOk(c, "ssh_sudo_execute", { session_id: id, command: "sleep 2; id -u", password });
    let finished = false;
    pending.finally(() => (finished = true));
    while (!finished) {
      for await (const entry of Deno.readDir("/proc")) {
        if (!/^\d+$/.test(entry.name)) continue;
        let cmdline: Uint8Array;
        try {
          cmdline = await Deno.readFile(`/proc/${entry.name}/cmdline`);
        } catch {
          continue; // exited meanwhile
        }
        if (indexOf(cmdline, needle) >= 0) seen = new TextDecoder().decode(cmdline).replaceAll("\0", " ");
      }
      scans++;
    }
    const r = await pending;
    assert.equal(r.structured.stdout, "0\n");
    assert.equal(seen, null, `password found in a command line: ${seen}`);
    assert.ok(scans >= 5, `only ${scans} scans of /proc ran`);
    // Control: the scan does find a process whose command line holds a known marker.
    const marker = `marker-${crypto.randomUUID()}`;
    // On a command line of its own: a command run in a shell started ahead reaches it on stdin.
    const p = callOk(c, "ssh_execute", { session_id: id, command: `sh -c 'sleep 1; true' ${marker}` });
    let ended = false;
    p.finally(() => (ended = true));
    let found = false;
    // Scans until the command shows up (or ends unseen), however slow it is to start.
    while (!found && !ended) {
      for await (const entry of Deno.readDir("/proc")) {
        if (!/^\d+$/.test(entry.name)) continue;
        const text = await Deno.readTextFile(`/proc/${entry.name}/cmdline`).catch(() => "");
        if (text.includes(marker)) found = true;
      }
    }
    await p;
    assert.ok(found, "the /proc scan cannot see remote command lines; the check above proves nothing");
  });

  await t.step("a wrong password fails with SUDO_PASSWORD_WRONG and sudo's own message", async () => {
    const r = await call(c, "ssh_sudo_execute", { session_id: id, command: "id -u", password: "wrong", timeout: 30 });
    assert.equal(r.code, "SUDO_PASSWORD_WRONG", r.text);
    assert.match(r.text, /incorrect password/);
  });

  await t.step("a sudo command that times out is killed on the root side too", async () => {
    const r = await callOk(c, "ssh_sudo_execute", { session_id: id, command: "sleep 623", password, timeout: 2 });
    assert.equal(r.structured.timed_out, true);
    let left = -1;
    for (let i = 0; i < 50 && left !== 0; i++) {
      const ps = await callOk(c, "ssh_execute", {
        session_id: id,
        command: "ps -e -o args= | grep -cx 'sleep 623' || true",
      });
      left = Number(ps.structured.stdout.trim());
      if (left !== 0) await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(left, 0, "root's sleep outlived the timeout");
  });

  await t.step("without a password sudo -n fails at once instead of hanging", async () => {
    const r = await call(c, "ssh_sudo_execute", { session_id: id, command: "id -u", timeout: 30 });
    assert.equal(r.code, "SUDO_PASSWORD_REQUIRED", r.text);
    assert.match(r.text, /password is required/);
  });

  await t.step("no password in the server's logs", () => {
    assert.ok(!server.stderr().includes(password));
  });
});

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

Deno.test({ name: "rekeying under load keeps output and exit codes intact", ignore: skip }, async () => {
  // 16 key exchanges with data in flight on six channels, over 512 MiB; `deno task soak` crosses as
  // many over 4 GiB with sshd's default-sized RekeyLimit (tests/soak/rekey_soak.ts).
  await rekeyUnderLoad({ rekeyLimit: "32M", bytes: "256M", byteCount: 256 * 1024 ** 2, minRekeys: 16 });
});

Deno.test({ name: "the timeout is wall clock: time queued for a channel counts", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const dir = await Deno.makeTempDir({ prefix: "mcp-queue-" });
  try {
    const kh = await sshd.writeKnownHosts(`${dir}/kh`);
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ max_channels_per_session: 1 }));
    await using server = await startInProcessServer({ args: ["--known-hosts", kh, "--config", `${dir}/config.json`] });
    const id = await connect(server, sshd);
    // The long command must hold the only channel before the next call queues behind it.
    const started = `/tmp/mcp-queue-${crypto.randomUUID()}`;
    const long = callOk(server.client, "ssh_execute", {
      session_id: id,
      command: `touch ${started}; sleep 3; echo long`,
    });
    let longEnded = false;
    long.finally(() => (longEnded = true)).catch(() => {});
    while (!(await Deno.lstat(started).then(() => true, () => false))) {
      assert.ok(!longEnded, "the long command ended before it started");
      await new Promise((r) => setTimeout(r, 20));
    }
    await Deno.remove(started);
    const queued = await callOk(server.client, "ssh_execute", { session_id: id, command: "echo never", timeout: 1 });
    assert.equal(queued.structured.timed_out, true);
    assert.equal(queued.structured.stdout, "");
    assert.equal((await long).structured.stdout, "long\n");
    // The budget is whole again afterwards.
    const after = await callOk(server.client, "ssh_execute", { session_id: id, command: "echo after" });
    assert.equal(after.structured.stdout, "after\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
