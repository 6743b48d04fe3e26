/**
 * The background-child trap on the SSH layer, against a real sshd: a
 * command whose exit status arrived while a child it started still holds
 * stdout or stderr open returns at about the grace (not at its timeout),
 * with the channel handed over as `background`, and that child is never
 * killed because of it. Ordinary commands, and the timeout path, stay as
 * they were.
 */

import assert from "node:assert/strict";
import type { SshConnection } from "../lib/ssh/connection.ts";
import { type BackgroundChannel, execCommand, type ExecOptions, type ExecResult } from "../lib/ssh/exec.ts";
import { probeRemote } from "../lib/ssh/remote.ts";
import { openConnection, type Sshd, sshdAvailable, startSshd } from "./fixtures/sshd.ts";
import { waitFor, within } from "./fixtures/process.ts";

const skip = !sshdAvailable();
if (skip) console.warn("SKIP background child tests: no sshd on this machine (apt-get install openssh-server)");

/** What a session would pass: the probe's delivery and process-group facts. */
type Facts = Pick<ExecOptions, "delivery" | "ownGroup">;

async function connect(sshd: Sshd): Promise<{ conn: SshConnection; facts: Facts }> {
  const conn = await openConnection(sshd);
  const remote = await probeRemote(conn, { timeoutMs: 20_000 });
  assert.equal(remote.exec, "posix", `the probe failed: ${remote.note}`);
  return { conn, facts: { delivery: remote.delivery, ownGroup: remote.processGroup === "own" } };
}

function exec(
  conn: SshConnection,
  facts: Facts,
  command: string,
  extra: Partial<ExecOptions> = {},
): Promise<ExecResult> {
  return execCommand(conn, { ...facts, command, timeoutMs: 60_000, maxOutputBytes: 1 << 20, handOver: true, ...extra });
}

/** Runs a helper command of the test's own, which must succeed; its stdout. */
async function check(conn: SshConnection, facts: Facts, command: string): Promise<string> {
  const r = await exec(conn, facts, command, { timeoutMs: 30_000 });
  assert.equal(r.exitCode, 0, `${command}: ${r.stderr}`);
  assert.equal(r.background, undefined, `${command} left a child behind`);
  return r.stdout;
}

/** Whether `pid` is a live (not zombie) process of the account. */
async function alive(conn: SshConnection, facts: Facts, pid: number): Promise<boolean> {
  const stat = (await check(conn, facts, `ps -o stat= -p ${pid} || true`)).trim();
  return stat !== "" && !stat.startsWith("Z");
}

/** Live processes of the account whose command line is exactly `args`. */
async function count(conn: SshConnection, facts: Facts, args: string): Promise<number> {
  // The pattern ends the line at `args`, so neither grep nor the shells running it match.
  const out = await check(conn, facts, `ps -u "$(id -u)" -o stat= -o args= | grep -cE '^[^Z][^ ]* +${args}$' || true`);
  return Number(out.trim());
}

/** The first line of output: a PID the command printed with `echo $!`. */
function firstPid(r: ExecResult): number {
  const pid = Number(r.stdout.split("\n")[0]);
  assert.ok(Number.isSafeInteger(pid) && pid > 1, `no PID in ${JSON.stringify(r.stdout)}`);
  return pid;
}

/** Ends what a failed step left: the handed-over group, else the PIDs it printed. */
async function cleanUp(
  conn: SshConnection,
  facts: Facts,
  background: BackgroundChannel | undefined,
  pids: number[],
): Promise<void> {
  if (background?.open) await background.kill();
  if (pids.length > 0) await exec(conn, facts, `kill -KILL ${pids.join(" ")} 2>/dev/null; true`);
}

Deno.test(
  { name: "a background child holding stdout hands its channel over instead of timing out", ignore: skip },
  async (t) => {
    await using sshd = await startSshd({ maxSessions: 10 });
    const { conn, facts } = await connect(sshd);
    await using _conn = conn;
    const python = (await check(conn, facts, "command -v python3 || true")).trim();
    if (python === "") console.warn("SKIP python3 http.server case: the sshd account sees no python3");
    const cases = [
      { name: "nohup sleep 351 &", command: "nohup sleep 351 & echo $!" },
      { name: "(sleep 352 &)", command: "(sleep 352 & echo $!)" },
      ...(python === "" ? [] : [{ name: "python3 -m http.server 0 &", command: "python3 -m http.server 0 & echo $!" }]),
    ];
    for (const { name, command } of cases) {
      await t.step(`${name}: returns at once with exit 0, the child runs on until background.kill()`, async () => {
        let background: BackgroundChannel | undefined;
        const pids: number[] = [];
        try {
          const cancel = new AbortController();
          const started = performance.now();
          const r = await exec(conn, facts, command, { signal: cancel.signal });
          const took = performance.now() - started;
          background = r.background;
          pids.push(firstPid(r));
          assert.ok(took < 8000, `took ${Math.round(took)} ms of a 60 s timeout`);
          assert.equal(r.exitCode, 0);
          assert.equal(r.signal, null);
          assert.equal(r.timedOut, false);
          assert.ok(background, "no background channel");
          assert.equal(background.open, true);
          // Neither the call's timeout nor its cancel reaches the child any more.
          cancel.abort(new Error("tool call cancelled after it returned"));
          assert.equal(await alive(conn, facts, pids[0]), true, "the background child was killed");
          assert.equal(background.open, true);
          const kill = await within(20_000, "background.kill()", background.kill());
          assert.deepEqual(kill, { confirmed: true });
          assert.equal(await alive(conn, facts, pids[0]), false, "the background child survived kill()");
          await within(10_000, "closed after kill()", background.closed);
          assert.equal(background.open, false);
          await waitFor(() => conn.channelSlots.inUse === 0, "the channel slot back");
        } finally {
          await cleanUp(conn, facts, background, pids);
        }
      });
    }
  },
);

Deno.test(
  { name: "output after the hand-over reaches onOutput and closed resolves when the child ends", ignore: skip },
  async () => {
    await using sshd = await startSshd();
    const { conn, facts } = await connect(sshd);
    await using _conn = conn;
    const chunks: Record<"stdout" | "stderr", Uint8Array[]> = { stdout: [], stderr: [] };
    // The child outlives the 1 s grace by enough to stay apart from it under load.
    const r = await exec(conn, facts, "(sleep 3; echo late; echo late-err >&2) & echo early", {
      onOutput: (stream, chunk) => chunks[stream].push(chunk.slice()),
    });
    assert.equal(r.stdout, "early\n");
    assert.equal(r.exitCode, 0);
    assert.ok(r.background, "no background channel");
    await within(20_000, "closed once the child ended", r.background.closed);
    assert.equal(r.background.open, false);
    const text = (list: Uint8Array[]) => new TextDecoder().decode(new Uint8Array(list.flatMap((c) => [...c])));
    assert.equal(text(chunks.stdout), "early\nlate\n");
    assert.equal(text(chunks.stderr), "late-err\n");
    assert.equal(conn.channelSlots.inUse, 0, "the channel slot was not given back");
    // The group is gone with it: a signal reaches nobody.
    assert.equal(await r.background.signal("TERM"), false);
  },
);

Deno.test({ name: "background.signal('TERM') reaches the whole process group", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const { conn, facts } = await connect(sshd);
  await using _conn = conn;
  let background: BackgroundChannel | undefined;
  try {
    const r = await exec(conn, facts, "sh -c 'sleep 361 & sleep 361 & wait' & echo $!");
    background = r.background;
    assert.ok(background, "no background channel");
    await waitFor(async () => await count(conn, facts, "sleep 361") === 2, "both sleeps running");
    assert.equal(await background.signal("TERM"), true);
    await waitFor(async () => await count(conn, facts, "sleep 361") === 0, "no sleep 361 left after TERM");
    assert.equal(await count(conn, facts, "sh -c sleep 361 & sleep 361 & wait"), 0, "the sh survived TERM");
    await within(10_000, "closed once the group died", background.closed);
    assert.equal(background.open, false);
    assert.equal(conn.channelSlots.inUse, 0);
  } finally {
    await cleanUp(conn, facts, background, []);
  }
});

Deno.test({ name: "background.close() stops reading and leaves the child running", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const { conn, facts } = await connect(sshd);
  await using _conn = conn;
  const pids: number[] = [];
  try {
    const r = await exec(conn, facts, "sleep 362 & echo $!");
    pids.push(firstPid(r));
    assert.ok(r.background, "no background channel");
    r.background.close();
    await within(10_000, "closed after close()", r.background.closed);
    assert.equal(r.background.open, false);
    assert.equal(conn.channelSlots.inUse, 0);
    assert.equal(await alive(conn, facts, pids[0]), true, "close() killed the child");
  } finally {
    await cleanUp(conn, facts, undefined, pids);
  }
});

Deno.test({ name: "a handed-over channel counts as closed when its connection ends", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const { conn, facts } = await connect(sshd);
  await using _conn = conn;
  const other = await connect(sshd);
  const pids: number[] = [];
  try {
    const r = await exec(other.conn, other.facts, "sleep 363 & echo $!");
    pids.push(firstPid(r));
    assert.ok(r.background, "no background channel");
    await other.conn.close();
    await within(10_000, "closed after the connection ended", r.background.closed);
    assert.equal(r.background.open, false);
    assert.deepEqual(await r.background.kill(), { confirmed: false, note: "the connection was lost" });
  } finally {
    await other.conn.close();
    await cleanUp(conn, facts, undefined, pids);
  }
});

Deno.test({ name: "commands whose streams end are unchanged: no background, output exact", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const { conn, facts } = await connect(sshd);
  await using _conn = conn;
  const hi = await exec(conn, facts, "echo hi");
  assert.equal(hi.stdout, "hi\n");
  assert.equal(hi.exitCode, 0);
  assert.equal(hi.background, undefined);
  const late = await exec(conn, facts, "sleep 1.2; echo x");
  assert.equal(late.stdout, "x\n");
  assert.equal(late.background, undefined);
  const big = await exec(conn, facts, "head -c 5242880 /dev/zero | tr '\\0' a; echo done >&2", {
    maxOutputBytes: 6 << 20,
  });
  assert.equal(big.background, undefined);
  assert.equal(big.truncated, false);
  assert.equal(big.stdoutBytes, 5242880);
  assert.equal(big.stdout, "a".repeat(5242880));
  assert.equal(big.stderr, "done\n");
  assert.equal(conn.channelSlots.inUse, 0);
});

Deno.test(
  { name: "the timeout path is unchanged: a sleep with a 1 s timeout times out and is killed", ignore: skip },
  async () => {
    await using sshd = await startSshd();
    const { conn, facts } = await connect(sshd);
    await using _conn = conn;
    const r = await exec(conn, facts, "sleep 364", { timeoutMs: 1000 });
    assert.equal(r.timedOut, true);
    assert.equal(r.exitCode, null);
    assert.equal(r.background, undefined);
    assert.equal(r.killConfirmed, true, r.killNote);
    assert.equal(await count(conn, facts, "sleep 364"), 0, "the timed-out sleep survived");
    await waitFor(() => conn.channelSlots.inUse === 0, "the channel slot back");
  },
);

Deno.test({
  name: "without handOver the channel a background child holds is closed, and the child left alone",
  ignore: skip,
}, async () => {
  await using sshd = await startSshd();
  const { conn, facts } = await connect(sshd);
  await using _conn = conn;
  const r = await exec(conn, facts, "sleep 365 & echo started", { handOver: false });
  assert.equal(r.background, undefined);
  assert.equal(r.exitCode, 0);
  assert.equal(r.stdout, "started\n");
  const alive = await exec(conn, facts, "pgrep -xf 'sleep 365' >/dev/null && echo alive; pkill -xf 'sleep 365' || :");
  assert.equal(alive.stdout, "alive\n", "the child was killed");
});
