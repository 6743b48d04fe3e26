/**
 * End to end (issue 16), on the shipped permission set against a real sshd:
 * the background-child trap through ssh_execute, connection-bound jobs
 * (`detached_jobs: false`, the fallback of servers without a POSIX shell)
 * with the output budget, and a detached job's 1 GB of output read by range
 * while the server's memory stays flat.
 */

import assert from "node:assert/strict";
import { call, callOk, connectWithKey, startServer, type TestServer } from "./fixtures/mcp.ts";
import { startInProcessServer } from "./fixtures/in_process.ts";
import { sshdAvailable, startSshd } from "./fixtures/sshd.ts";
import { fakeWindows, notRecognized } from "./fixtures/fake_windows.ts";

const skip = !sshdAvailable();

// Processes of the login user whose command line is exactly `args`.
async function count(server: TestServer, sid: string, args: string): Promise<number> {
  const r = await callOk(server.client, "ssh_execute", {
    session_id: sid,
    command: `ps -u "$(id -u)" -o args= | grep -cx -- '${args}' || true`,
  });
  return Number(r.structured.stdout.trim());
}

async function gone(server: TestServer, sid: string, args: string): Promise<boolean> {
  for (let i = 0; i < 60; i++) {
    if (await count(server, sid, args) === 0) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

// Waits on a job until it ends (waits of 5 s), returning the last wait.
async function waitEnd(server: TestServer, sid: string, job: string) {
  for (let i = 0; i < 40; i++) {
    const w = await callOk(server.client, "ssh_job", { session_id: sid, action: "wait", job_id: job, timeout: 5 });
    if (w.structured.state !== "running") return w;
  }
  throw new Error(`job ${job} did not end`);
}

// The whole of one stream of a job, read by range.
async function readAll(server: TestServer, sid: string, job: string, stream = "stdout"): Promise<string> {
  let offset = 0;
  let text = "";
  for (;;) {
    const page = await callOk(server.client, "ssh_output_read", {
      session_id: sid,
      output_id: job,
      stream,
      offset,
      max_bytes: 1_048_576,
    });
    text += page.structured.data;
    offset = page.structured.next_offset;
    if (page.structured.complete) return text;
  }
}

Deno.test(
  { name: "a background child keeps ssh_execute's output open: it returns, the child lives", ignore: skip },
  async (t) => {
    await using sshd = await startSshd();
    const kh = await sshd.writeKnownHosts();
    await using server = await startInProcessServer({ args: ["--known-hosts", kh] });
    const c = server.client;
    const sid = await connectWithKey(c, sshd);
    const cases = [
      ["nohup sleep 3031 &", "sleep 3031"],
      ["(sleep 3032 &)", "sleep 3032"],
      ["python3 -m http.server 0 --bind 127.0.0.33 &", "python3 -m http.server 0 --bind 127.0.0.33"],
    ];
    try {
      for (const [command, process] of cases) {
        await t.step(command, async () => {
          const started = performance.now();
          const r = await callOk(c, "ssh_execute", { session_id: sid, command, timeout: 60 });
          const took = performance.now() - started;
          assert.ok(took < 10_000, `returned after ${Math.round(took)} ms`);
          assert.equal(r.structured.exit_code, 0);
          assert.equal(r.structured.timed_out, false);
          assert.equal(r.structured.background_output, true, r.text);
          assert.match(r.structured.job_id, /^j-[0-9a-f]{12}$/);
          assert.equal(await count(server, sid, process), 1, "the background process was killed");
          // It is a job: listed, and cancelling it ends the process.
          const list = await callOk(c, "ssh_job", { session_id: sid, action: "list" });
          const row = list.structured.jobs.find((j: { job_id: string }) => j.job_id === r.structured.job_id);
          assert.equal(row.state, "running");
          assert.equal(row.detached, false);
          const cancel = await callOk(c, "ssh_job", { session_id: sid, action: "cancel", job_id: r.structured.job_id });
          assert.equal(cancel.structured.confirmed, true, cancel.text);
          assert.ok(await gone(server, sid, process), `${process} survived the cancel`);
        });
      }
      await t.step("what the child prints after the call is the job's output", async () => {
        const r = await callOk(c, "ssh_execute", { session_id: sid, command: "(sleep 3; echo late) & echo early" });
        assert.equal(r.structured.stdout, "early\n");
        assert.equal(r.structured.background_output, true);
        const w = await waitEnd(server, sid, r.structured.job_id);
        assert.equal(w.structured.stdout, "late\n", "a wait returns what came after the call's result");
        assert.equal(w.structured.state, "exited");
        assert.equal(w.structured.exit_code, 0);
        assert.equal(await readAll(server, sid, r.structured.job_id), "early\nlate\n");
      });
    } finally {
      // This test's own processes (their arguments are this test's alone), should a step have failed.
      await call(c, "ssh_execute", {
        session_id: sid,
        command: "pkill -xf 'sleep 303[12]|python3 -m http.server 0 --bind 127.0.0.33' || true",
      });
    }
  },
);

Deno.test({ name: "connection-bound jobs: wait, signals to the group, the output budget", ignore: skip }, async (t) => {
  await using sshd = await startSshd();
  const kh = await sshd.writeKnownHosts();
  const dir = await Deno.makeTempDir({ prefix: "mcp-bound-" });
  try {
    const config = `${dir}/config.json`;
    await Deno.writeTextFile(config, JSON.stringify({ detached_jobs: false, output_retention_bytes: 4 * 1048576 }));
    await using server = await startServer({ args: ["--known-hosts", kh, "--config", config] });
    const c = server.client;
    const sid = await connectWithKey(c, sshd);
    await t.step("runs, says it is connection-bound, keeps exit code and output", async () => {
      const r = await callOk(c, "ssh_execute", {
        session_id: sid,
        command: "echo one; sleep 1; echo two >&2; seq 1 3; exit 4",
        background: true,
      });
      assert.match(r.text, /Connection-bound \(detached_jobs is off\)/);
      const w = await waitEnd(server, sid, r.structured.job_id);
      assert.equal(w.structured.exit_code, 4);
      assert.equal(w.structured.detached, false);
      assert.match(w.structured.note, /Connection-bound/);
      assert.equal(await readAll(server, sid, r.structured.job_id), "one\n1\n2\n3\n");
      assert.equal(await readAll(server, sid, r.structured.job_id, "stderr"), "two\n");
      // Nothing was written on the host.
      const files = await callOk(c, "ssh_execute", {
        session_id: sid,
        command: `test -e ~/.cache/mcp-remote-ssh/jobs/${r.structured.job_id} && echo there || echo none`,
      });
      assert.equal(files.structured.stdout, "none\n");
    });
    await t.step("INT reaches the command; cancel kills the whole group", async () => {
      const r = await callOk(c, "ssh_execute", {
        session_id: sid,
        command: "trap 'echo got-int; exit 7' INT; sleep 3041 & wait",
        background: true,
      });
      const job = r.structured.job_id;
      for (let i = 0; i < 50 && await count(server, sid, "sleep 3041") === 0; i++) {
        await new Promise((res) => setTimeout(res, 100));
      }
      const sent = await callOk(c, "ssh_job", { session_id: sid, action: "signal", job_id: job, signal: "INT" });
      assert.equal(sent.structured.sent, true);
      const w = await waitEnd(server, sid, job);
      assert.match(w.structured.stdout, /got-int/);
      const st = w.structured;
      assert.ok(st.state === "killed" || st.exit_code === 7, JSON.stringify(st));
      await callOk(c, "ssh_job", { session_id: sid, action: "cancel", job_id: job });
      const r2 = await callOk(c, "ssh_execute", {
        session_id: sid,
        command: "trap '' TERM; sleep 3042 & sleep 3043 & wait",
        background: true,
      });
      for (let i = 0; i < 50 && await count(server, sid, "sleep 3043") === 0; i++) {
        await new Promise((res) => setTimeout(res, 100));
      }
      const cancel = await callOk(c, "ssh_job", { session_id: sid, action: "cancel", job_id: r2.structured.job_id });
      assert.equal(cancel.structured.confirmed, true, cancel.text);
      assert.equal(cancel.structured.state, "killed", cancel.text);
      assert.ok(await gone(server, sid, "sleep 3042"), "sleep 3042 survived");
      assert.ok(await gone(server, sid, "sleep 3043"), "sleep 3043 survived");
    });
    await t.step("1 GiB through a 4 MiB budget: the oldest bytes go, a read says so, memory stays flat", async () => {
      // 2^24 numbered lines of 64 bytes.
      const lines = 16_777_216;
      const before = await rssMiB(server.pid!);
      const r = await callOk(c, "ssh_execute", {
        session_id: sid,
        command: numberedLines(lines),
        background: true,
      });
      const job = r.structured.job_id;
      let { w, peak } = await waitWatching(server, sid, job);
      peak = Math.max(peak, before);
      assert.equal(w.structured.exit_code, 0, JSON.stringify(w.structured).slice(0, 300));
      assert.equal(w.structured.stdout_bytes, lines * 64);
      const first = await callOk(c, "ssh_output_read", { session_id: sid, output_id: job, offset: 0, max_bytes: 640 });
      assert.ok(
        first.structured.dropped_bytes >= lines * 64 - 4 * 1048576,
        `${first.structured.dropped_bytes} dropped`,
      );
      assert.equal(first.structured.offset, first.structured.dropped_bytes, "reads start after what was dropped");
      assert.match(first.text, /dropped/);
      // What is left is exact: the lines at the end.
      const end = lines * 64;
      const last = await callOk(c, "ssh_output_read", {
        session_id: sid,
        output_id: job,
        offset: end - 64 * 1000,
        max_bytes: 64 * 1000,
      });
      const want = Array.from({ length: 1000 }, (_, i) => numberedLine(lines - 999 + i)).join("");
      assert.equal(last.structured.data, want);
      assert.equal(last.structured.complete, true);
      assert.ok(peak - before < 100, `server RSS grew from ${before.toFixed(0)} to ${peak.toFixed(0)} MiB`);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * A command printing `count` numbered lines of 64 bytes: line n is 10^62 + n, 63 digits and a
 * newline. Plain integers keep GNU seq on its fast path: 1 GiB of lines costs it ~0.5 s of CPU,
 * where `seq -f '%063.0f'` (the same lines with zeros in front) took ~8 s.
 */
function numberedLines(count: number): string {
  return `seq 1${"0".repeat(61)}1 ${numberedLine(count).trimEnd()}`;
}

/** Line n of {@linkcode numberedLines}, newline included. */
function numberedLine(n: number): string {
  return `1${String(n).padStart(62, "0")}\n`;
}

// Waits on a job until it ends (waits of 5 s), noting the server's peak RSS meanwhile.
async function waitWatching(server: TestServer, sid: string, job: string) {
  let peak = 0;
  for (let i = 0; i < 120; i++) {
    const w = await callOk(server.client, "ssh_job", { session_id: sid, action: "wait", job_id: job, timeout: 5 });
    peak = Math.max(peak, await rssMiB(server.pid!));
    if (w.structured.state !== "running") return { w, peak };
  }
  throw new Error(`job ${job} did not end`);
}

// VmRSS of a process, in MiB.
async function rssMiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

Deno.test({ name: "1 GB of detached job output: exact by range, the server's memory flat", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const kh = await sshd.writeKnownHosts();
  await using server = await startServer({ args: ["--known-hosts", kh] });
  const c = server.client;
  const sid = await connectWithKey(c, sshd);
  let job: string | undefined;
  try {
    // 2^24 lines of 64 bytes, numbered: 1 GiB.
    const lines = 16_777_216;
    const before = await rssMiB(server.pid!);
    const r = await callOk(c, "ssh_execute", {
      session_id: sid,
      command: numberedLines(lines),
      background: true,
    });
    job = r.structured.job_id as string;
    let { w, peak } = await waitWatching(server, sid, job);
    peak = Math.max(peak, before);
    assert.equal(w.structured.state, "exited", JSON.stringify(w.structured).slice(0, 300));
    assert.equal(w.structured.stdout_bytes, lines * 64);
    // Reads at the start, across the middle and at the end are exact.
    for (const line of [1, 4_000_001, 8_388_608, lines]) {
      const offset = (line - 1) * 64;
      const page = await callOk(c, "ssh_output_read", {
        session_id: sid,
        output_id: job,
        offset,
        max_bytes: 1_048_576,
      });
      peak = Math.max(peak, await rssMiB(server.pid!));
      assert.equal(page.structured.offset, offset);
      assert.equal(page.structured.dropped_bytes, 0);
      const want = Array.from(
        { length: Math.min(16384, lines - line + 1) },
        (_, i) => numberedLine(line + i),
      ).join("");
      assert.equal(page.structured.data, want);
    }
    assert.ok(peak - before < 100, `server RSS grew from ${before.toFixed(0)} to ${peak.toFixed(0)} MiB`);
  } finally {
    // Its own files only: the account is shared with other runs' jobs.
    if (job !== undefined) await call(c, "ssh_job", { session_id: sid, action: "remove", job_id: job });
  }
});

Deno.test("a server without a POSIX shell: jobs are connection-bound and say so", async () => {
  // The fake's "shell" prints, waits, prints on stderr and exits 5 for `slow-job`; the rest as cmd.exe.
  await using win = await fakeWindows("OpenSSH_for_Windows_9.5", (command, stream) => {
    if (command !== "slow-job") return notRecognized(command, stream);
    stream.write("first\r\n");
    setTimeout(() => {
      stream.stderr.write("warn\r\n");
      stream.write("second\r\n");
      stream.exit(5);
      stream.end();
    }, 1500);
  });
  await using server = await startInProcessServer({ args: ["--known-hosts", win.knownHosts] });
  const c = server.client;
  const connected = await callOk(c, "ssh_connect", { host: "127.0.0.1", port: win.port, username: "u", password: "x" });
  const sid = connected.structured.session_id;
  const r = await callOk(c, "ssh_execute", { session_id: sid, command: "slow-job", background: true });
  assert.match(r.text, /Connection-bound \(the server has no POSIX shell\)/);
  assert.deepEqual(win.execs, ["slow-job"], "the command went to the server's shell as it is");
  const w = await waitEnd(server, sid, r.structured.job_id);
  assert.equal(w.structured.state, "exited");
  assert.equal(w.structured.exit_code, 5);
  assert.equal(w.structured.detached, false);
  assert.equal(await readAll(server, sid, r.structured.job_id), "first\r\nsecond\r\n");
  assert.equal(await readAll(server, sid, r.structured.job_id, "stderr"), "warn\r\n");
});
