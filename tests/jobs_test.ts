/**
 * End to end: detached jobs (ssh_execute background=true, ssh_job,
 * ssh_output_read by job id), on the shipped permission set against a real
 * sshd. A job outlives its connection and the server, its output comes back
 * byte-exact, signals reach its whole process group, and its files go when
 * removed or old. The remote host is this machine, so `ps` here sees what a
 * job left behind.
 */

import assert from "node:assert/strict";
// @ts-types="@modelcontextprotocol/sdk/types"
import type { Progress } from "@modelcontextprotocol/sdk/types.js";
import { call, callOk, connectWithKey, startServer } from "./fixtures/mcp.ts";
import { startInProcessServer } from "./fixtures/in_process.ts";
import { signalAll, sshdAvailable, startSshd } from "./fixtures/sshd.ts";
import { delay } from "./fixtures/process.ts";
import {
  concat,
  JOBS_DIR,
  killSleepers,
  readAll,
  removeJobs,
  runLocally,
  sleepersRunning,
  startJob,
  survivors,
  tool,
  toolOk,
  waitEnded,
} from "./fixtures/jobs.ts";

const skip = !sshdAvailable();
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const bytes = (s: string) => new TextEncoder().encode(s);

/**
 * About 30 s in six steps: numbers, a line on stderr, and at step 3 a burst
 * of 160 KB with two-byte characters (more than a wait returns), then exit 3.
 * `pause` is `sleep 5` remotely and `:` for the local reference run.
 */
function stepped(pause: string): string {
  return "i=0; while [ $i -lt 6 ]; do i=$((i+1)); seq $((i*1000-999)) $((i*1000)); " +
    "printf 'step %s ü\\n' $i >&2; [ $i = 3 ] && seq -f 'ü%g' 1 20000; " + pause + "; done; echo end >&2; exit 3";
}

Deno.test(
  { name: "a 30 s job is followed by 5 s waits under a 10 s request timeout, byte-exact", ignore: skip },
  async () => {
    await using sshd = await startSshd();
    const kh = await sshd.writeKnownHosts();
    await using server = await startInProcessServer({ args: ["--known-hosts", kh] });
    const c = server.client;
    const request = { timeout: 10_000 };
    const started: string[] = [];
    try {
      const sid = (await toolOk(c, "ssh_connect", {
        host: sshd.host,
        port: sshd.port,
        username: sshd.user,
        private_key_path: sshd.keys.ed25519.path,
      }, request)).structured.session_id;
      // The reference: the same command run here with `sh -c`, without the pauses.
      const expected = await runLocally(stepped(":"));
      assert.equal(expected.code, 3);
      const id = await startJob(c, sid, stepped("sleep 5"), started, request);

      const waited = { stdout: [] as string[], stderr: [] as string[] };
      const reasons: string[] = [];
      const first = await toolOk(
        c,
        "ssh_job",
        { session_id: sid, action: "wait", job_id: id, pattern: "step 1", timeout: 5 },
        request,
      );
      assert.equal(first.structured.reason, "matched", first.text);
      assert.equal(first.structured.match, "step 1");
      assert.equal(first.structured.state, "running");
      waited.stdout.push(first.structured.stdout);
      waited.stderr.push(first.structured.stderr);
      // A second reader follows stdout with ssh_output_read from its own cursor while the job runs.
      const read: Uint8Array[] = [];
      let offset = 0;
      let last = first.structured;
      while (last.state === "running" || last.stdout_next < last.stdout_bytes || last.stderr_next < last.stderr_bytes) {
        assert.ok(reasons.length < 60, "the job never ended");
        const w = await toolOk(c, "ssh_job", { session_id: sid, action: "wait", job_id: id, timeout: 5 }, request);
        assert.equal(w.structured.encoding, undefined, "text comes as text");
        assert.ok(bytes(w.structured.stdout).length <= 32 * 1024, "a wait returns at most 32 KiB of a stream");
        reasons.push(w.structured.reason);
        waited.stdout.push(w.structured.stdout);
        waited.stderr.push(w.structured.stderr);
        last = w.structured;
        const page = await toolOk(c, "ssh_output_read", {
          session_id: sid,
          output_id: id,
          offset,
          max_bytes: 20_000,
        }, request);
        assert.equal(page.structured.offset, offset);
        read.push(bytes(page.structured.data));
        offset = page.structured.next_offset;
      }
      assert.ok(reasons.filter((r) => r === "timeout").length >= 3, `reasons: ${reasons.join(", ")}`);
      assert.equal(reasons.at(-1), "ended");
      assert.equal(last.state, "exited");
      assert.equal(last.exit_code, 3);
      assert.equal(last.signal, null);
      assert.equal(last.detached, true);
      assert.equal(last.stdout_bytes, expected.stdout.length);
      assert.equal(last.stderr_bytes, expected.stderr.length);
      // What the waits returned, one after the other, is the whole output.
      assert.equal(waited.stdout.join(""), text(expected.stdout));
      assert.equal(waited.stderr.join(""), text(expected.stderr));
      // So is what the cursor reads returned, finished once the job ended.
      for (let i = 0; i < 100; i++) {
        const page = await toolOk(c, "ssh_output_read", {
          session_id: sid,
          output_id: id,
          offset,
          max_bytes: 20_000,
        }, request);
        read.push(bytes(page.structured.data));
        offset = page.structured.next_offset;
        if (page.structured.complete) break;
      }
      assert.deepEqual(concat(read), expected.stdout);
      assert.deepEqual(await readAll(c, sid, id, "stderr", { request }), expected.stderr);
    } finally {
      await removeJobs(c, sshd, started);
    }
  },
);

/** About 12 s of ticks (100 numbers on stdout, a line on stderr, each second), then exit 5. */
function ticking(pause: string): string {
  return "i=0; while [ $i -lt 12 ]; do i=$((i+1)); seq $((i*100-99)) $((i*100)); echo tick $i >&2; " + pause +
    "; done; exit 5";
}

Deno.test({ name: "a job runs on when its connection is cut, and a new session finds it", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const kh = await sshd.writeKnownHosts();
  await using server = await startInProcessServer({ args: ["--known-hosts", kh] });
  const c = server.client;
  const started: string[] = [];
  try {
    const expected = await runLocally(ticking(":"));
    const before = await sshd.childPids();
    const sid = await connectWithKey(c, sshd);
    const id = await startJob(c, sid, ticking("sleep 1"), started);
    const pids = await sshd.sessionPids(before);
    const tick = await callOk(c, "ssh_job", { session_id: sid, action: "wait", job_id: id, pattern: "tick 2" });
    assert.equal(tick.structured.reason, "matched", tick.text);
    signalAll(pids, "SIGKILL");

    // The session reads as lost.
    for (let i = 0;; i++) {
      const list = await callOk(c, "ssh_list_sessions");
      const row = list.structured.sessions.find((s: { session_id: string }) => s.session_id === sid);
      if (row.connected === false) break;
      assert.ok(i < 200, "the session never read as lost");
      await delay(50);
    }
    const lost = await call(c, "ssh_job", { session_id: sid, action: "list" });
    assert.equal(lost.code, "CONNECTION_LOST", lost.text);

    const again = await connectWithKey(c, sshd);
    const list = await callOk(c, "ssh_job", { session_id: again, action: "list" });
    const row = list.structured.jobs.find((j: { job_id: string }) => j.job_id === id);
    assert.ok(row !== undefined, `job ${id} not listed: ${list.text}`);
    assert.equal(row.session_id, again);
    assert.equal(row.command, ticking("sleep 1"));
    assert.equal(row.detached, true);
    const end = await waitEnded(c, again, id);
    assert.equal(end.state, "exited");
    assert.equal(end.exit_code, 5);
    assert.deepEqual(await readAll(c, again, id, "stdout"), expected.stdout);
    assert.deepEqual(await readAll(c, again, id, "stderr"), expected.stderr);
    assert.equal(text(expected.stderr).split("\n").at(-2), "tick 12", "the job ran to its end");
  } finally {
    await removeJobs(c, sshd, started);
  }
});

Deno.test({ name: "a job runs on when the server restarts, and the new server finds it", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const kh = await sshd.writeKnownHosts();
  const started: string[] = [];
  const expected = await runLocally(ticking(":"));
  let id: string;
  {
    // Processes, not in-process servers: nothing the first kept in memory may reach the second.
    await using first = await startServer({ args: ["--known-hosts", kh] });
    try {
      const sid = await connectWithKey(first.client, sshd);
      id = await startJob(first.client, sid, ticking("sleep 1"), started);
      const tick = await callOk(first.client, "ssh_job", {
        session_id: sid,
        action: "wait",
        job_id: id,
        pattern: "tick 2",
      });
      assert.equal(tick.structured.reason, "matched", tick.text);
    } catch (error) {
      await removeJobs(first.client, sshd, started);
      throw error;
    }
  } // the first server ends here, its connection with it
  await using second = await startServer({ args: ["--known-hosts", kh] });
  const c = second.client;
  try {
    const sid = await connectWithKey(c, sshd);
    const list = await callOk(c, "ssh_job", { session_id: sid, action: "list" });
    const row = list.structured.jobs.find((j: { job_id: string }) => j.job_id === id);
    assert.ok(row !== undefined, `job ${id} not listed: ${list.text}`);
    assert.equal(row.command, ticking("sleep 1"));
    const end = await waitEnded(c, sid, id);
    assert.equal(end.state, "exited");
    assert.equal(end.exit_code, 5);
    assert.deepEqual(await readAll(c, sid, id, "stdout"), expected.stdout);
    assert.deepEqual(await readAll(c, sid, id, "stderr"), expected.stderr);
  } finally {
    await removeJobs(c, sshd, started);
  }
});

/** `seq 1 N` for job `i` of 20: most small, every fourth over 1 MB. */
function seqCount(i: number): number {
  return i % 4 === 0 ? 180_000 + 1000 * i : 700 * (i + 1);
}

function seqText(n: number): Uint8Array {
  return bytes(Array.from({ length: n }, (_, i) => `${i + 1}\n`).join(""));
}

Deno.test(
  { name: "20 jobs at once on one session under MaxSessions 10 all complete byte-exact", ignore: skip },
  async () => {
    await using sshd = await startSshd({ maxSessions: 10 });
    const kh = await sshd.writeKnownHosts();
    await using server = await startInProcessServer({ args: ["--known-hosts", kh] });
    const c = server.client;
    const started: string[] = [];
    try {
      const sid = await connectWithKey(c, sshd);
      const indexes = Array.from({ length: 20 }, (_, i) => i);
      const ids = await Promise.all(
        indexes.map((i) => startJob(c, sid, `seq 1 ${seqCount(i)}; echo done-${i} >&2`, started)),
      );
      assert.equal(new Set(ids).size, 20);
      const ends = await Promise.all(ids.map((id) => waitEnded(c, sid, id)));
      for (const [i, end] of ends.entries()) {
        assert.equal(end.state, "exited", `job ${i}`);
        assert.equal(end.exit_code, 0, `job ${i}`);
      }
      const outputs = await Promise.all(ids.map((id) => readAll(c, sid, id, "stdout")));
      for (const i of indexes) {
        const want = seqText(seqCount(i));
        assert.equal(outputs[i].length, want.length, `job ${i}: ${outputs[i].length} bytes`);
        assert.deepEqual(outputs[i], want, `job ${i}`);
        assert.equal(text(await readAll(c, sid, ids[i], "stderr")), `done-${i}\n`);
      }
      assert.ok(outputs.filter((o) => o.length > 1_048_576).length >= 5, "five outputs over 1 MiB");
      const list = await callOk(c, "ssh_job", { session_id: sid, action: "list" });
      const mine = list.structured.jobs.filter((j: { job_id: string }) => ids.includes(j.job_id));
      assert.equal(mine.length, 20);
      for (const row of mine) assert.equal(row.exit_code, 0);
    } finally {
      await removeJobs(c, sshd, started);
    }
  },
);

/** The unique sleeps of the signal test, to find what it left in `ps`. */
const SLEEPS = [3011, 3012, 3013, 3014];

Deno.test({ name: "signal and cancel reach the job's whole process group", ignore: skip }, async (t) => {
  await using sshd = await startSshd();
  const kh = await sshd.writeKnownHosts();
  await using server = await startInProcessServer({ args: ["--known-hosts", kh] });
  const c = server.client;
  const started: string[] = [];
  try {
    const sid = await connectWithKey(c, sshd);

    await t.step("TERM to a group of three leaves no survivor", async () => {
      const id = await startJob(c, sid, "sh -c 'sleep 3011 & sleep 3011 & wait'", started);
      await sleepersRunning(3011, 2);
      const sent = await callOk(c, "ssh_job", { session_id: sid, action: "signal", job_id: id, signal: "TERM" });
      assert.equal(sent.structured.sent, true);
      const end = await waitEnded(c, sid, id, { calls: 2 });
      assert.equal(end.state, "killed");
      assert.equal(end.signal, "TERM");
      assert.equal(end.exit_code, null);
      assert.deepEqual(await survivors(3011), []);
      // A signal to an ended job is not sent.
      const late = await callOk(c, "ssh_job", { session_id: sid, action: "signal", job_id: id, signal: "TERM" });
      assert.equal(late.structured.sent, false);
    });

    await t.step("cancel ends a job and its background children", async () => {
      const id = await startJob(c, sid, "sleep 3013 & sleep 3013; echo not-reached", started);
      await sleepersRunning(3013, 2);
      const r = await callOk(c, "ssh_job", { session_id: sid, action: "cancel", job_id: id });
      assert.equal(r.structured.confirmed, true, r.text);
      assert.equal(r.structured.state, "killed");
      assert.equal(r.structured.signal, "TERM");
      assert.deepEqual(await survivors(3013), []);
      const end = await waitEnded(c, sid, id, { calls: 2 });
      assert.equal(end.stdout, "");
    });

    await t.step("INT reaches the command: its trap runs", async () => {
      const id = await startJob(
        c,
        sid,
        "trap 'echo got-int; exit 7' INT; echo ready; sleep 3014; echo not-reached",
        started,
      );
      await sleepersRunning(3014, 1);
      const sent = await callOk(c, "ssh_job", { session_id: sid, action: "signal", job_id: id, signal: "INT" });
      assert.equal(sent.structured.sent, true);
      const end = await waitEnded(c, sid, id, { calls: 2 });
      assert.equal(end.state, "exited");
      assert.equal(end.exit_code, 7);
      assert.equal(end.stdout, "ready\ngot-int\n");
      assert.deepEqual(await survivors(3014), []);
    });

    await t.step("a job that ignores TERM dies on cancel's KILL", async () => {
      const id = await startJob(c, sid, "trap '' TERM; echo ready; sleep 3012", started);
      await sleepersRunning(3012, 1);
      const r = await callOk(c, "ssh_job", { session_id: sid, action: "cancel", job_id: id });
      assert.equal(r.structured.confirmed, true, r.text);
      assert.equal(r.structured.state, "killed");
      assert.equal(r.structured.signal, "KILL");
      assert.deepEqual(await survivors(3012), []);
      const end = await waitEnded(c, sid, id, { calls: 2 });
      assert.equal(end.state, "killed");
      assert.equal(end.signal, "KILL");
      assert.equal(end.stdout, "ready\n");
    });
  } finally {
    await removeJobs(c, sshd, started);
    const left = await Promise.all(SLEEPS.map((n) => survivors(n)));
    await Promise.all(SLEEPS.map((n) => killSleepers(n)));
    assert.deepEqual(left.flat(), [], "sleepers left after the jobs were removed");
  }
});

Deno.test({ name: "remove refuses a running job and deletes an ended one's files", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const kh = await sshd.writeKnownHosts();
  await using server = await startInProcessServer({ args: ["--known-hosts", kh] });
  const c = server.client;
  const started: string[] = [];
  try {
    const sid = await connectWithKey(c, sshd);
    const id = await startJob(c, sid, "echo hi; sleep 3015", started);
    const dirExists = async () => {
      const r = await callOk(c, "ssh_execute", { session_id: sid, command: `test -d ~/${JOBS_DIR}/${id}` });
      return r.structured.exit_code === 0;
    };
    assert.equal(await dirExists(), true);
    const running = await call(c, "ssh_job", { session_id: sid, action: "remove", job_id: id });
    assert.equal(running.code, "JOB_RUNNING", running.text);
    assert.equal(await dirExists(), true);
    await callOk(c, "ssh_job", { session_id: sid, action: "cancel", job_id: id });
    const removed = await callOk(c, "ssh_job", { session_id: sid, action: "remove", job_id: id });
    assert.equal(removed.structured.removed, true);
    assert.equal(await dirExists(), false);
    for (const action of ["wait", "remove", "cancel"]) {
      const gone = await call(c, "ssh_job", { session_id: sid, action, job_id: id });
      assert.equal(gone.code, "JOB_NOT_FOUND", `${action}: ${gone.text}`);
    }
    const read = await call(c, "ssh_output_read", { session_id: sid, output_id: id });
    assert.equal(read.code, "JOB_NOT_FOUND", read.text);
    const list = await callOk(c, "ssh_job", { session_id: sid, action: "list" });
    assert.ok(!list.structured.jobs.some((j: { job_id: string }) => j.job_id === id), list.text);
    const unknown = await call(c, "ssh_job", { session_id: sid, action: "wait", job_id: "j-000000000000" });
    assert.equal(unknown.code, "JOB_NOT_FOUND", unknown.text);
  } finally {
    await removeJobs(c, sshd, started);
  }
});

Deno.test(
  { name: "a finished job older than job_retention_hours goes when the next job starts", ignore: skip },
  async () => {
    await using sshd = await startSshd();
    const kh = await sshd.writeKnownHosts();
    const dir = await Deno.makeTempDir({ prefix: "mcp-jobs-" });
    const started: string[] = [];
    try {
      await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ job_retention_hours: 1 }));
      await using server = await startInProcessServer({
        args: ["--known-hosts", kh, "--config", `${dir}/config.json`],
      });
      const c = server.client;
      try {
        const sid = await connectWithKey(c, sshd);
        const old = await startJob(c, sid, "echo old", started);
        const recent = await startJob(c, sid, "echo recent", started);
        await waitEnded(c, sid, old);
        await waitEnded(c, sid, recent);
        const age = await callOk(c, "ssh_execute", {
          session_id: sid,
          command:
            `touch -d '-3 hours' ~/${JOBS_DIR}/${old}/exit && touch -d '-30 minutes' ~/${JOBS_DIR}/${recent}/exit`,
        });
        assert.equal(age.structured.exit_code, 0, age.text);
        const present = async (id: string) =>
          (await callOk(c, "ssh_execute", { session_id: sid, command: `test -d ~/${JOBS_DIR}/${id}` }))
            .structured.exit_code === 0;
        assert.equal(await present(old), true, "nothing removes it before a job starts");
        const next = await startJob(c, sid, "echo next", started);
        // The launcher removes old jobs in the background, after the start has returned.
        let there = true;
        for (let i = 0; i < 100 && there; i++) {
          there = await present(old);
          if (there) await new Promise((r) => setTimeout(r, 100));
        }
        assert.equal(there, false, "the job 3 hours old is gone");
        assert.equal(await present(recent), true, "the job 30 minutes old stays");
        const list = await callOk(c, "ssh_job", { session_id: sid, action: "list" });
        const ids = list.structured.jobs.map((j: { job_id: string }) => j.job_id);
        assert.ok(!ids.includes(old) && ids.includes(recent) && ids.includes(next), list.text);
        const gone = await call(c, "ssh_job", { session_id: sid, action: "wait", job_id: old });
        assert.equal(gone.code, "JOB_NOT_FOUND", gone.text);
      } finally {
        await removeJobs(c, sshd, started);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test({ name: "a wait longer than the request timeout completes by progress", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const kh = await sshd.writeKnownHosts();
  await using server = await startInProcessServer({ args: ["--known-hosts", kh] });
  const c = server.client;
  const started: string[] = [];
  try {
    const sid = await connectWithKey(c, sshd);
    const id = await startJob(c, sid, "echo start; sleep 6; echo end", started);
    const seen: Progress[] = [];
    const r = await tool(c, "ssh_job", { session_id: sid, action: "wait", job_id: id, timeout: 30 }, {
      timeout: 3000,
      resetTimeoutOnProgress: true,
      onprogress: (p) => void seen.push(p),
    });
    assert.equal(r.isError, false, r.text);
    assert.equal(r.structured.reason, "ended");
    assert.equal(r.structured.exit_code, 0);
    assert.equal(r.structured.stdout, "start\nend\n");
    assert.ok(seen.length >= 1, `${seen.length} progress notifications`);
    assert.match(seen.at(-1)!.message ?? "", /bytes on stdout/);
    // The same timeout without progress ends the call: the timeout is real.
    const other = await startJob(c, sid, "sleep 6", started);
    await assert.rejects(
      tool(c, "ssh_job", { session_id: sid, action: "wait", job_id: other, timeout: 30 }, { timeout: 3000 }),
      /timed out/i,
    );
    await callOk(c, "ssh_job", { session_id: sid, action: "cancel", job_id: other });
  } finally {
    await removeJobs(c, sshd, started);
  }
});

Deno.test({ name: "a job whose files were removed on the host is JOB_NOT_FOUND", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const kh = await sshd.writeKnownHosts();
  await using server = await startInProcessServer({ args: ["--known-hosts", kh] });
  const c = server.client;
  const started: string[] = [];
  try {
    const sid = await connectWithKey(c, sshd);
    const id = await startJob(c, sid, "echo gone-soon", started);
    await waitEnded(c, sid, id);
    // Someone else removed it: another server's retention clean-up, or an rm -rf.
    const rm = await callOk(c, "ssh_execute", { session_id: sid, command: `rm -rf ~/${JOBS_DIR}/${id}` });
    assert.equal(rm.structured.exit_code, 0, rm.text);
    const wait = await call(c, "ssh_job", { session_id: sid, action: "wait", job_id: id, timeout: 10 });
    const read = await call(c, "ssh_output_read", { session_id: sid, output_id: id });
    assert.deepEqual([wait.code, read.code], ["JOB_NOT_FOUND", "JOB_NOT_FOUND"], `${wait.text}\n${read.text}`);
  } finally {
    await removeJobs(c, sshd, started);
  }
});
