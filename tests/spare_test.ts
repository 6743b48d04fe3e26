/**
 * The spare: the shell a connection starts ahead for the next command (`ahead` in
 * lib/ssh/exec.ts, `startSpare` in lib/ssh/connection.ts): the next command
 * runs in it; it holds one slot of the channel budget and gives it back
 * whenever other work asks for a channel; one the server ended is never
 * used; closing the connection ends it. Driven on the SSH layer against a
 * real sshd, whose processes show which shell ran what.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { SshConnection } from "../lib/ssh/connection.ts";
import { execCommand, type ExecResult } from "../lib/ssh/exec.ts";
import { spareLine } from "../lib/ssh/wrapper.ts";
import { openConnection, readPid, type Sshd, sshdAvailable, startSshd } from "./fixtures/sshd.ts";
import { waitFor } from "./fixtures/process.ts";

const skip = !sshdAvailable();
if (skip) console.warn("SKIP spare shell tests: no sshd on this machine (apt-get install openssh-server)");

/** Runs `command` as ssh_execute does on an OpenSSH server with a POSIX login shell, a spare shell allowed. */
function run(conn: SshConnection, command: string, spare = true): Promise<ExecResult> {
  return execCommand(conn, {
    command,
    delivery: "direct",
    ownGroup: true,
    spare,
    timeoutMs: 30_000,
    maxOutputBytes: 65536,
  });
}

/** PIDs of the shells waiting for a script under this sshd (each test has its own sshd). */
function spares(sshd: Sshd): number[] {
  const master = readPid(`${sshd.dir}/sshd.pid`);
  assert.ok(master !== null, "sshd wrote no pid file");
  const found: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue;
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`);
      if (cmdline.includes("read -r __mcp") && underPid(Number(entry.name), master)) found.push(Number(entry.name));
    } catch { /* exited while we looked */ }
  }
  return found;
}

function underPid(pid: number, ancestor: number): boolean {
  for (let p = pid, i = 0; p > 1 && i < 20; i++) {
    const stat = Deno.readTextFileSync(`/proc/${p}/stat`);
    p = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (p === ancestor) return true;
  }
  return false;
}

/** Waits for exactly one spare shell and returns its PID. */
async function oneSpare(sshd: Sshd): Promise<number> {
  let pids: number[] = [];
  await waitFor(() => (pids = spares(sshd)).length === 1, "one spare shell");
  return pids[0];
}

function gone(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}

Deno.test({ name: "the next command runs in the shell started ahead for it", ignore: skip }, async () => {
  await using sshd = await startSshd();
  await using conn = await openConnection(sshd);
  assert.equal((await run(conn, "true")).exitCode, 0);
  const spare = await oneSpare(sshd);
  const r = await run(conn, "echo $$; echo err >&2; exit 3");
  assert.equal(r.stdout, `${spare}\n`, "the command ran in the spare shell");
  assert.equal(r.stderr, "err\n");
  assert.equal(r.exitCode, 3);
  assert.equal(r.markerMissing, false);
  // cwd and env reach it as in a fresh channel, newlines in values included.
  const second = await oneSpare(sshd);
  assert.notEqual(second, spare);
  const s = await execCommand(conn, {
    command: 'echo $$; printf "%s|%s" "$PWD" "$V"',
    delivery: "direct",
    ownGroup: true,
    spare: true,
    cwd: "/tmp",
    env: { V: "a\nb 'c'" },
    timeoutMs: 30_000,
    maxOutputBytes: 65536,
  });
  assert.equal(s.stdout, `${second}\n/tmp|a\nb 'c'`);
  // Stdin of the command's own goes through a fresh channel (a shell's `read` might take some of it).
  const third = await oneSpare(sshd);
  const i = await execCommand(conn, {
    command: "echo $$; cat",
    delivery: "direct",
    ownGroup: true,
    spare: true,
    stdin: "in\n",
    timeoutMs: 30_000,
    maxOutputBytes: 65536,
  });
  assert.notEqual(i.stdout, `${third}\nin\n`);
  assert.match(i.stdout, /^\d+\nin\n$/);
  // A new spare for the next one, in the same one slot; the used ones are gone.
  const next = await oneSpare(sshd);
  assert.ok(![spare, second, third].includes(next));
  await waitFor(() => gone(spare) && gone(second) && gone(third), "the used and retired spare shells exited");
  await waitFor(() => conn.channelSlots.inUse === 1, `one slot held (now ${conn.channelSlots.inUse})`);
});

Deno.test(
  { name: "any other channel asked for retires the spare, which gives its slot back", ignore: skip },
  async () => {
    await using sshd = await startSshd({ maxSessions: 2 });
    // Two slots: the spare takes one only while the other is free, and must give it back.
    await using conn = await openConnection(sshd, { maxChannels: 2 });
    assert.equal((await run(conn, "true")).exitCode, 0);
    const spare = await oneSpare(sshd);
    assert.equal(conn.channelSlots.inUse, 1);
    const signal = AbortSignal.timeout(15_000);
    const shell = await conn.shell({ term: "dumb", cols: 80, rows: 24 }, { signal });
    shell.channel.resume();
    shell.channel.stderr.resume();
    // The shell took the free slot; SFTP gets the spare's.
    const sftp = await conn.sftp({ signal });
    const names = await new Promise<string[]>((resolve, reject) =>
      sftp.readdir("/", (err, list) => err ? reject(err) : resolve(list.map((e) => e.filename)))
    );
    assert.ok(names.includes("tmp"));
    await waitFor(() => gone(spare), "the retired spare shell exited");
    shell.channel.end("exit\n");
    await shell.closed;
    sftp.end();
    await waitFor(() => conn.channelSlots.inUse === 0, `every slot back (now ${conn.channelSlots.inUse})`);
    // A command after SFTP work runs in a fresh shell, not one started before that work.
    const r = await run(conn, "echo $$");
    assert.notEqual(r.stdout, `${spare}\n`);
    assert.equal(r.exitCode, 0);
  },
);

Deno.test(
  {
    name: "an SFTP open the server refuses (MaxSessions) waits for a channel of ours, as a command does",
    ignore: skip,
  },
  async () => {
    // Our budget of 2 is above the server's 1: the server refuses the second channel, and the SFTP open
    // must wait for the command's close, not fail as if the server had no SFTP subsystem.
    await using sshd = await startSshd({ maxSessions: 1 });
    await using conn = await openConnection(sshd, { maxChannels: 2 });
    const busy = run(conn, "sleep 1; echo done", false);
    await waitFor(() => conn.channelSlots.inUse === 1, "the command holds the server's one session");
    const sftp = await conn.sftp({ signal: AbortSignal.timeout(15_000) });
    const names = await new Promise<string[]>((resolve, reject) =>
      sftp.readdir("/", (err, list) => err ? reject(err) : resolve(list.map((e) => e.filename)))
    );
    assert.ok(names.includes("tmp"));
    assert.equal((await busy).stdout, "done\n");
    sftp.end();
  },
);

Deno.test({ name: "a command never runs in a spare started before other work", ignore: skip }, async () => {
  await using sshd = await startSshd();
  await using conn = await openConnection(sshd);
  assert.equal((await run(conn, "true")).exitCode, 0);
  const spare = await oneSpare(sshd);
  // A file tool's SFTP call: what it wrote may be read by login files.
  await conn.sftp();
  const r = await run(conn, "echo $$");
  assert.notEqual(r.stdout, `${spare}\n`);
  await waitFor(() => gone(spare), "the stale spare shell exited");
});

Deno.test({ name: "25 parallel commands with a spare all succeed under MaxSessions 10", ignore: skip }, async () => {
  await using sshd = await startSshd({ maxSessions: 10 });
  await using conn = await openConnection(sshd, { maxChannels: 10 });
  for (let round = 0; round < 3; round++) {
    assert.equal((await run(conn, "true")).exitCode, 0);
    await oneSpare(sshd);
    // The spare holds one of the 10 slots: counted once, and given back to the queue.
    assert.deepEqual(conn.channelSlots, { inUse: 1, waiting: 0 });
    const results = await Promise.all(
      Array.from({ length: 25 }, (_, i) => run(conn, `sleep 0.2; echo ${i}`)),
    );
    results.forEach((r, i) => {
      assert.equal(r.exitCode, 0, r.stderr);
      assert.equal(r.stdout, `${i}\n`);
    });
    await waitFor(
      () => conn.channelSlots.inUse <= 1 && conn.channelSlots.waiting === 0,
      `slots back (now ${JSON.stringify(conn.channelSlots)})`,
    );
  }
});

Deno.test({ name: "a spare the server ended is not used: the next command still runs", ignore: skip }, async () => {
  await using sshd = await startSshd();
  await using conn = await openConnection(sshd);
  assert.equal((await run(conn, "true")).exitCode, 0);
  // Ended long before the call, and ended right before it (its exit status may still be on the way).
  for (const pause of [true, false, false, false, false]) {
    const spare = await oneSpare(sshd);
    Deno.kill(spare, "SIGKILL");
    if (pause) await waitFor(() => gone(spare), "the killed spare shell exited");
    const r = await run(conn, "echo ok");
    assert.equal(r.markerMissing, false, r.stderr);
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout, "ok\n");
  }
});

Deno.test({ name: "closing the connection ends the spare shell", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const conn = await openConnection(sshd);
  assert.equal((await run(conn, "true")).exitCode, 0);
  const spare = await oneSpare(sshd);
  await conn.close();
  await waitFor(() => gone(spare), "the spare shell exited");
});

Deno.test({ name: "without the spare option no spare is started", ignore: skip }, async () => {
  await using sshd = await startSshd();
  await using conn = await openConnection(sshd);
  assert.equal((await run(conn, "true", false)).exitCode, 0);
  // A spare would be asked for when the command's slot comes back, and take a slot in that turn.
  await waitFor(() => conn.channelSlots.inUse === 0, "the command's slot back");
  assert.deepEqual(spares(sshd), []);
  assert.equal(conn.channelSlots.inUse, 0);
  // The same with it: the slot comes back and a spare takes one.
  assert.equal((await run(conn, "true")).exitCode, 0);
  await oneSpare(sshd);
  assert.equal(conn.channelSlots.inUse, 1);
});

Deno.test({ name: "an idle spare outlives bash's TMOUT, which times its read out", ignore: skip }, async () => {
  // sshd's SetEnv gives every session's shell TMOUT=1: bash's `read` then gives up after 1 s.
  await using sshd = await startSshd({ extraConfig: "SetEnv TMOUT=1\n" });
  await using conn = await openConnection(sshd);
  assert.equal((await run(conn, "true")).exitCode, 0);
  const spare = await oneSpare(sshd);
  await new Promise((r) => setTimeout(r, 2500));
  const r = await run(conn, 'echo "$$ $TMOUT"');
  assert.equal(r.stdout, `${spare} 1\n`, "the command ran in the spare, still waiting after two timeouts");
});

Deno.test("the hop form of the spare's line is one line any login shell parses", () => {
  const line = spareLine("hop");
  const quoted = line.slice(line.indexOf("'") + 1, line.lastIndexOf("'"));
  assert.equal(line.split("'").length, 3, "one single-quoted string");
  assert.doesNotMatch(quoted, /['\\!\n]/);
  assert.ok(line.startsWith("exec /bin/sh -c '"));
  assert.equal(spareLine("direct"), quoted);
});

/** A directory the remote account can write to, and a way to read how often a command ran there. */
async function counter(): Promise<{ file: string; runs: () => string[]; [Symbol.asyncDispose](): Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "mcp-spare-" });
  await Deno.chmod(dir, 0o777);
  const file = `${dir}/runs`;
  return {
    file,
    runs: () => {
      try {
        return Deno.readTextFileSync(file).split("\n").filter((l) => l !== "");
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) return [];
        throw error;
      }
    },
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

for (
  const [what, login] of [
    ["sends all output to /dev/null", `exec >/dev/null 2>&1`],
    [
      "prints more than the marker search looks through, on both streams",
      `head -c 70000 /dev/zero | tr "\\\\0" x; head -c 70000 /dev/zero | tr "\\\\0" y >&2`,
    ],
  ]
) {
  Deno.test({ name: `a command in a spare whose login ${what} runs once`, ignore: skip }, async () => {
    // The markers never arrive (or arrive past the search): that proves nothing about the command.
    await using count = await counter();
    const ready = `${count.file}.ready`;
    const force = `${login}; : > ${ready}; eval "$SSH_ORIGINAL_COMMAND"`;
    await using sshd = await startSshd({ extraConfig: `ForceCommand ${force}\n` });
    await using conn = await openConnection(sshd);
    await run(conn, "true");
    await Deno.remove(ready);
    // The spare's login part is done (its output sent) when it makes the file again.
    await waitFor(() => exists(ready), "a spare past its login part");
    const r = await run(conn, `echo b >> ${count.file}`);
    assert.equal(r.markerMissing, true);
    assert.equal(r.exitCode, 0);
    assert.deepEqual(count.runs(), ["b"], "ran exactly once");
  });
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

Deno.test(
  { name: "a spare killed unread while a login file's child holds its output is no job", ignore: skip },
  async () => {
    // The login part leaves a child holding stdout and stderr: the dead spare's channel stays open.
    await using count = await counter();
    const ready = `${count.file}.ready`;
    const force = `sleep 20 & echo $$ > ${ready}; eval "$SSH_ORIGINAL_COMMAND"`;
    await using sshd = await startSshd({ extraConfig: `ForceCommand ${force}\n` });
    await using conn = await openConnection(sshd);
    await run(conn, "true");
    await Deno.remove(ready);
    await waitFor(() => exists(ready) && Deno.readTextFileSync(ready).endsWith("\n"), "a spare past its login part");
    const spare = Number(Deno.readTextFileSync(ready).trim());
    const call = execCommand(conn, {
      command: `echo b >> ${count.file}`,
      delivery: "direct",
      ownGroup: true,
      spare: true,
      handOver: true,
      timeoutMs: 30_000,
      maxOutputBytes: 65536,
    });
    // Taken in this turn (it is open and alive); killed before it can read its line.
    Deno.kill(spare, "SIGKILL");
    const r = await call;
    r.background?.close(); // the fresh channel's: the login file's child holds that one too
    assert.equal(r.signal, null, "not the dead spare's channel, adopted as a job");
    assert.equal(r.exitCode, 0);
    assert.equal(r.markerMissing, false);
    assert.deepEqual(count.runs(), ["b"], "ran once, in a fresh channel");
  },
);

Deno.test({ name: "a spare killed in the middle of its command does not run it again", ignore: skip }, async () => {
  await using sshd = await startSshd();
  await using conn = await openConnection(sshd);
  await using count = await counter();
  await run(conn, "true");
  const spare = await oneSpare(sshd);
  const call = run(conn, `echo $$ >> ${count.file}; sleep 30`);
  await waitFor(() => count.runs().length > 0, "the command started");
  assert.deepEqual(count.runs(), [`${spare}`]);
  Deno.kill(spare, "SIGKILL");
  const r = await call;
  assert.equal(r.signal, "SIGKILL");
  assert.equal(r.markerMissing, false);
  assert.deepEqual(count.runs(), [`${spare}`], "ran exactly once");
});

Deno.test({ name: "the hop form of the spare runs the command in /bin/sh", ignore: skip }, async () => {
  await using sshd = await startSshd();
  await using conn = await openConnection(sshd);
  const hop = (command: string) =>
    execCommand(conn, { command, delivery: "hop", spare: true, cwd: "/tmp", timeoutMs: 30_000, maxOutputBytes: 65536 });
  assert.equal((await hop("true")).exitCode, 0);
  const spare = await oneSpare(sshd);
  const r = await hop('echo "$$ $PWD"; exit 4');
  assert.equal(r.stdout, `${spare} /tmp\n`);
  assert.equal(r.exitCode, 4);
  assert.equal(r.markerMissing, false);
  // The login shell execs /bin/sh, which then waits for its line.
  const next = await oneSpare(sshd);
  await waitFor(() => Deno.readTextFileSync(`/proc/${next}/cmdline`).startsWith("/bin/sh\0-c\0"), "/bin/sh waiting");
});

Deno.test(
  { name: "a password held back for after the marker reaches the command in a spare", ignore: skip },
  async () => {
    await using sshd = await startSshd();
    await using conn = await openConnection(sshd);
    await run(conn, "true");
    const spare = await oneSpare(sshd);
    const r = await execCommand(conn, {
      command: 'IFS= read -r p; echo "$$ got $p"; cat',
      delivery: "direct",
      ownGroup: true,
      spare: true,
      stdin: "secret\n",
      stdinAfterStart: true,
      timeoutMs: 30_000,
      maxOutputBytes: 65536,
    });
    assert.equal(r.stdout, `${spare} got secret\n`, "ran in the spare, stdin closed after the password");
    assert.equal(r.exitCode, 0);
  },
);

Deno.test({ name: "a command in a spare that times out or is cancelled is killed", ignore: skip }, async () => {
  await using sshd = await startSshd();
  await using conn = await openConnection(sshd);
  await run(conn, "true");
  let spare = await oneSpare(sshd);
  const late = await execCommand(conn, {
    command: "echo $$; sleep 109 & sleep 109",
    delivery: "direct",
    ownGroup: true,
    spare: true,
    timeoutMs: 1500,
    maxOutputBytes: 65536,
  });
  assert.equal(late.stdout, `${spare}\n`);
  assert.equal(late.timedOut, true);
  assert.equal(late.killConfirmed, true);
  spare = await oneSpare(sshd);
  const cancel = new AbortController();
  const call = execCommand(conn, {
    command: "echo $$; sleep 109 & sleep 109",
    delivery: "direct",
    ownGroup: true,
    spare: true,
    signal: cancel.signal,
    timeoutMs: 30_000,
    maxOutputBytes: 65536,
    onOutput: () => cancel.abort(),
  });
  await assert.rejects(call, (e: Error & { code?: string }) => {
    assert.equal(e.code, "CANCELLED");
    assert.match(e.message, /was killed/);
    return true;
  });
  await waitFor(() => gone(spare), "the cancelled spare shell exited");
});

Deno.test({ name: "a spare started while a file was being written is not used", ignore: skip }, async () => {
  await using sshd = await startSshd();
  await using conn = await openConnection(sshd);
  await using count = await counter();
  await run(conn, "true");
  await oneSpare(sshd);
  const sftp = await conn.sftp();
  const call = <T>(send: (cb: (err: Error | null | undefined, value: T) => void) => void) =>
    new Promise<T>((resolve, reject) => send((err, value) => err ? reject(err) : resolve(value)));
  // Reading leaves a spare alone.
  await run(conn, "true");
  const reader = await oneSpare(sshd);
  await call((cb) => sftp.stat("/tmp", cb));
  assert.equal((await run(conn, "echo $$")).stdout, `${reader}\n`);
  const before = await oneSpare(sshd);
  // Opening a file to write retires the spare...
  const handle = await call<Buffer>((cb) => sftp.open(count.file, "w", cb));
  await waitFor(() => gone(before), "the spare from before the write exited");
  // ...and a spare started while the write is in progress (a command ended meanwhile)...
  assert.equal((await run(conn, "echo $$")).stdout.trim() === `${before}`, false);
  const started = await oneSpare(sshd);
  await call((cb) => sftp.write(handle, Buffer.from("new\n"), 0, 4, 0, (err) => cb(err, undefined)));
  await call((cb) => sftp.close(handle, (err) => cb(err, undefined)));
  // ...leaves the next command to a shell started after it.
  const r = await run(conn, "echo $$");
  assert.notEqual(r.stdout, `${started}\n`);
  await waitFor(() => gone(started), "the stale spare shell exited");
});

Deno.test({ name: "no spare is started once the connection is closing", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const conn = await openConnection(sshd);
  const closing = conn.close();
  conn.startSpare(spareLine("direct"));
  assert.equal(conn.channelSlots.inUse, 0);
  await closing;
});

Deno.test(
  { name: "a spare's read cut by TMOUT in the middle of a line runs nothing of it", ignore: skip },
  async () => {
    // bash's `read` times out with part of the line read: the rest alone would run without its `cd`.
    const child = new Deno.Command("bash", {
      args: ["-c", spareLine("direct")],
      env: { TMOUT: "1" },
      cwd: "/tmp",
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode("printf M >&2; cd /nonexistent-mcp || exit 1; "));
    await new Promise((r) => setTimeout(r, 1500)); // past TMOUT: the read gives up mid-line
    await writer.write(new TextEncoder().encode("echo RAN-IN-$PWD\n")).catch(() => {});
    await writer.close().catch(() => {});
    const out = await child.output();
    assert.equal(new TextDecoder().decode(out.stdout), "");
    assert.equal(out.code, 0);
  },
);
