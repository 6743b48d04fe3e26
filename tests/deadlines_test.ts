/**
 * End to end, under the shipped permissions: a call that gives up early
 * never costs the session a channel slot, and no local file named by an
 * agent or the configuration can hang or swell the server (issue 13, items
 * 1 and 3).
 */

import assert from "node:assert/strict";
import { call, callOk, connectWithKey, runArgs, startServer, type TestServer } from "./fixtures/mcp.ts";
import { startInProcessServer } from "./fixtures/in_process.ts";
import { sshdAvailable, startSshd } from "./fixtures/sshd.ts";
import { exists, run, tempDir, waitFor, within } from "./fixtures/process.ts";
import { withRounds } from "./fixtures/key_rounds.ts";

const skip = !sshdAvailable();
if (skip) console.warn("SKIP deadline tests: no sshd on this machine (apt-get install openssh-server)");

async function peakRssMiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(status.match(/^VmHWM:\s+(\d+) kB/m)![1]) / 1024;
}

Deno.test({
  name: "ten tiny-timeout execs leave no slot behind: 25 parallel commands, a shell and a first file call all answer",
  ignore: skip,
}, async () => {
  await using sshd = await startSshd({ maxSessions: 10 });
  const kh = await sshd.writeKnownHosts();
  await using server = await startInProcessServer({ args: ["--known-hosts", kh] });
  const c = server.client;
  const id = await connectWithKey(c, sshd);

  // Each gives up while its channel is still opening (the reproduction).
  for (const timeout of [1e-9, 1e-9, 1e-9, 1e-9, 1e-9, 0.001, 0.001, 0.001, 0.001, 0.001]) {
    const r = await within(
      30_000,
      `ssh_execute timeout ${timeout}`,
      call(c, "ssh_execute", {
        session_id: id,
        command: "true",
        timeout,
      }),
    );
    assert.equal(r.isError, false, r.text);
    assert.ok(r.structured.timed_out || r.structured.exit_code === 0, r.text);
  }

  // 25 at once on 10 slots: every one must run. With leaked slots they all sat out their timeout.
  const results = await within(
    90_000,
    "25 parallel ssh_execute",
    Promise.all(
      Array.from(
        { length: 25 },
        (_, i) => call(c, "ssh_execute", { session_id: id, command: `echo run-${i}`, timeout: 45 }),
      ),
    ),
  );
  results.forEach((r, i) => {
    assert.equal(r.isError, false, r.text);
    assert.equal(r.structured.timed_out, false, `command ${i}: ${r.text}`);
    assert.equal(r.structured.exit_code, 0, r.text);
    assert.equal(r.structured.stdout, `run-${i}\n`);
  });

  const shell = await within(30_000, "ssh_shell_open", call(c, "ssh_shell_open", { session_id: id }));
  assert.equal(shell.isError, false, shell.text);
  const dir = await within(
    30_000,
    "first file call",
    call(c, "ssh_list_remote_dir", { session_id: id, remote_path: "/" }),
  );
  assert.equal(dir.isError, false, dir.text);
  await callOk(c, "ssh_shell_close", { session_id: id, shell_id: shell.structured.shell_id });
});

Deno.test({
  name: "a call that times out waiting for a slot says its command never ran, and frees its place",
  ignore: skip,
}, async () => {
  await using sshd = await startSshd({ maxSessions: 10 });
  const kh = await sshd.writeKnownHosts();
  await using dir = await tempDir("mcp-slot-");
  const config = `${dir.path}/config.json`;
  await Deno.writeTextFile(config, JSON.stringify({ max_channels_per_session: 1 }));
  await using server = await startInProcessServer({ args: ["--known-hosts", kh, "--config", config] });
  const c = server.client;
  const id = await connectWithKey(c, sshd);
  // sshd runs on this machine: the marker shows the holder has the one slot. The login user may not be ours.
  await Deno.chmod(dir.path, 0o777);
  const marker = `${dir.path}/holder-running`;
  const holder = call(c, "ssh_execute", { session_id: id, command: `touch '${marker}'; sleep 2`, timeout: 60 });
  await waitFor(() => exists(marker), "the holder to run");
  const queued = await within(
    30_000,
    "queued call",
    call(c, "ssh_execute", { session_id: id, command: "true", timeout: 0.2 }),
  );
  assert.equal(queued.structured.timed_out, true, queued.text);
  assert.match(queued.text, /before the command was sent: it never ran/);
  assert.equal((await holder).structured.exit_code, 0);
  const after = await within(
    30_000,
    "call after",
    call(c, "ssh_execute", { session_id: id, command: "echo ok", timeout: 30 }),
  );
  assert.equal(after.structured.stdout, "ok\n", after.text);
});

Deno.test({
  name: "file calls and shell opens, which have no timeout, wait for a held slot at most default_timeout",
  ignore: skip,
}, async () => {
  await using sshd = await startSshd({ maxSessions: 10 });
  const kh = await sshd.writeKnownHosts();
  await using dir = await tempDir("mcp-slot-");
  const config = `${dir.path}/config.json`;
  await Deno.writeTextFile(config, JSON.stringify({ max_channels_per_session: 1, default_timeout: 3 }));
  await using server = await startInProcessServer({ args: ["--known-hosts", kh, "--config", config] });
  const c = server.client;
  const id = await connectWithKey(c, sshd);
  // A shell holds the session's one slot until it is closed, which a client that never cancels may never do.
  await callOk(c, "ssh_shell_open", { session_id: id, shell_id: "holder" });
  const list = await within(30_000, "file call", call(c, "ssh_list_remote_dir", { session_id: id, remote_path: "/" }));
  assert.equal(list.isError, true, list.text);
  assert.match(list.text, /^\[SFTP_TIMEOUT\] No SFTP channel/, list.text);
  const shell = await within(30_000, "shell open", call(c, "ssh_shell_open", { session_id: id, shell_id: "second" }));
  assert.equal(shell.isError, true, shell.text);
  assert.match(shell.text, /^\[CHANNEL_OPEN_FAILED\] No channel for shell/, shell.text);
  // Nothing was left holding a place: once the holder goes, both work.
  await callOk(c, "ssh_shell_close", { session_id: id, shell_id: "holder" });
  const after = await within(
    30_000,
    "file call after",
    call(c, "ssh_list_remote_dir", { session_id: id, remote_path: "/" }),
  );
  assert.equal(after.isError, false, after.text);
});

Deno.test({
  name: "/dev/zero and a FIFO as private_key_path are refused at once; the server stays small and answers",
  ignore: skip,
}, async () => {
  await using sshd = await startSshd();
  const kh = await sshd.writeKnownHosts();
  await using dir = await tempDir("mcp-keys-");
  const fifo = `${dir.path}/key-fifo`;
  await mkfifo(fifo);
  const big = `${dir.path}/big-key`;
  await Deno.writeFile(big, new Uint8Array(2 * 1024 * 1024));
  await using server = await startServer({ args: ["--known-hosts", kh] });
  const c = server.client;
  const before = await peakRssMiB(server.pid!);
  const cases: [string, RegExp][] = [
    ["/dev/zero", /character device/],
    [fifo, /FIFO/],
    [big, /larger than 1 MiB/],
    [dir.path, /directory/],
  ];
  for (const [path, reason] of cases) {
    const r = await within(
      5_000 + 10_000,
      `ssh_connect with key ${path}`,
      call(c, "ssh_connect", {
        host: sshd.host,
        port: sshd.port,
        username: sshd.user,
        private_key_path: path,
        connect_timeout: 5,
      }),
    );
    assert.equal(r.code, "KEY_UNREADABLE", r.text);
    assert.ok(r.text.includes(path), r.text);
    assert.match(r.text, reason);
  }
  // Reading /dev/zero used to take the server past 1.5 GB; a key is a few KiB.
  const grown = (await peakRssMiB(server.pid!)) - before;
  assert.ok(grown < 64, `peak RSS grew by ${grown.toFixed(0)} MiB`);
  const list = await within(10_000, "ssh_list_sessions", callOk(c, "ssh_list_sessions"));
  assert.deepEqual(list.structured.sessions, []);
  // A real key still works on the same server.
  await connectWithKey(c, sshd);
});

Deno.test({
  name: "a key file claiming billions of bcrypt rounds is refused before decrypting; the server keeps answering",
  ignore: skip,
}, async () => {
  await using sshd = await startSshd();
  const kh = await sshd.writeKnownHosts();
  await using dir = await tempDir("mcp-kdf-");
  const out = await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "pw", "-C", "", "-f", `${dir.path}/k`]);
  assert.equal(out.code, 0);
  const key = `${dir.path}/k-rounds`;
  await Deno.writeTextFile(key, withRounds(await Deno.readTextFile(`${dir.path}/k`), 0xffffffff), { mode: 0o600 });
  await using server = await startInProcessServer({ args: ["--known-hosts", kh] });
  const c = server.client;
  const r = await within(
    5_000 + 10_000,
    "ssh_connect with the key",
    call(c, "ssh_connect", {
      host: sshd.host,
      port: sshd.port,
      username: sshd.user,
      private_key_path: key,
      passphrase: "pw",
      connect_timeout: 5,
    }),
  );
  assert.equal(r.code, "KEY_UNREADABLE", r.text);
  assert.match(r.text, /4294967295 bcrypt rounds/);
  await within(10_000, "ssh_list_sessions", callOk(c, "ssh_list_sessions"));
});

Deno.test({
  name: "cancelling ssh_connect ends the connect at once: the half-open socket is closed, not kept to its timeout",
  ignore: skip,
}, async () => {
  await using sshd = await startSshd();
  const kh = await sshd.writeKnownHosts();
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await using server = await startInProcessServer({ args: ["--known-hosts", kh] });
  const cancel = new AbortController();
  const connecting = server.client.callTool(
    {
      name: "ssh_connect",
      arguments: {
        host: "127.0.0.1",
        port: listener.addr.port,
        username: sshd.user,
        private_key_path: sshd.keys.ed25519.path,
        connect_timeout: 300,
      },
    },
    undefined,
    { signal: cancel.signal },
  ).catch(() => "cancelled");
  // A peer that accepts and never sends a banner: the connect waits in the handshake.
  const conn = await within(30_000, "the server's TCP connect", listener.accept());
  cancel.abort();
  assert.equal(await connecting, "cancelled");
  // The server hangs up once the cancel reaches it; before, the socket stayed for all of connect_timeout.
  const buf = new Uint8Array(4096);
  const eof = (async () => {
    while ((await conn.read(buf)) !== null) { /* the client's banner, then nothing */ }
  })();
  await within(20_000, "the server to close the cancelled connect's socket", eof);
  conn.close();
  const list = await callOk(server.client, "ssh_list_sessions");
  assert.deepEqual(list.structured.sessions, []);
});

Deno.test("a FIFO, a device or an oversized file as --config fails start-up with the reason", async () => {
  await using dir = await tempDir("mcp-config-");
  const fifo = `${dir.path}/config-fifo`;
  await mkfifo(fifo);
  const big = `${dir.path}/big.json`;
  await Deno.writeTextFile(big, `{"known_hosts": [${'"x",'.repeat(300_000)}"x"]}`);
  for (const [path, reason] of [[fifo, /FIFO/], ["/dev/zero", /character device/], [big, /larger than 1 MiB/]]) {
    const out = await startUp(["--config", path as string]);
    assert.equal(out.code, 2, out.stderr);
    assert.match(out.stderr, new RegExp(`Cannot read config file ${path}: `));
    assert.match(out.stderr, reason as RegExp);
  }
});

Deno.test({
  name: "a FIFO or /dev/zero as a known_hosts file is skipped with a warning, never read",
  ignore: skip,
}, async () => {
  await using sshd = await startSshd();
  const kh = await sshd.writeKnownHosts();
  await using dir = await tempDir("mcp-kh-");
  const fifo = `${dir.path}/kh-fifo`;
  await mkfifo(fifo);
  await using server: TestServer = await startInProcessServer({
    args: ["--known-hosts", fifo, "--known-hosts", "/dev/zero", "--known-hosts", kh],
  });
  const id = await within(30_000, "ssh_connect", connectWithKey(server.client, sshd));
  assert.ok(id);
  assert.match(server.stderr(), new RegExp(`Cannot read ${fifo}: it is a FIFO`));
  assert.match(server.stderr(), /Cannot read \/dev\/zero: it is a character device/);
});

/** Runs the server to its exit; kills it (and fails) if it has not exited within 30 s, so no hung server outlives the test. */
async function startUp(args: string[]): Promise<{ code: number; stderr: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: runArgs("main.ts", args),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const output = child.output();
  try {
    const out = await within(30_000, `start-up with ${args.join(" ")}`, output);
    return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
  } catch (error) {
    child.kill("SIGKILL");
    await output;
    throw error;
  }
}

async function mkfifo(path: string): Promise<void> {
  const out = await run("mkfifo", ["-m", "600", path]);
  if (out.code !== 0) throw new Error(`mkfifo failed: ${out.stderr}`);
}
