/**
 * The wrapper's scripts in the real shells installed here, without SSH: the
 * line a login shell gets, the script behind it, the process-group report,
 * and the kill script in every shell it may run in (dash needs `--` before a
 * negative PID; busybox refuses it). Shells that are missing are skipped.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type Delivery, killScript, MarkerScan, wrapCommand } from "./wrapper.ts";

const dec = new TextDecoder();

function installed(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

const BUSYBOX = ["/bin/busybox", "/usr/bin/busybox"].find(installed);
/** busybox picks its applet by argv[0]: a link named `sh`. */
const busyboxSh = BUSYBOX === undefined ? undefined : (() => {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-wrapper-test-" });
  Deno.chmodSync(dir, 0o755); // other users run it too
  Deno.symlinkSync(BUSYBOX, `${dir}/sh`);
  globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
  return `${dir}/sh`;
})();

const LOGIN_SHELLS = ["/bin/bash", "/bin/dash", "/usr/bin/zsh", "/usr/bin/fish", "/usr/bin/tcsh", "/usr/bin/csh"]
  .filter(installed).concat(busyboxSh === undefined ? [] : [busyboxSh]);
const POSIX_SHELLS = ["/bin/bash", "/bin/dash", "/usr/bin/zsh"].filter(installed)
  .concat(busyboxSh === undefined ? [] : [busyboxSh]);
/** What /bin/sh is on the systems we know: the kill script always runs in it. */
const SH_SHELLS = POSIX_SHELLS.filter((shell) => !shell.endsWith("zsh"));

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
  marker: ReturnType<MarkerScan["report"]>;
}

/** Runs the wrapped command as a login shell would: `shell -c <line>`, with the prefix on stdin. */
async function runWrapped(
  shell: string,
  delivery: Delivery,
  options: { command: string; cwd?: string; env?: Record<string, string>; stdin?: string },
  env: Record<string, string> = {},
): Promise<Ran> {
  const nonce = "t" + crypto.randomUUID().slice(0, 8);
  const w = wrapCommand({ ...options, nonce, delivery });
  const child = new Deno.Command(shell, {
    args: ["-c", w.commandLine],
    env: { SHELL: shell, ...env },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(w.stdinPrefix + (options.stdin ?? "")));
  await writer.close();
  const out = await child.output();
  const outMark = new MarkerScan(nonce);
  const errMark = new MarkerScan(nonce);
  const stdout = dec.decode(outMark.take(out.stdout)) + dec.decode(outMark.end());
  const stderr = dec.decode(errMark.take(out.stderr)) + dec.decode(errMark.end());
  return { code: out.code, stdout, stderr, marker: outMark.report() };
}

Deno.test("every login shell runs the hop line, and the POSIX ones the direct script, the same way", async (t) => {
  const env = { MCP_V: "a 'b' \"c\" $(id) `id` \\ !x %s\nline2" };
  const command = `cat; printf '%s|' "$MCP_V"; pwd; echo err >&2; exit 4`;
  const cases = [
    ...LOGIN_SHELLS.map((shell) => ({ shell, delivery: "hop" as const })),
    ...POSIX_SHELLS.map((shell) => ({ shell, delivery: "direct" as const })),
  ];
  for (const { shell, delivery } of cases) {
    await t.step(`${delivery} under ${shell}`, async () => {
      const r = await runWrapped(shell, delivery, { command, cwd: "/tmp", env, stdin: "in\n" });
      assert.deepEqual(
        [r.code, r.stdout, r.stderr],
        [4, `in\n${env.MCP_V}|/tmp\n`, "err\n"],
      );
      assert.equal(r.marker?.kind, "started");
      const bad = await runWrapped(shell, delivery, { command: "echo ran", cwd: "/no/such dir" });
      assert.equal(bad.marker?.kind, "cwd");
      assert.equal(bad.stdout, "");
      assert.notEqual(bad.code, 0);
    });
  }
});

Deno.test("a shell that leads no process group: setsid makes one, and without setsid the report says so", async () => {
  // Deno's children are not group leaders, as commands under Dropbear are not.
  const withSetsid = await runWrapped("/bin/sh", "hop", { command: 'read -r a b c d g r < /proc/$$/stat; echo "$g"' });
  assert.equal(withSetsid.marker?.kind === "started" && withSetsid.marker.group, "s");
  const pid = withSetsid.marker?.kind === "started" ? withSetsid.marker.pid : -1;
  assert.equal(withSetsid.stdout, `${pid}\n`, "the command does not lead its own group after setsid");
  const dir = Deno.makeTempDirSync();
  try {
    // A PATH without setsid (only what the script needs besides builtins).
    for (const tool of ["tr", "ps"]) Deno.symlinkSync(`/usr/bin/${tool}`, `${dir}/${tool}`);
    const without = await runWrapped("/bin/sh", "hop", { command: "echo hi" }, { PATH: dir });
    assert.equal(without.marker?.kind === "started" && without.marker.group, "n");
    assert.equal(without.stdout, "hi\n");
    // The caller's env comes last: its PATH, IFS or SHELL do not change how the wrapper works.
    for (const delivery of ["hop", "direct"] as const) {
      const env = { PATH: dir, IFS: "x", SHELL: "/nonexistent" };
      const r = await runWrapped("/bin/sh", delivery, { command: 'echo "$PATH $SHELL"', env });
      assert.equal(r.marker?.kind === "started" && r.marker.group, "s", `${delivery}: ${r.stderr}`);
      assert.equal(r.stdout, `${dir} /nonexistent\n`, r.stderr);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

const root = Deno.uid() === 0 && Deno.build.os === "linux";

/** Starts `sh -c script` in a session (and group) of its own as `user`; returns the group's id. */
async function groupOf(user: string, script: string): Promise<{ pgid: number; alive(): boolean }> {
  // setsid inside su: su itself (root) stays out of the group.
  const child = new Deno.Command("su", {
    args: [user, "-s", "/bin/sh", "-c", `exec setsid sh -c 'echo $$; ${script}'`],
    stdout: "piped",
    stderr: "null",
    stdin: "null",
  }).spawn();
  const reader = child.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  void child.stdout.cancel();
  child.status.then(() => {}, () => {});
  const pid = Number(dec.decode(value).trim());
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const pgid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
  const members = () =>
    [...Deno.readDirSync("/proc")].filter((e) => /^\d+$/.test(e.name)).some((e) => {
      try {
        const s = Deno.readTextFileSync(`/proc/${e.name}/stat`);
        const fields = s.slice(s.lastIndexOf(")") + 2).split(" ");
        return Number(fields[2]) === pgid && fields[0] !== "Z";
      } catch {
        return false;
      }
    });
  return { pgid, alive: members };
}

async function killAs(user: string, shell: string, script: string): Promise<number> {
  const out = await new Deno.Command("su", { args: [user, "-s", shell, "-c", script], stdin: "null" }).output();
  return out.code;
}

Deno.test({
  name: "the kill script ends a group of the same user in every /bin/sh it may run in, and says when it cannot",
  ignore: !root,
  fn: async (t) => {
    for (const shell of SH_SHELLS) {
      await t.step(shell, async () => {
        const own = await groupOf("nobody", "sleep 301 & sleep 302");
        assert.ok(own.alive());
        assert.equal(await killAs("nobody", shell, killScript(own.pgid, "g", 2)), 0);
        assert.equal(own.alive(), false, "processes of the group survived");
        // A group of root's processes: nobody may not signal them, so they are still there.
        const foreign = await groupOf("root", "sleep 303 & sleep 304");
        try {
          assert.equal(await killAs("nobody", shell, killScript(foreign.pgid, "g", 0.2)), 3);
          assert.ok(foreign.alive());
        } finally {
          await killAs("root", "/bin/sh", killScript(foreign.pgid, "g", 2));
        }
        assert.equal(foreign.alive(), false);
      });
    }
  },
});

Deno.test({
  name: "the kill script counts a zombie left in the group as gone (its parent may reap it late, or never)",
  ignore: !root || !installed("/usr/bin/python3"),
  fn: async () => {
    // The parent (outside the group) never reaps its child, which leads a group of its own.
    const parent = new Deno.Command("python3", {
      args: [
        "-c",
        "import os,time\npid=os.fork()\nif pid==0:\n os.setsid(); time.sleep(300)\nelse:\n print(pid, flush=True); time.sleep(60)",
      ],
      stdout: "piped",
      stdin: "null",
    }).spawn();
    try {
      const reader = parent.stdout.getReader();
      const pid = Number(dec.decode((await reader.read()).value).trim());
      reader.releaseLock();
      for (const shell of SH_SHELLS) {
        const out = await new Deno.Command(shell, { args: ["-c", killScript(pid, "g", 1)], stdin: "null" }).output();
        assert.equal(out.code, 0, `${shell}: the zombie counted as alive`);
      }
      const state = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1][0];
      assert.equal(state, "Z", "the child should be a zombie now");
    } finally {
      parent.kill("SIGKILL");
      await parent.status;
      await parent.stdout.cancel().catch(() => {});
    }
  },
});
