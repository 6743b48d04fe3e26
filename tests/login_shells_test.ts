/**
 * ssh_execute keeps its promises whatever the account's login shell is
 * (bash, dash, zsh, fish, tcsh, busybox sh) and on Dropbear as well as
 * OpenSSH: exit codes, separate streams, cwd (a bad one is an error and
 * nothing runs), env, stdin, a timeout and a cancel that kill the whole
 * process tree (a forked child too), and sudo. Each account is the suite's
 * own, made for the test and removed after it (needs root).
 *
 * @module
 */

import assert from "node:assert/strict";
import { joinTestAccount, type TestAccount, writeHomeFile } from "./fixtures/account.ts";
import { dropbearAvailable, startDropbear } from "./fixtures/dropbear.ts";
import { call, callOk, connectAs, startServer, type TestServer } from "./fixtures/mcp.ts";
import { exists } from "./fixtures/process.ts";
import { sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const root = Deno.uid() === 0 && Deno.build.os === "linux";
const skip = !root || !sshdAvailable();
if (!root) console.warn("SKIP login shell tests: they make accounts, which needs root on Linux");

/** A login shell to try, and the file name busybox needs to run as sh. */
const SHELLS = [
  { name: "bash", path: "/bin/bash" },
  { name: "dash", path: "/bin/dash" },
  { name: "zsh", path: "/usr/bin/zsh" },
  { name: "fish", path: "/usr/bin/fish" },
  { name: "tcsh", path: "/usr/bin/tcsh" },
  { name: "busybox", path: "busybox" },
] as const;

/** Sleep durations of this run: another run of the suite on the machine uses others. */
const BASE = 1000 + Math.floor(Math.random() * 8000);

/** What a shell says it is, from inside a command: `bash`, `zsh`, or `` for the others. */
const WHICH_SHELL = 'echo "${BASH_VERSION:+bash}${ZSH_VERSION:+zsh}|"';

/** Processes on this machine (the test's sshd is local) whose command line is exactly `args`. */
function localProcesses(args: string): number {
  let count = 0;
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).split("\0").filter((a) => a !== "");
      if (cmdline.join(" ") === args) count++;
    } catch {
      // exited meanwhile
    }
  }
  return count;
}

async function until(what: string, test: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!test()) {
    if (Date.now() > end) throw new Error(`timed out waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Makes busybox a login shell: it picks its applet from argv[0], so it needs a link named `sh`. */
async function busyboxShell(): Promise<{ path: string; [Symbol.asyncDispose](): Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "mcp-rssh-busybox-" });
  await Deno.chmod(dir, 0o755);
  const busybox = exists("/bin/busybox") ? "/bin/busybox" : "/usr/bin/busybox";
  await Deno.symlink(busybox, `${dir}/sh`);
  return { path: `${dir}/sh`, [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
}

/**
 * The whole sequence on one account. `n` makes its sleep durations unique, so processes of one
 * case are never taken for another's.
 */
async function runSequence(
  server: TestServer,
  target: { host: string; port: number; key: string },
  account: TestAccount,
  shellPath: string,
  n: number,
  expectGroup: "own" | "setsid",
): Promise<void> {
  const c = server.client;
  const connected = await connectAs(c, target, account.name, target.key);
  const remote = connected.structured.remote;
  assert.equal(remote.login_shell, shellPath, connected.text);
  assert.equal(remote.exec, "posix", connected.text);
  assert.equal(remote.os, "Linux");
  assert.equal(remote.process_group, expectGroup, connected.text);
  assert.equal(remote.login_output, undefined, connected.text);
  const id = connected.structured.session_id;
  const run = (command: string, extra: Record<string, unknown> = {}) =>
    callOk(c, "ssh_execute", { session_id: id, command, ...extra });

  // Exit codes and separate streams.
  const r = await run("echo out; echo err >&2; exit 3");
  assert.deepEqual(
    [r.structured.exit_code, r.structured.stdout, r.structured.stderr, r.structured.warning],
    [3, "out\n", "err\n", undefined],
    r.text,
  );

  // cwd: a good one is used; a bad one is an error and the command does not run.
  assert.equal((await run("pwd", { cwd: "/tmp" })).structured.stdout, "/tmp\n");
  const flag = `/tmp/mcp-rssh-ran-${n}-${crypto.randomUUID()}`;
  const bad = await call(c, "ssh_execute", { session_id: id, command: `touch ${flag}`, cwd: "/no/such dir" });
  assert.equal(bad.code, "CWD_FAILED", bad.text);
  assert.equal(exists(flag), false, "the command ran in another directory");

  // env values and stdin arrive literally, newlines and quotes included.
  const value = "a 'b' \"c\" $(id) `id` \\ !x\nline2";
  const io = await run('cat; printf "%s|" "$MCP_V"', { env: { MCP_V: value }, stdin: "in\n" });
  assert.equal(io.structured.stdout, `in\n${value}|`);

  // The command runs in the login shell when that takes POSIX syntax, else in /bin/sh; a
  // command too big for one exec request or argument (140 KB in UTF-8) runs in the same shell.
  const expected = `${/bash$/.test(shellPath) ? "bash" : /zsh$/.test(shellPath) ? "zsh" : ""}|\n`;
  assert.equal((await run(WHICH_SHELL)).structured.stdout, expected);
  const big = await run(`${WHICH_SHELL} # ${"é".repeat(70_000)}`);
  assert.equal(big.structured.stdout, expected, big.text.slice(0, 500));

  // A timeout kills the whole tree: the shell, its foreground child and a forked background one,
  // whatever IFS the caller exports (it must not steer the wrapper).
  const bg = `sleep ${BASE + 10 * n}`;
  const fg = `sleep ${BASE + 10 * n + 1}`;
  const timed = await run(`(${bg} &); ${fg}`, { timeout: 2, env: { IFS: "s-" } });
  assert.equal(timed.structured.timed_out, true, timed.text);
  assert.equal(timed.structured.warning, undefined, timed.text);
  await until(`${bg} and ${fg} gone after the timeout`, () => localProcesses(bg) + localProcesses(fg) === 0);

  // A cancel does the same.
  const cancelled = `sleep ${BASE + 10 * n + 2}`;
  const ac = new AbortController();
  const pending = c.callTool(
    { name: "ssh_execute", arguments: { session_id: id, command: `(${cancelled} &); ${cancelled}` } },
    undefined,
    { signal: ac.signal },
  );
  await until(`${cancelled} started`, () => localProcesses(cancelled) === 2);
  ac.abort("test cancels");
  await assert.rejects(pending);
  await until(`${cancelled} gone after the cancel`, () => localProcesses(cancelled) === 0);

  // sudo, with the password on stdin.
  const sudo = await callOk(c, "ssh_sudo_execute", { session_id: id, command: "id -u", password: account.password });
  assert.equal(sudo.structured.stdout, "0\n", sudo.text);
  await callOk(c, "ssh_close_session", { session_id: id });
}

Deno.test({ name: "ssh_execute under every common login shell, on OpenSSH", ignore: skip }, async (t) => {
  await using sshd = await startSshd();
  const kh = await sshd.writeKnownHosts();
  // Processes, as for the Dropbear test below: its /proc polls would share an in-process server's event loop, and
  // there a cancel on Dropbear under load took longer than the 10 s they allow (once, in a full run).
  await using server = await startServer({ args: ["--known-hosts", kh] });
  await using busybox = await busyboxShell();
  for (const [i, shell] of SHELLS.entries()) {
    const path = shell.name === "busybox" ? busybox.path : shell.path;
    await t.step(`${shell.name} (${path})`, async () => {
      const account = await joinTestAccount({ name: `mcp-rssh-${shell.name}`, shell: path });
      try {
        assert.ok(account.password !== null, account.skipReason ?? "");
        if (shell.name === "fish") {
          // fish users often point SHELL at bash for other tools: the login shell is still fish.
          await writeHomeFile(account, ".config/fish/config.fish", "set -gx SHELL /bin/bash\n");
        }
        await runSequence(
          server,
          { host: sshd.host, port: sshd.port, key: sshd.keys.ed25519.path },
          account,
          path,
          i,
          "own",
        );
      } finally {
        account.leave();
      }
    });
  }
});

Deno.test({
  name: "ssh_execute on Dropbear, which gives commands no process group",
  ignore: skip || !dropbearAvailable(),
}, async (t) => {
  for (const [i, shell] of [SHELLS[0], SHELLS[3]].entries()) {
    await t.step(`${shell.name} (${shell.path})`, async () => {
      const account = await joinTestAccount({ name: `mcp-rssh-db${shell.name}`, shell: shell.path });
      try {
        await using dropbear = await startDropbear({ user: account });
        const kh = await dropbear.writeKnownHosts();
        await using server = await startServer({ args: ["--known-hosts", kh] });
        const target = { host: dropbear.host, port: dropbear.port, key: dropbear.key.path };
        await runSequence(server, target, account, shell.path, 20 + i, "setsid");
      } finally {
        account.leave();
      }
    });
  }
});
