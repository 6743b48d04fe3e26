/**
 * End to end: ssh_execute_many through the real server (`-P`) against one
 * real sshd listening on twenty ports, each port a "host". Host targets
 * authenticate through an ssh-agent given to the server; session targets
 * are opened first with ssh_connect.
 */

import assert from "node:assert/strict";
import { call, callOk, connectWithKey, type TestServer } from "./fixtures/mcp.ts";
import { startInProcessServer } from "./fixtures/in_process.ts";
import {
  type Agent,
  freePort,
  freePorts,
  readsBanner,
  type Sshd,
  sshdAvailable,
  startAgent,
  startSshd,
} from "./fixtures/sshd.ts";
import { run, tempDir, waitFor, within } from "./fixtures/process.ts";

const skip = !sshdAvailable();
if (skip) console.warn("SKIP fan-out tests: no sshd on this machine (apt-get install openssh-server)");

const HOSTS = 20;
const CALL_DEADLINE_MS = 120_000;

// sshd listens on at most 16 sockets (MAX_LISTEN_SOCKS): two servers of ten ports each.
const SERVERS = 2;

/** One host: a port of one of the servers. */
interface Host {
  sshd: Sshd;
  port: number;
  /** `user@127.0.0.1:port`, as a target. */
  target: string;
}

/** What the tests run against: `HOSTS` ports on `SERVERS` sshds, all answering, and a known_hosts file for them. */
interface Hosts extends AsyncDisposable {
  servers: Sshd[];
  hosts: Host[];
  knownHosts: string;
  /** The agent holding every server's client key. */
  agent: Agent;
  /** Per-connection sshd processes of every server. */
  childPids(): Promise<number[]>;
}

async function startHosts(): Promise<Hosts> {
  const servers: Sshd[] = [];
  const stop = async () => {
    await Promise.all(servers.map((s) => s.stop()));
  };
  try {
    const hosts: Host[] = [];
    for (let i = 0; i < SERVERS; i++) {
      const extra = freePorts(HOSTS / SERVERS - 1);
      // Port lines before the fixture's ListenAddress: sshd listens on every one of them.
      const sshd = await startSshd({
        maxStartups: "200:30:300",
        extraConfig: extra.map((p) => `Port ${p}\n`).join(""),
      });
      servers.push(sshd);
      for (const port of [sshd.port, ...extra]) {
        // A port another process took between freePorts() and sshd's bind would be refused: fail clearly.
        assert.ok(await readsBanner(sshd.host, port), `sshd does not answer on port ${port}:\n${sshd.logs()}`);
        hosts.push({ sshd, port, target: `${sshd.user}@${sshd.host}:${port}` });
      }
    }
    const knownHosts = `${servers[0].dir}/known_hosts_all`;
    const lines = hosts.flatMap((h) => h.sshd.hostKeys.map((k) => `[${h.sshd.host}]:${h.port} ${k.publicKeyLine}\n`));
    await Deno.writeTextFile(knownHosts, lines.join(""), { mode: 0o600 });
    const agent = await startAgent(servers.map((s) => s.keys.ed25519.path));
    return {
      servers,
      hosts,
      knownHosts,
      agent,
      childPids: async () => (await Promise.all(servers.map((s) => s.childPids()))).flat(),
      [Symbol.asyncDispose]: async () => {
        await agent.stop();
        await stop();
      },
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function startFanoutServer(knownHosts: string, agentSocket: string): Promise<TestServer> {
  return await startInProcessServer({ args: ["--known-hosts", knownHosts], env: { SSH_AUTH_SOCK: agentSocket } });
}

/** Processes of `user` whose whole command line is `commandLine` (they run on this machine: sshd is local). */
async function processes(user: string, commandLine: string): Promise<number> {
  const r = await run("pgrep", ["-c", "-u", user, "-xf", commandLine], { check: false });
  return Number(r.stdout.trim() || "0");
}

/** Kills what a failed run left of `commandLine` (a marker unique to the test), so no test leaves it running. */
async function killLeft(user: string, commandLine: string): Promise<void> {
  const r = await run("pgrep", ["-u", user, "-xf", commandLine], { check: false });
  for (const pid of r.stdout.split("\n").filter((line) => line !== "").map(Number)) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
}

async function sessionIds(server: TestServer): Promise<string[]> {
  const r = await callOk(server.client, "ssh_list_sessions");
  return r.structured.sessions.map((x: { session_id: string }) => x.session_id).sort();
}

Deno.test({
  name: "ssh_execute_many runs on 20 hosts: failures and slow hosts are per host, outcomes grouped",
  ignore: skip,
}, async () => {
  await using all = await startHosts();
  const { hosts } = all;
  const user = hosts[0].sshd.user;
  await using server = await startFanoutServer(all.knownHosts, all.agent.socket);
  const c = server.client;

  // Two session targets, and one open session that a host target must reuse.
  const sessions = [];
  for (const h of hosts.slice(0, 3)) sessions.push(await connectWithKey(c, { ...h.sshd, port: h.port }));
  const before = await sessionIds(server);
  const pidsBefore = new Set(await all.childPids());

  const refused = `${user}@127.0.0.1:${freePort()}`; // nothing listens there
  const [slow, odd] = [hosts[5], hosts[14]];
  const marker = `sleep 301.${Math.floor(Math.random() * 1e6)}`;
  await using _left = { [Symbol.asyncDispose]: () => killLeft(user, marker) };
  const targets = [sessions[0], sessions[1], ...hosts.slice(2).map((h) => h.target), refused];
  // What each port prints, from the server side of the connection (the last field of SSH_CONNECTION).
  const command = `p=\${SSH_CONNECTION##* }; case $p in ${slow.port}) echo begun; ${marker};; ` +
    `${odd.port}) echo odd; echo oops >&2; exit 3;; *) echo same;; esac`;

  const r = await within(
    CALL_DEADLINE_MS,
    "ssh_execute_many",
    callOk(c, "ssh_execute_many", { targets, command, timeout: 8 }, { timeout: CALL_DEADLINE_MS }),
  );
  const st = r.structured;
  const byTarget = new Map(st.results.map((x: { target: string }) => [x.target, x]));
  // deno-lint-ignore no-explicit-any
  const of = (t: string): any => byTarget.get(t);

  assert.deepEqual(st.results.map((x: { target: string }) => x.target), targets, "results in the order of targets");
  assert.deepEqual([st.hosts, st.ok, st.nonzero, st.failed], [21, 18, 1, 2], r.text);

  // The slow host: killed at its timeout, its partial output kept; it no longer runs.
  const slowResult = of(slow.target);
  assert.equal(slowResult.timed_out, true);
  assert.equal(slowResult.error_code, "COMMAND_TIMEOUT");
  assert.equal(slowResult.stdout, "begun\n");
  assert.match(slowResult.error, /remote processes killed/);
  await waitFor(async () => await processes(user, marker) === 0, "the timed-out command to be gone");

  const refusedResult = of(refused);
  assert.equal(refusedResult.error_code, "CONNECT_REFUSED", refusedResult.error);
  assert.equal(refusedResult.host, refused);
  assert.equal(refusedResult.session_id, undefined);

  const oddResult = of(odd.target);
  assert.deepEqual([oddResult.exit_code, oddResult.stdout, oddResult.stderr], [3, "odd\n", "oops\n"]);

  // Session targets keep their session; the host target with an open session ran on it and says so.
  assert.equal(of(sessions[0]).session_id, sessions[0]);
  assert.equal(of(sessions[0]).host, hosts[0].target);
  assert.equal(of(hosts[2].target).session_id, sessions[2]);
  assert.equal(of(hosts[2].target).reused_session, true);
  assert.equal(of(hosts[3].target).session_id, undefined, "a temporary session is not reported as usable");
  assert.equal(of(hosts[3].target).reused_session, undefined);

  // Groups: the 18 alike (in the order given), then the odd one, then failures by code.
  const same = targets.filter((t) => t !== slow.target && t !== odd.target && t !== refused);
  assert.equal(same.length, 18);
  // A killed command may report the signal that ended it; that is not what makes the group.
  assert.deepEqual(st.groups.map(({ signal: _, ...g }: { signal?: string }) => g), [
    { targets: same, exit_code: 0, same_output: true },
    { targets: [odd.target], exit_code: 3, same_output: true },
    { targets: [slow.target], exit_code: null, error_code: "COMMAND_TIMEOUT", same_output: true },
    { targets: [refused], exit_code: null, error_code: "CONNECT_REFUSED", same_output: true },
  ]);
  const lines = r.text.split("\n");
  assert.match(lines[0], /^21 hosts: 18 ok, 1 non-zero exit, 2 failed \(\d+\.\d s\)$/);
  assert.equal(lines[1], `18 hosts, exit 0, same output: ${same.join(", ")}`);
  assert.deepEqual(lines.slice(2, 4), ["--- stdout (5 bytes) ---", "same"]);
  assert.equal(lines[4], `1 host, exit 3: ${odd.target}`);
  assert.equal(lines.filter((l) => l === "same").length, 1, "the shared output is shown once");
  assert.ok(lines.includes(`COMMAND_TIMEOUT: ${slow.target}`), r.text);
  assert.ok(lines.includes(`CONNECT_REFUSED: ${refused}`), r.text);
  assert.ok(lines.includes(`Ran on open sessions: ${hosts[2].target} (${sessions[2]})`), r.text);

  // Temporary sessions are closed, here and on the servers; the sessions used stay open and usable.
  assert.deepEqual(await sessionIds(server), before);
  await waitFor(async () => {
    const pids = await all.childPids();
    return pids.every((p) => pidsBefore.has(p));
  }, "sshd to have no connections left but the open sessions'");
  for (const id of sessions) {
    const again = await callOk(c, "ssh_execute", { session_id: id, command: "echo still" });
    assert.equal(again.structured.stdout, "still\n");
  }
});

Deno.test({
  name: "ssh_execute_many never runs more hosts at once than concurrency",
  ignore: skip,
}, async () => {
  await using all = await startHosts();
  await using server = await startFanoutServer(all.knownHosts, all.agent.socket);
  await using dir = await tempDir("mcp-fanout-");
  await Deno.chmod(dir.path, 0o777); // the remote account writes its stamps here
  const stamps = `${dir.path}/stamps`;
  const targets = all.hosts.slice(4, 16).map((h) => h.target);
  const r = await within(
    CALL_DEADLINE_MS,
    "ssh_execute_many",
    callOk(server.client, "ssh_execute_many", {
      targets,
      concurrency: 4,
      command: `echo "start $(date +%s%N)" >> ${stamps}; sleep 0.5; echo "end $(date +%s%N)" >> ${stamps}`,
      timeout: 60,
    }, { timeout: CALL_DEADLINE_MS }),
  );
  assert.equal(r.structured.ok, 12, r.text);
  // The most commands running at one time, from their own start and end stamps.
  const events = (await Deno.readTextFile(stamps)).trim().split("\n").map((line) => {
    const [kind, ns] = line.split(" ");
    return { at: BigInt(ns), delta: kind === "start" ? 1 : -1 };
  }).sort((a, b) => a.at < b.at ? -1 : a.at > b.at ? 1 : a.delta - b.delta); // an end before a start at a tie
  assert.equal(events.length, 24);
  let running = 0;
  let most = 0;
  for (const e of events) {
    running += e.delta;
    most = Math.max(most, running);
  }
  assert.ok(most <= 4, `${most} commands ran at once with concurrency 4`);
});

Deno.test({
  name: "ssh_execute_many cancelled mid-run ends every remote command and closes its temporary sessions",
  ignore: skip,
}, async () => {
  await using all = await startHosts();
  await using server = await startFanoutServer(all.knownHosts, all.agent.socket);
  const user = all.hosts[0].sshd.user;
  const marker = `sleep 602.${Math.floor(Math.random() * 1e6)}`;
  await using _left = { [Symbol.asyncDispose]: () => killLeft(user, marker) };
  // Both servers, so the cancel reaches connections to each.
  const targets = [...all.hosts.slice(0, 3), ...all.hosts.slice(-3)].map((h) => h.target);
  const abort = new AbortController();
  const pending = call(server.client, "ssh_execute_many", { targets, command: marker, timeout: 600 }, {
    signal: abort.signal,
    timeout: CALL_DEADLINE_MS,
  });
  pending.catch(() => {}); // rejected by the abort below; checked there
  await waitFor(async () => await processes(user, marker) === targets.length, "every command to run");
  abort.abort();
  await assert.rejects(pending);
  await waitFor(async () => await processes(user, marker) === 0, "every remote command to be killed");
  await waitFor(async () => (await sessionIds(server)).length === 0, "the temporary sessions to close");
  await waitFor(async () => (await all.childPids()).length === 0, "sshd to have no connections left");
});

Deno.test({
  name: "ssh_execute_many refuses repeated and malformed targets before connecting",
  ignore: skip,
}, async () => {
  await using server = await startInProcessServer();
  for (
    const targets of [
      ["web1", "web1"],
      ["-oProxyCommand=touch /tmp/x"],
      ["u;id@web1"],
      ["web1:0"],
      [],
      Array.from({ length: 51 }, (_, i) => `h${i}`),
    ]
  ) {
    const r = await call(server.client, "ssh_execute_many", { targets, command: "true" });
    assert.equal(r.code, "INVALID_ARGUMENT", JSON.stringify(targets));
  }
  for (
    const args of [
      { targets: ["web1"], command: "true", concurrency: 33 },
      { targets: ["web1"], command: "echo a\0b" }, // a NUL would cost each host its connection
      { targets: ["web1\0"], command: "true" },
    ]
  ) {
    const r = await call(server.client, "ssh_execute_many", args);
    assert.equal(r.code, "INVALID_ARGUMENT", JSON.stringify(args));
  }
  assert.deepEqual(await sessionIds(server), [], "nothing was opened");
});

Deno.test({
  name: "ssh_execute_many keeps a cut output readable where its session stays open, and is not offered read-only",
  ignore: skip,
}, async () => {
  await using all = await startHosts();
  await using server = await startFanoutServer(all.knownHosts, all.agent.socket);
  const c = server.client;
  const [kept, temporary] = all.hosts;
  const session = await connectWithKey(c, { ...kept.sshd, port: kept.port });
  const r = await callOk(c, "ssh_execute_many", {
    targets: [session, temporary.target],
    command: "head -c 3000 /dev/zero | tr '\\0' x",
    max_output_bytes: 1024,
  }, { timeout: CALL_DEADLINE_MS });
  const [onSession, onTemporary] = r.structured.results;
  assert.equal(onSession.truncated, true);
  assert.equal(onSession.stdout_bytes, 3000);
  const whole = await callOk(c, "ssh_output_read", { session_id: session, output_id: onSession.output_id });
  assert.equal(whole.structured.data, "x".repeat(3000));
  // A temporary session's output went with it: no output_id that could not be read.
  assert.equal(onTemporary.truncated, true);
  assert.equal(onTemporary.output_id, undefined);
  assert.match(
    r.text,
    new RegExp(`^Whole output \\(ssh_output_read\\): ${session} ${session} ${onSession.output_id}$`, "m"),
  );

  await using readOnly = await startInProcessServer({ args: ["--read-only"] });
  const names = (await readOnly.client.listTools()).tools.map((t) => t.name);
  assert.ok(names.includes("ssh_list_sessions") && !names.includes("ssh_execute_many"), names.join(", "));
});
