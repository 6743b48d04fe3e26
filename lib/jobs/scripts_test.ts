/**
 * The job scripts in the real shells here, without SSH: a job's files and
 * status, signals that reach the command (bash) or only TERM (no bash), a
 * stopped job that is not mistaken for an ended one, the identity check
 * that keeps a signal off a group that is not the job's, and a cleanup that
 * removes nothing but old job directories.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  aliveScript,
  cancelScript,
  JOBS_DIR,
  launchScript,
  listScript,
  parseList,
  removeScript,
  signalScript,
} from "./scripts.ts";

const TOOLS = ["mkdir", "chmod", "cat", "find", "rm", "sleep", "ps", "tr", "grep", "date", "mv", "head", "wc", "sh"];

/** A HOME of its own, and a PATH with or without bash. */
async function place(withBash: boolean): Promise<{ home: string; env: Record<string, string>; close(): void }> {
  const home = await Deno.makeTempDir({ prefix: "mcp-jobs-test-" });
  const bin = `${home}/bin`;
  await Deno.mkdir(bin);
  for (const tool of withBash ? [...TOOLS, "bash"] : TOOLS) {
    const path = ["/usr/bin", "/bin"].map((d) => `${d}/${tool}`).find((p) => exists(p));
    if (path !== undefined) await Deno.symlink(path, `${bin}/${tool}`);
  }
  return {
    home,
    env: { HOME: home, PATH: bin, SHELL: "/bin/sh" },
    close: () => Deno.removeSync(home, { recursive: true }),
  };
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

async function sh(script: string, env: Record<string, string>, stdin = ""): Promise<{ code: number; out: string }> {
  // setsid: as sshd does, the launcher's shell leads a session and group of its own (without bash
  // the job shares that group, which must not be this test's).
  const child = new Deno.Command("/usr/bin/setsid", {
    args: ["/bin/sh", "-c", script],
    env,
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
  })
    .spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(stdin));
  await writer.close();
  const r = await child.output();
  return { code: r.code, out: new TextDecoder().decode(r.stdout) };
}

async function launch(env: Record<string, string>, id: string, command: string): Promise<void> {
  const script = launchScript({ id, shell: "login", meta: "{}", keepMinutes: 60, env: { GREETING: "hi there" } });
  const r = await sh(script, env, command);
  assert.equal(r.out, "mcp-job-started\n");
}

async function file(home: string, id: string, name: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(`${home}/${JOBS_DIR}/${id}/${name}`);
  } catch {
    return null;
  }
}

async function until<T>(what: () => Promise<T | null>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await what();
    if (v !== null) return v;
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 20));
  }
}

for (const withBash of [true, false]) {
  const how = withBash ? "with bash" : "without bash";

  Deno.test(`${how}: a job's output, env and status are in its files; list finds it`, async () => {
    const p = await place(withBash);
    try {
      const id = "j-000000000001";
      await launch(p.env, id, 'echo "out $GREETING"; echo err >&2; exit 3');
      const exit = await until(() => file(p.home, id, "exit"));
      assert.match(exit, /^3 \d+\n$/);
      assert.equal(await file(p.home, id, "out"), "out hi there\n");
      assert.equal(await file(p.home, id, "err"), "err\n");
      const mode = (await Deno.stat(`${p.home}/${JOBS_DIR}/${id}`)).mode! & 0o777;
      assert.equal(mode, 0o700);
      const listed = parseList((await sh(listScript(60), p.env)).out);
      assert.equal(listed.length, 1);
      assert.equal(listed[0].status, 3);
      assert.equal(listed[0].stdoutBytes, 13);
    } finally {
      p.close();
    }
  });

  Deno.test(`${how}: TERM reaches the whole group, the status says so`, async () => {
    const p = await place(withBash);
    try {
      const id = "j-000000000002";
      await launch(p.env, id, "sleep 301 & sleep 302 & wait");
      await until(() => file(p.home, id, "pid"));
      assert.equal((await sh(aliveScript(id), p.env)).code, 0);
      assert.equal((await sh(signalScript(id, "TERM"), p.env)).code, 0);
      const exit = await until(() => file(p.home, id, "exit"));
      assert.match(exit, /^143 /);
      assert.equal((await sh(aliveScript(id), p.env)).code, 1);
      // The exit is written when the job's shell has ended; its sleeps, TERMed with it, may still be
      // on their way out (a loaded machine showed it): until they are, there is something to signal.
      const second = await until(async () => {
        const code = (await sh(signalScript(id, "TERM"), p.env)).code;
        return code === 0 ? null : code;
      });
      assert.equal(second, 6, "a second signal finds nothing once the group is gone");
    } finally {
      p.close();
    }
  });

  Deno.test(`${how}: cancel KILLs what ignores TERM, children included`, async () => {
    const p = await place(withBash);
    try {
      const id = "j-000000000003";
      await launch(p.env, id, "trap '' TERM; sleep 303 & sleep 304; wait");
      const pid = await until(() => file(p.home, id, "pid"));
      const group = Number(pid.split(" ")[1]);
      assert.equal((await sh(cancelScript(id, 0.5), p.env)).code, 0);
      assert.equal((await sh(`kill -0 -- -${group} 2>/dev/null && echo alive || echo gone`, p.env)).out, "gone\n");
    } finally {
      p.close();
    }
  });
}

Deno.test("with bash: INT reaches the command, and a stopped job is not an ended one", async () => {
  const p = await place(true);
  try {
    const id = "j-000000000004";
    await launch(p.env, id, "trap 'echo got-int; exit 7' INT; sleep 305 & wait; sleep 1; echo resumed");
    const pid = await until(() => file(p.home, id, "pid"));
    const group = Number(pid.split(" ")[1]);
    await sh(`kill -s STOP -- -${group}; sleep 0.3; kill -s CONT -- -${group}`, p.env);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await file(p.home, id, "exit"), null, "a stop was written as the end");
    assert.equal((await sh(signalScript(id, "INT"), p.env)).code, 0);
    const exit = await until(() => file(p.home, id, "exit"));
    assert.match(exit, /^7 /);
    assert.equal(await file(p.home, id, "out"), "got-int\n");
    await sh(`kill -s KILL -- -${group} 2>/dev/null; :`, p.env); // sleep 305 ignored INT (it runs in the background)
  } finally {
    p.close();
  }
});

Deno.test("a group that is no longer the job's is never signalled, and the job reads as not running", async () => {
  const p = await place(true);
  // A group leader of this user's that is not the job's (setsid execs in place: its PID is its group).
  const stranger = new Deno.Command("/usr/bin/setsid", { args: ["sleep", "306"], stdin: "null" }).spawn();
  try {
    // A job whose runner died before writing the status; its group id now names someone else.
    const id = "j-000000000005";
    const dir = `${p.home}/${JOBS_DIR}/${id}`;
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(`${dir}/meta`, "{}\n");
    const boot = (await Deno.readTextFile("/proc/sys/kernel/random/boot_id")).trim();
    await Deno.writeTextFile(`${dir}/pid`, `${stranger.pid} ${stranger.pid} 0 ${stranger.pid} ${boot}\n`);
    assert.equal((await sh(aliveScript(id), p.env)).code, 1);
    assert.equal((await sh(signalScript(id, "KILL"), p.env)).code, 6);
    assert.equal((await sh(cancelScript(id, 0.2), p.env)).code, 0);
    assert.equal((await sh(`kill -0 ${stranger.pid} && echo alive`, p.env)).out, "alive\n");
    assert.equal((await sh(removeScript(id), p.env)).code, 0, "a lost job can be removed");
    assert.equal(exists(dir), false);
  } finally {
    stranger.kill("SIGKILL");
    await stranger.status;
    p.close();
  }
});

Deno.test("cleanup removes old job directories and nothing else", async () => {
  const p = await place(true);
  const outside = await Deno.makeTempDir({ prefix: "mcp-jobs-victim-" });
  try {
    const base = `${p.home}/${JOBS_DIR}`;
    const old = async (path: string) => await new Deno.Command("touch", { args: ["-d", "-3 hours", path] }).output();
    // An old ended job, a fresh one, and a planted name that splits into an outside path.
    for (const id of ["j-0000000000a1", "j-0000000000a2"]) {
      await Deno.mkdir(`${base}/${id}`, { recursive: true });
      await Deno.writeTextFile(`${base}/${id}/meta`, "{}\n");
      await Deno.writeTextFile(`${base}/${id}/exit`, "0 0\n");
    }
    await old(`${base}/j-0000000000a1/exit`);
    const planted = `${base}/x\n${outside}/j-000000000009`;
    await Deno.mkdir(planted, { recursive: true });
    await Deno.writeTextFile(`${planted}/exit`, "0 0\n");
    await old(`${planted}/exit`);
    await Deno.mkdir(`${outside}/j-000000000009`);
    await Deno.writeTextFile(`${outside}/j-000000000009/exit`, "0 0\n");
    await old(`${outside}/j-000000000009/exit`);
    await sh(listScript(60), p.env);
    assert.equal(exists(`${base}/j-0000000000a1`), false, "the old job stayed");
    assert.equal(exists(`${base}/j-0000000000a2`), true, "the fresh job went");
    assert.equal(exists(`${outside}/j-000000000009`), true, "something outside the jobs directory went");
  } finally {
    await Deno.remove(outside, { recursive: true });
    p.close();
  }
});

Deno.test("listScript(null) lists without removing anything (a read-only host's policy)", () => {
  assert.match(listScript(60), /rm -rf/);
  assert.doesNotMatch(listScript(null), /rm /);
});

Deno.test("a job whose command group is gone but whose runner is still writing its exit reads as alive, not lost", async () => {
  const p = await place(true);
  const id = "j-0000000000aa";
  const dir = `${p.home}/${JOBS_DIR}/${id}`;
  // The runner: a live process carrying the job's mark, in a group of its own.
  const runner = new Deno.Command("/usr/bin/setsid", {
    args: ["/bin/sleep", "30"],
    env: { MCP_REMOTE_SSH_JOB: id },
    clearEnv: true,
  }).spawn();
  try {
    // The mark is in its environment only once setsid has exec'd (before, /proc shows ours): on a busy
    // machine the check below could otherwise look first.
    for (let i = 0; i < 200; i++) {
      const environ = await Deno.readTextFile(`/proc/${runner.pid}/environ`).catch(() => "");
      if (environ.includes(`MCP_REMOTE_SSH_JOB=${id}`)) break;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    await Deno.mkdir(dir, { recursive: true });
    const boot = await Deno.readTextFile("/proc/sys/kernel/random/boot_id").then((t) => t.trim(), () => "-");
    // The command's group (999999) is gone; no `exit` yet: the moment between the command's end and the runner's write.
    await Deno.writeTextFile(`${dir}/pid`, `999999 999999 ${Math.floor(Date.now() / 1000)} ${runner.pid} ${boot}\n`);
    await Deno.writeTextFile(`${dir}/meta`, "{}\n");
    assert.equal((await sh(aliveScript(id), p.env)).code, 0, "read as ended without a status (lost)");
    runner.kill("SIGKILL");
    await runner.status;
    assert.notEqual((await sh(aliveScript(id), p.env)).code, 0, "a job with neither group nor runner is not alive");
  } finally {
    try {
      runner.kill("SIGKILL");
    } catch { /* already gone */ }
    await runner.status;
    p.close();
  }
});
