/**
 * `deno task bench`: mcp-remote-ssh against OpenSSH on the same local sshd,
 * in the same run. Prints medians and ratios; asserts nothing (timings do not
 * belong in tests).
 *
 * 1. ssh_execute `true` over MCP stdio on one session (N=200) vs
 *    `ssh -o ControlMaster=auto -o ControlPath=… true` (target ≤ 0.5×).
 * 2. Spawn → initialize of the server (N=10; target ≤ 200 ms median), beside
 *    `deno run` of an empty module spawned the same way.
 * 3. Peak RSS of the server during the run (target ≤ 100 MiB).
 * 4. Bytes of the tools/list answer, and what of it reaches the model (name,
 *    description, input schema) per toolset and all on (target ≤ 14,000).
 * 5. Shell round trip: `echo` through one ssh_shell_send that waits for its
 *    output (`wait_for`; N=200) vs OpenSSH ControlMaster `true` (target ≤ 0.5×).
 * 6. 200 MiB upload and download, median of 3, vs sftp(1) and scp(1)
 *    (target ≥ 1.0× sftp).
 * 7. RSS growth of a fresh server during a 1 GiB upload, and during a 1 GiB
 *    download (target ≤ 64 MiB each).
 * 8. 200 MiB through a local forward vs `ssh -L` to the same sshd, median of
 *    7 alternating rounds (target ≥ 0.8×). Single runs on a 2-core VM swing
 *    by ±15%, so fewer rounds made the ratio a draw.
 * 9. ssh_execute `true` over streamable HTTP (N=200) vs over stdio, measured
 *    back to back (target ≤ 1.5×).
 * 10. Jobs, start → first output: ssh_execute background=true of
 *    `echo ready; sleep 1` to the return of the `ssh_job wait pattern=ready`
 *    that follows it (N=30), alternated with ssh_execute `echo ready`; the
 *    start call alone beside it. Reported only, no target.
 * 11. ssh_job wait on a job that has already ended (N=50), alternated with
 *    ssh_execute `true`. Reported only.
 * 12. Peak RSS of a fresh server while 20 jobs each print ~50 MB and the
 *    client waits on all of them and reads their output in 1 MiB pages as
 *    it grows; bytes read (checked against each job's stdout_bytes and
 *    content) and wall time. Reported only.
 * 13. ssh_connect by ~/.ssh/config alias vs by explicit arguments (same
 *    sshd and key; alternated, N=20 each, each session closed after; the
 *    explicit connect also on a server that reads no ssh_config, so what
 *    reading it costs shows), beside `ssh -F <same config> alias true` vs
 *    `ssh -F /dev/null -p … -i … user@127.0.0.1 true`, fresh connections.
 *    Reported only: the deltas.
 * 14. ssh_connect of an alias with `ProxyJump` + ssh_execute `true` +
 *    ssh_close_session (N=10) vs `ssh -F <config> alias true` through the
 *    same bastion; the bastion and the target are ports of one local sshd
 *    (the target reached as 127.0.0.1:port by the bastion's direct-tcpip).
 *    The same target connected directly, both ways, for reference.
 *    Reported only.
 * 15. `uname -a` on 20 hosts (20 ports of two sshds), wall time, median of
 *    5: one ssh_execute_many with 20 `user@127.0.0.1:port` targets
 *    (temporary connections, key from an ssh-agent), concurrency 8 and 20,
 *    vs `ssh` through the same agent in parallel (`xargs -P 8`, `-P 20`,
 *    fresh connections) and a shell loop of `ssh -o ControlMaster=auto`
 *    with no master open yet; then ours on 20 open sessions beside the same
 *    loop through its 20 open masters. Reported only.
 *
 * 1, 6 and 8 run once per cipher (chacha20-poly1305@openssh.com,
 * aes128-gcm@openssh.com, aes256-gcm@openssh.com; `BENCH_CIPHERS` picks
 * others, comma-separated), each against its own sshd that offers only that
 * cipher, so our client has to use it, and OpenSSH's client gets `-c` with
 * it. The target rows are those of the cipher our client prefers (the
 * first of ours that is benchmarked); the other ciphers follow in a table.
 * The shell round trip (5) runs on that cipher's server too, so the RSS row
 * for the whole run covers exec, shells, transfers and the forward. The jobs
 * sections run on it after everything it reports (10 and 11 after 9), and 12
 * on a server of its own, so they leave the other rows as they were. 13-15
 * run last, on sshds and servers of their own (tests/fixtures/bench_hosts.ts).
 *
 * `BENCH_ONLY=13,15` runs only the sections named. 1-12 share their servers
 * and results top to bottom, so naming any of them runs all twelve.
 */

// @ts-types="@modelcontextprotocol/sdk/client/index"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="@modelcontextprotocol/sdk/client/streamableHttp"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { callOk, ROOT, RUN_FLAGS, runArgs, serverEnv, startServer, type TestServer } from "./fixtures/mcp.ts";
import { opensshArgs, type Sshd, startSshd } from "./fixtures/sshd.ts";
import { CIPHERS as OUR_CIPHERS } from "../lib/ssh/connect.ts";
import { TOOLSETS } from "../lib/toolsets.ts";
import { listTools, modelVisibleBytes } from "./fixtures/tool_list.ts";
import { benchHostSections, type BenchRow, HOST_SECTIONS } from "./fixtures/bench_hosts.ts";
// @ts-types="@modelcontextprotocol/sdk/shared/transport"
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
// @ts-types="@modelcontextprotocol/sdk/types"
import type { JSONRPCMessage, Tool } from "@modelcontextprotocol/sdk/types.js";

const N_EXEC = Number(Deno.env.get("BENCH_N") ?? 200);
const N_SPAWN = 10;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function fmt(ms: number): string {
  return `${ms.toFixed(2)} ms`;
}

/** Prints the table of rows: what, value, target, verdict. */
function printRows(rows: BenchRow[]): void {
  const whatWidth = Math.max(38, ...rows.map(([what]) => what.length));
  for (const [what, value, goal, verdict] of rows) {
    console.log(`${what.padEnd(whatWidth)} ${value.padEnd(62)} target ${goal.padEnd(10)} ${verdict}`);
  }
}

/** The sections to run: `BENCH_ONLY`, comma-separated, or all. */
function sectionsToRun(): Set<number> {
  const all = [...Array.from({ length: 12 }, (_, i) => i + 1), ...HOST_SECTIONS];
  const only = Deno.env.get("BENCH_ONLY");
  if (only === undefined || only.trim() === "") return new Set(all);
  const named = only.split(",").map((x) => Number(x.trim()));
  const unknown = named.filter((n) => !all.includes(n));
  if (unknown.length > 0) throw new Error(`BENCH_ONLY names no section ${unknown.join(", ")} (1-${all.length})`);
  return new Set(named);
}

async function peakRssMiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(status.match(/^VmHWM:\s+(\d+) kB/m)![1]) / 1024;
}

const MIB = 1024 * 1024;
const BENCHED = (Deno.env.get("BENCH_CIPHERS") ??
  "chacha20-poly1305@openssh.com,aes128-gcm@openssh.com,aes256-gcm@openssh.com").split(",");
const PREFERRED = OUR_CIPHERS.find((c) => BENCHED.includes(c));
if (PREFERRED === undefined) throw new Error(`BENCH_CIPHERS has none of our ciphers (${OUR_CIPHERS.join(", ")})`);
const SECTIONS = sectionsToRun();
if (!Array.from({ length: 12 }, (_, i) => i + 1).some((n) => SECTIONS.has(n))) {
  // Only host sections: none of the shared setup below (200 MiB blob, sshds per cipher) is needed.
  const hostRows = await benchHostSections(SECTIONS);
  console.log(`\nmcp-remote-ssh bench, sections ${[...SECTIONS].join(", ")} (${Deno.build.target})`);
  printRows(hostRows);
  Deno.exit(0);
}

const work = await Deno.makeTempDir({ prefix: "mcp-bench-" });
// A bench that fails half-way must not leave its 800 MB of blobs behind.
const removeWork = () => {
  try {
    Deno.removeSync(work, { recursive: true });
  } catch { /* already gone */ }
};
globalThis.addEventListener("unhandledrejection", removeWork);
globalThis.addEventListener("error", removeWork);
const blob = new Uint8Array(200 * MIB);
for (let i = 0; i < blob.length; i += 65536) crypto.getRandomValues(blob.subarray(i, i + 65536));
await Deno.writeFile(`${work}/blob`, blob);

// A source here sends 200 MiB to each connection; the tunnels go out through
// sshd and back to it, and the reader times the whole stream to EOF.
const SOURCE_BYTES = 200 * MIB;
const source = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const sourcePort = (source.addr as Deno.NetAddr).port;
const sourceChunk = new Uint8Array(MIB);
crypto.getRandomValues(sourceChunk.subarray(0, 65536));
(async () => {
  for await (const conn of source) {
    (async () => {
      try {
        for (let sent = 0; sent < SOURCE_BYTES; sent += sourceChunk.length) {
          for (let off = 0; off < sourceChunk.length;) off += await conn.write(sourceChunk.subarray(off));
        }
      } finally {
        conn.close();
      }
    })().catch(() => {});
  }
})().catch(() => {});
async function drain(port: number): Promise<number> {
  const t0 = performance.now();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const buf = new Uint8Array(256 * 1024);
  let got = 0;
  for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) got += n;
  conn.close();
  if (got !== SOURCE_BYTES) throw new Error(`tunnel delivered ${got} of ${SOURCE_BYTES} bytes`);
  return performance.now() - t0;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}
async function tool(...args: string[]): Promise<void> {
  const [cmd, ...rest] = args;
  const out = await new Deno.Command(cmd, { args: rest, stdin: "null", stdout: "null", stderr: "piped" }).output();
  if (out.code !== 0) throw new Error(`${cmd} failed: ${new TextDecoder().decode(out.stderr)}`);
}

/** Waits for a job of the bench to end (cancelling it if it does not) and removes its files. */
async function removeJob(client: Client, session: string, id: string): Promise<void> {
  for (let i = 0; i < 4; i++) {
    const w = await callOk(client, "ssh_job", { session_id: session, action: "wait", job_id: id, timeout: 25 });
    if (w.structured.reason === "ended") break;
    if (i === 3) await callOk(client, "ssh_job", { session_id: session, action: "cancel", job_id: id });
  }
  await callOk(client, "ssh_job", { session_id: session, action: "remove", job_id: id });
}

/** Removes every job in `ids` (emptying it), even when one removal fails; throws the first failure. */
async function removeJobs(client: Client, session: string, ids: Set<string>): Promise<void> {
  const failures: unknown[] = [];
  for (const id of ids) {
    await removeJob(client, session, id).catch((e) => failures.push(e));
    ids.delete(id);
  }
  if (failures.length > 0) throw new Error(`could not remove ${failures.length} bench job(s)`, { cause: failures[0] });
}

/** Starts `command` as a job (ssh_execute background=true) and returns its id. */
async function startJob(client: Client, session: string, command: string): Promise<string> {
  const r = await callOk(client, "ssh_execute", { session_id: session, command, background: true });
  const id = r.structured.job_id;
  if (typeof id !== "string") throw new Error(`ssh_execute background=true gave no job_id: ${r.text}`);
  return id;
}

/**
 * A stdio client transport for the MCP SDK `Client` that splits lines in time
 * linear in the bytes read. The SDK's own (ReadBuffer) concatenates its whole
 * buffer with every chunk and searches it again from the start, so a 2 MB
 * answer (a 1 MiB ssh_output_read page, text and structured) costs the bench
 * process ~250 ms of CPU: the client, not the server, would set the pace.
 */
class LineStdioTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  #proc: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #encoder = new TextEncoder();
  #reading: Promise<void> | null = null;

  constructor(proc: Deno.ChildProcess) {
    this.#proc = proc;
    this.#writer = proc.stdin.getWriter();
  }

  start(): Promise<void> {
    this.#reading = (async () => {
      const pending: Uint8Array[] = [];
      const decoder = new TextDecoder();
      for await (const chunk of this.#proc.stdout) {
        let from = 0;
        for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, from)) {
          pending.push(chunk.subarray(from, nl));
          const line = decoder.decode(concat(pending));
          pending.length = 0;
          from = nl + 1;
          try {
            this.onmessage?.(JSON.parse(line));
          } catch (e) {
            this.onerror?.(e instanceof Error ? e : new Error(String(e)));
          }
        }
        if (from < chunk.length) pending.push(chunk.slice(from));
      }
    })().catch((e) => this.onerror?.(e)).finally(() => this.onclose?.());
    return Promise.resolve();
  }

  async send(message: JSONRPCMessage): Promise<void> {
    await this.#writer.write(this.#encoder.encode(JSON.stringify(message) + "\n"));
  }

  async close(): Promise<void> {
    await this.#writer.close().catch(() => {});
    const exited = await Promise.race([
      this.#proc.status.then(() => true),
      new Promise<false>((r) => setTimeout(() => r(false), 2000)),
    ]);
    if (!exited) {
      this.#proc.kill("SIGKILL");
      await this.#proc.status;
    }
    await this.#reading;
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The server as startServer() runs it, with a client on {@linkcode LineStdioTransport}. */
async function startLinearServer(args: string[]): Promise<{ client: Client; pid: number; close: () => Promise<void> }> {
  const home = await Deno.makeTempDir({ prefix: "mcp-home-" });
  const proc = new Deno.Command(Deno.execPath(), {
    args: runArgs("main.ts", args),
    clearEnv: true,
    env: serverEnv(home),
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  const draining = (async () => {
    for await (const chunk of proc.stderr.pipeThrough(new TextDecoderStream())) {
      stderr = (stderr + chunk).slice(-100_000);
    }
  })().catch(() => {});
  const client = new Client({ name: "mcp-remote-ssh-bench", version: "0" });
  try {
    await client.connect(new LineStdioTransport(proc));
  } catch (e) {
    proc.kill("SIGKILL");
    throw new Error(`the server did not initialize:\n${stderr}`, { cause: e });
  }
  return {
    client,
    pid: proc.pid,
    close: async () => {
      await client.close();
      await draining;
      await Deno.remove(home, { recursive: true }).catch(() => {});
    },
  };
}

/** What one cipher measured: sections 1, 6 and 8. */
interface CipherRun {
  cipher: string;
  sshd: Sshd;
  knownHosts: string;
  server: TestServer;
  session: string;
  oursOnce: () => Promise<number>;
  ours: number[];
  openssh: number[];
  oursAlt: number[];
  opensshAlt: number[];
  peakRssExec: number;
  xfer: Record<string, number[]>;
  tunnel: { ours: number[]; openssh: number[] };
}

/**
 * Sections 1, 6 and 8 against an sshd that offers only `cipher`; OpenSSH's
 * clients get `-c cipher`. The sshd and server are left running for the
 * caller to close.
 */
async function measureCipher(cipher: string): Promise<CipherRun> {
  const sshd = await startSshd({ maxSessions: 10, extraConfig: `Ciphers ${cipher}\n` });
  const knownHosts = await sshd.writeKnownHosts(`${work}/known_hosts-${cipher}`);
  const cipherArgs = ["-c", cipher];

  // --- 1a. mcp-remote-ssh: ssh_execute true, one session ---------------------
  const server = await startServer({ args: ["--known-hosts", knownHosts, "--allow-local-dir", work] });
  const connect = await callOk(server.client, "ssh_connect", {
    host: sshd.host,
    port: sshd.port,
    username: sshd.user,
    private_key_path: sshd.keys.ed25519.path,
  });
  const session = connect.structured.session_id;
  for (let i = 0; i < 20; i++) await callOk(server.client, "ssh_execute", { session_id: session, command: "true" });
  async function oursOnce(): Promise<number> {
    const t0 = performance.now();
    const r = await callOk(server.client, "ssh_execute", { session_id: session, command: "true" });
    const ms = performance.now() - t0;
    if (r.structured.exit_code !== 0) throw new Error(`true exited ${r.structured.exit_code}`);
    return ms;
  }

  // --- 1b. OpenSSH with a ControlMaster on the same sshd ---------------------
  const control = `${work}/cm-%C`;
  const sshArgs = opensshArgs(sshd, {
    knownHosts,
    key: sshd.keys.ed25519.path,
    extra: ["-o", "ControlMaster=auto", "-o", `ControlPath=${control}`, "-o", "ControlPersist=60", ...cipherArgs],
  });
  async function ssh(...args: string[]): Promise<void> {
    const out = await new Deno.Command("ssh", { args: [...sshArgs, ...args], stdin: "null" }).output();
    if (out.code !== 0) throw new Error(`ssh failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  for (let i = 0; i < 20; i++) await ssh("true");
  async function sshOnce(): Promise<number> {
    const t0 = performance.now();
    await ssh("true");
    return performance.now() - t0;
  }
  // In blocks, as the target is stated: N of ours, then N of OpenSSH.
  const ours: number[] = [];
  const openssh: number[] = [];
  for (let i = 0; i < N_EXEC; i++) ours.push(await oursOnce());
  for (let i = 0; i < N_EXEC; i++) openssh.push(await sshOnce());
  // Alternating, as a check: drift in machine load hits both alike, and each
  // of our calls follows an idle gap (as an agent's calls do), which costs us.
  const oursAlt: number[] = [];
  const opensshAlt: number[] = [];
  for (let i = 0; i < N_EXEC; i++) {
    oursAlt.push(await oursOnce());
    opensshAlt.push(await sshOnce());
  }
  await new Deno.Command("ssh", { args: [...sshArgs, "-O", "exit"], stdin: "null", stderr: "null" }).output();

  const peakRssExec = await peakRssMiB(server.pid!);

  // --- 6. 200 MiB up and down: ours vs sftp(1) and scp(1), median of 3 ------------
  const remoteDir = `/tmp/mcp-bench-${crypto.randomUUID()}`;
  await callOk(server.client, "ssh_manage_remote", { action: "mkdir", session_id: session, remote_path: remoteDir });
  const fileArgs = [
    "-F",
    "/dev/null",
    "-o",
    `UserKnownHostsFile=${knownHosts}`,
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "IdentityAgent=none",
    ...cipherArgs,
    "-i",
    sshd.keys.ed25519.path,
    "-P",
    String(sshd.port),
  ];
  async function sftpBatch(commands: string): Promise<void> {
    await Deno.writeTextFile(`${work}/batch`, commands);
    await tool("sftp", ...fileArgs, "-q", "-b", `${work}/batch`, `${sshd.user}@${sshd.host}`);
  }
  const xfer: Record<string, number[]> = {};
  const record = (k: string, ms: number) => (xfer[k] ??= []).push(ms);
  for (let round = 0; round < 3; round++) {
    record(
      "ours up",
      await timed(() =>
        callOk(server.client, "ssh_upload_file", {
          session_id: session,
          local_path: `${work}/blob`,
          remote_path: `${remoteDir}/ours`,
          overwrite: true,
        })
      ),
    );
    record(
      "ours down",
      await timed(async () => {
        await Deno.remove(`${work}/ours.back`).catch(() => {});
        await callOk(server.client, "ssh_download_file", {
          session_id: session,
          remote_path: `${remoteDir}/ours`,
          local_path: `${work}/ours.back`,
        });
      }),
    );
    record("sftp up", await timed(() => sftpBatch(`put ${work}/blob ${remoteDir}/sftp\n`)));
    record("sftp down", await timed(() => sftpBatch(`get ${remoteDir}/sftp ${work}/sftp.back\n`)));
    record(
      "scp up",
      await timed(() => tool("scp", ...fileArgs, "-q", `${work}/blob`, `${sshd.user}@${sshd.host}:${remoteDir}/scp`)),
    );
    record(
      "scp down",
      await timed(() =>
        tool("scp", ...fileArgs, "-q", `${sshd.user}@${sshd.host}:${remoteDir}/scp`, `${work}/scp.back`)
      ),
    );
  }
  await callOk(server.client, "ssh_manage_remote", {
    action: "remove",
    session_id: session,
    remote_path: remoteDir,
    recursive: true,
  });

  // --- 8. 200 MiB through a local forward: ours vs ssh -L, median of 7 -----------
  const ourForward = await callOk(server.client, "ssh_forward_port", { session_id: session, remote_port: sourcePort });
  const sshForwardPort = await new Promise<number>((resolve) => {
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    resolve((probe.addr as Deno.NetAddr).port);
    probe.close();
  });
  const sshL = new Deno.Command("ssh", {
    args: [
      ...opensshArgs(sshd, { knownHosts, key: sshd.keys.ed25519.path, extra: cipherArgs }),
      "-N",
      "-o",
      "ExitOnForwardFailure=yes",
      "-L",
      `127.0.0.1:${sshForwardPort}:127.0.0.1:${sourcePort}`,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  for (let i = 0;; i++) {
    const up = await Deno.connect({ hostname: "127.0.0.1", port: sshForwardPort }).then(
      (c) => (c.close(), true),
      () => false,
    );
    if (up) break;
    if (i > 100) throw new Error("ssh -L did not start listening");
    await new Promise((r) => setTimeout(r, 50));
  }
  const tunnel: { ours: number[]; openssh: number[] } = { ours: [], openssh: [] };
  for (let round = 0; round < TUNNEL_ROUNDS; round++) {
    tunnel.ours.push(await drain(ourForward.structured.listen.port));
    tunnel.openssh.push(await drain(sshForwardPort));
  }
  sshL.kill("SIGTERM");
  await sshL.status;
  await callOk(server.client, "ssh_close_forward", {
    session_id: session,
    forward_id: ourForward.structured.forward_id,
  });
  return {
    cipher,
    sshd,
    knownHosts,
    server,
    session,
    oursOnce,
    ours,
    openssh,
    oursAlt,
    opensshAlt,
    peakRssExec,
    xfer,
    tunnel,
  };
}
const TUNNEL_ROUNDS = 7;

// The preferred cipher first; its sshd and server stay for the sections below.
const runs: CipherRun[] = [];
for (const cipher of [PREFERRED, ...BENCHED.filter((c) => c !== PREFERRED)]) {
  const run = await measureCipher(cipher);
  runs.push(run);
  if (cipher !== PREFERRED) {
    await run.server.close();
    await run.sshd.stop();
  }
}
source.close();
const main = runs[0];
await using sshd = main.sshd;
await using server = main.server;
const { knownHosts, session, oursOnce, ours, openssh, oursAlt, opensshAlt, peakRssExec } = main;
const mbpsOf = (run: CipherRun, k: string) => 200 / (median(run.xfer[k]) / 1000);
const tunnelMbpsOf = (run: CipherRun, k: "ours" | "openssh") => (SOURCE_BYTES / 1e6) / (median(run.tunnel[k]) / 1000);
const mbps = (k: string) => mbpsOf(main, k);
const tunnelMbps = (k: "ours" | "openssh") => tunnelMbpsOf(main, k);

// --- 5. shell round trip: ssh_shell_send waiting for the output in the same call ----
await callOk(server.client, "ssh_shell_open", { session_id: session });
await callOk(server.client, "ssh_shell_send", { session_id: session, data: "PS1='> '", wait_for: "> ", timeout: 10 });
async function shellOnce(i: number): Promise<number> {
  const t0 = performance.now();
  // Only output after the echo of the typed line is searched (and the echo shows "$((i+1))", not the number).
  const w = await callOk(server.client, "ssh_shell_send", {
    session_id: session,
    data: `echo r$((${i}+1))`,
    wait_for: `r${i + 1}\n`,
    timeout: 10,
  });
  const ms = performance.now() - t0;
  if (w.structured.reason !== "matched") throw new Error(`shell round trip ${i}: ${w.structured.reason}`);
  return ms;
}
for (let i = 0; i < 20; i++) await shellOnce(i);
const shellTimes: number[] = [];
for (let i = 20; i < 20 + N_EXEC; i++) shellTimes.push(await shellOnce(i));

// --- 4. tools/list size ------------------------------------------------------
const tools = await server.client.listTools();
const toolsListBytes = new TextEncoder().encode(JSON.stringify({ jsonrpc: "2.0", id: 1, result: tools })).length;
// What reaches the model every turn (name + description + input schema), per toolset and all on.
const visible = (list: Tool[]) => list.reduce((sum, t) => sum + modelVisibleBytes(t), 0);
const visibleTotal = visible(tools.tools);
const visibleBySet: string[] = [];
for (const set of TOOLSETS) {
  visibleBySet.push(`${set} ${visible(await listTools(["--toolsets", set]))}`);
}
const visibleReadOnly = visible(await listTools(["--read-only"]));

// --- 3. peak RSS of the server that served everything above -----------------
const peakRss = await peakRssMiB(server.pid!);

// --- 9. ssh_execute true over streamable HTTP vs stdio -------------------------
// The server as users run it over HTTP (same flags as the stdio fixture), one
// SDK client and one HTTP session; then N more over the stdio session above,
// right after, so both are measured in the same period.
const httpToken = Array.from(crypto.getRandomValues(new Uint8Array(24)), (b) => b.toString(16).padStart(2, "0"))
  .join("");
const httpHome = await Deno.makeTempDir({ prefix: "mcp-home-" });
const httpProc = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    ...RUN_FLAGS,
    "--quiet",
    "--frozen",
    `${ROOT}main.ts`,
    "--transport",
    "streamable-http",
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--known-hosts",
    knownHosts,
  ],
  clearEnv: true,
  env: { ...serverEnv(httpHome), MCP_REMOTE_SSH_TOKEN: httpToken },
  cwd: ROOT,
  stdin: "null",
  stdout: "null",
  stderr: "piped",
}).spawn();
// Read stderr up to the "listening on" line, then keep draining it (its tail
// is kept for errors) so the pipe never fills.
let httpStderr = "";
const httpUrl = await new Promise<URL>((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`HTTP server did not listen in 30 s:\n${httpStderr}`)), 30_000);
  (async () => {
    let found = false;
    for await (const chunk of httpProc.stderr.pipeThrough(new TextDecoderStream())) {
      httpStderr = (httpStderr + chunk).slice(-100_000);
      const m = found ? null : httpStderr.match(/streamable-http listening on (http:\/\/\S+)/);
      if (m) {
        found = true;
        clearTimeout(timer);
        resolve(new URL(m[1]));
      }
    }
    clearTimeout(timer);
    if (!found) reject(new Error(`HTTP server exited before listening:\n${httpStderr}`));
  })().catch(reject);
});
const httpTransport = new StreamableHTTPClientTransport(httpUrl, {
  requestInit: { headers: { Authorization: `Bearer ${httpToken}` } },
});
const httpClient = new Client({ name: "mcp-remote-ssh-bench", version: "0" });
await httpClient.connect(httpTransport);
const httpSession = (await callOk(httpClient, "ssh_connect", {
  host: sshd.host,
  port: sshd.port,
  username: sshd.user,
  private_key_path: sshd.keys.ed25519.path,
})).structured.session_id;
async function httpOnce(): Promise<number> {
  const t0 = performance.now();
  const r = await callOk(httpClient, "ssh_execute", { session_id: httpSession, command: "true" });
  const ms = performance.now() - t0;
  if (r.structured.exit_code !== 0) throw new Error(`true exited ${r.structured.exit_code}`);
  return ms;
}
for (let i = 0; i < 20; i++) await httpOnce();
const overHttp: number[] = [];
for (let i = 0; i < N_EXEC; i++) overHttp.push(await httpOnce());
const overStdio: number[] = [];
for (let i = 0; i < N_EXEC; i++) overStdio.push(await oursOnce());
await httpTransport.terminateSession(); // DELETE: the server closes the session and its SSH connection
await httpClient.close();
httpProc.kill("SIGTERM");
const httpExit = await Promise.race([
  httpProc.status,
  new Promise<null>((resolve) => setTimeout(() => resolve(null), 5000)),
]);
if (httpExit === null) {
  console.warn("warning: the HTTP server did not exit within 5 s of SIGTERM; killing it");
  httpProc.kill("SIGKILL");
  await httpProc.status;
} else if (httpExit.code !== 0) {
  console.warn(`warning: the HTTP server exited ${httpExit.code} after SIGTERM:\n${httpStderr.slice(-2000)}`);
}
await Deno.remove(httpHome, { recursive: true }).catch(() => {});

// --- 10. jobs: start -> first output ---------------------------------------------
// On the session above, after everything it reports. From sending ssh_execute
// background=true (`echo ready; sleep 1`) to the return of the ssh_job wait for
// "ready" that follows it, alternated with a plain ssh_execute `echo ready`.
const N_JOB_START = 30;
const N_JOB_WAIT = 50;
const benchJobs = new Set<string>(); // started and not yet removed
async function readyOnce(): Promise<{ start: number; ready: number }> {
  const t0 = performance.now();
  const id = await startJob(server.client, session, "echo ready; sleep 1");
  const start = performance.now() - t0;
  benchJobs.add(id);
  const w = await callOk(server.client, "ssh_job", {
    session_id: session,
    action: "wait",
    job_id: id,
    pattern: "ready",
    timeout: 10,
  });
  const ready = performance.now() - t0;
  if (w.structured.reason !== "matched") throw new Error(`job ${id}: "ready" not seen (${w.structured.reason})`);
  return { start, ready };
}
async function echoOnce(): Promise<number> {
  const t0 = performance.now();
  const r = await callOk(server.client, "ssh_execute", { session_id: session, command: "echo ready" });
  const ms = performance.now() - t0;
  if (r.structured.stdout !== "ready\n") throw new Error(`echo ready printed ${JSON.stringify(r.structured.stdout)}`);
  return ms;
}
const jobStarts: number[] = [];
const jobReady: number[] = [];
const echoReady: number[] = [];
const jobWaits: number[] = [];
const waitExecs: number[] = [];
try {
  for (let i = 0; i < 3; i++) {
    await readyOnce();
    await echoOnce();
  }
  for (let i = 0; i < N_JOB_START; i++) {
    const { start, ready } = await readyOnce();
    jobStarts.push(start);
    jobReady.push(ready);
    echoReady.push(await echoOnce());
  }
  await removeJobs(server.client, session, benchJobs);

  // --- 11. ssh_job wait on a job that has already ended ---------------------------
  // It returns at once; alternated with ssh_execute `true`.
  const ended = await startJob(server.client, session, "true");
  benchJobs.add(ended);
  const waitOnce = async (): Promise<number> => {
    const t0 = performance.now();
    const w = await callOk(server.client, "ssh_job", {
      session_id: session,
      action: "wait",
      job_id: ended,
      timeout: 25,
    });
    const ms = performance.now() - t0;
    if (w.structured.reason !== "ended") throw new Error(`job ${ended}: wait ended by ${w.structured.reason}`);
    return ms;
  };
  for (let i = 0; i < 5; i++) {
    await waitOnce();
    await oursOnce();
  }
  for (let i = 0; i < N_JOB_WAIT; i++) {
    jobWaits.push(await waitOnce());
    waitExecs.push(await oursOnce());
  }
} finally {
  await removeJobs(server.client, session, benchJobs);
}

await server.close();

// --- 2. spawn -> initialize ----------------------------------------------------
// Against `deno run` of an empty module, spawned the same way and alternated
// with ours, so the runtime's own start is visible beside what the server adds.
const spawns: number[] = [];
const emptyRuns: number[] = [];
const emptyModule = `${work}/empty.ts`;
await Deno.writeTextFile(emptyModule, "");
for (let i = 0; i < N_SPAWN; i++) {
  const t0 = performance.now();
  const s = await startServer({ args: ["--known-hosts", knownHosts] });
  spawns.push(performance.now() - t0);
  await s.close();
  const t1 = performance.now();
  const empty = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...RUN_FLAGS, "--quiet", "--config", `${ROOT}deno.json`, emptyModule],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
  emptyRuns.push(performance.now() - t1);
  if (!empty.success) throw new Error("deno run of an empty module failed");
}

// --- 7. RSS growth of a fresh server during a 1 GiB upload and download ---------
// The peak (VmHWM) is reset once the session and its SFTP channel are warm,
// so the growth is what the transfer itself costs.
const GIB = 1024 * MIB;
const sparse = await Deno.open(`${work}/gib`, { create: true, write: true });
await sparse.truncate(GIB); // zeros: the bytes do not matter to memory, and it costs no disk
sparse.close();
const rssServer = await startServer({ args: ["--known-hosts", knownHosts, "--allow-local-dir", work] });
const rssSession = (await callOk(rssServer.client, "ssh_connect", {
  host: sshd.host,
  port: sshd.port,
  username: sshd.user,
  private_key_path: sshd.keys.ed25519.path,
})).structured.session_id;
const gibRemote = `/tmp/mcp-bench-gib-${crypto.randomUUID()}`;
await Deno.writeTextFile(`${work}/small`, "warm-up\n");
await callOk(rssServer.client, "ssh_upload_file", {
  session_id: rssSession,
  local_path: `${work}/small`,
  remote_path: gibRemote,
});
const rssStatus = async () => await Deno.readTextFile(`/proc/${rssServer.pid}/status`);
// Growth during one transfer: from the RSS when it starts to the peak while it runs.
async function growthDuring(transfer: () => Promise<unknown>): Promise<{ from: number; growth: number }> {
  const from = Number((await rssStatus()).match(/^VmRSS:\s+(\d+) kB/m)![1]) / 1024;
  await Deno.writeTextFile(`/proc/${rssServer.pid}/clear_refs`, "5"); // resets VmHWM to the current RSS
  await transfer();
  return { from, growth: (await peakRssMiB(rssServer.pid!)) - from };
}
const rssUp = await growthDuring(() =>
  callOk(rssServer.client, "ssh_upload_file", {
    session_id: rssSession,
    local_path: `${work}/gib`,
    remote_path: gibRemote,
    overwrite: true,
  })
);
const rssDown = await growthDuring(() =>
  callOk(rssServer.client, "ssh_download_file", {
    session_id: rssSession,
    remote_path: gibRemote,
    local_path: `${work}/gib.back`,
  })
);
await callOk(rssServer.client, "ssh_manage_remote", {
  action: "remove",
  session_id: rssSession,
  remote_path: gibRemote,
});
await rssServer.close();

// --- 12. peak RSS of a fresh server while 20 jobs stream ~50 MB each ----------
// A server of its own, so its peak (VmHWM) is this section's alone, on one
// session. Each job prints a known line in 48 bursts of ~1 MB a second apart,
// so all run at once while they are read. For each job the client keeps one
// ssh_job wait (timeout 25, repeated until the job ended) and one reader
// (ssh_output_read in 1 MiB pages, following the output as it grows) in
// flight, all at once. Every page is checked against the line at its offset,
// and the bytes read against the job's stdout_bytes once it ended. The client
// splits lines in linear time (LineStdioTransport), so the server sets the pace.
const STREAM_JOBS = 20;
const STREAM_LINE = "0123456789abcdef0123456789abcdef0123456789\n";
const BURST_LINES = 24_000;
const BURSTS = 48;
const STREAM_BYTES = BURSTS * BURST_LINES * STREAM_LINE.length; // 49,536,000
const STREAM_COMMAND =
  `for i in $(seq ${BURSTS}); do yes ${STREAM_LINE.trim()} | head -n ${BURST_LINES}; sleep 1; done`;
const streamPattern = STREAM_LINE.repeat(Math.ceil(MIB / STREAM_LINE.length) + 2);
const jobsServer = await startLinearServer(["--known-hosts", knownHosts]);
const jobsClient = jobsServer.client;
const streamJobs = new Set<string>(); // started and not yet removed
let jobsSession = "";
// The ending wait's stdout_bytes, when it was less than the job's output (see below).
const staleEnds: string[] = [];
let streamFrom = 0;
let streamPeak = 0;
let streamRead = 0;
let streamMs = 0;
// The jobs take about a minute; past this something is stuck.
const STREAM_DEADLINE_MS = 5 * 60_000;
let streamDeadline = Infinity;
function beforeStreamDeadline(id: string): void {
  if (performance.now() > streamDeadline) throw new Error(`job ${id}: not ended and read within 5 minutes`);
}
async function waitEnded(id: string): Promise<number> {
  while (true) {
    const w = await callOk(jobsClient, "ssh_job", { session_id: jobsSession, action: "wait", job_id: id, timeout: 25 });
    if (w.structured.reason === "timeout") {
      beforeStreamDeadline(id);
      continue;
    }
    const { state, exit_code, signal, stdout_bytes } = w.structured;
    if (state !== "exited" || exit_code !== 0) throw new Error(`job ${id} ended ${state} (${exit_code ?? signal})`);
    return stdout_bytes;
  }
}
async function readFollowing(id: string): Promise<number> {
  let offset = 0;
  while (true) {
    const s = (await callOk(jobsClient, "ssh_output_read", {
      session_id: jobsSession,
      output_id: id,
      offset,
      max_bytes: MIB,
    })).structured;
    if (s.offset !== offset || s.dropped_bytes !== 0 || s.encoding !== "utf8") {
      throw new Error(
        `job ${id}: read at ${offset} gave offset ${s.offset}, dropped ${s.dropped_bytes}, ${s.encoding}`,
      );
    }
    const data: string = s.data;
    const at = offset % STREAM_LINE.length;
    if (s.next_offset - offset !== data.length || data !== streamPattern.slice(at, at + data.length)) {
      throw new Error(`job ${id}: the ${data.length} bytes read at offset ${offset} are not what the job printed`);
    }
    offset = s.next_offset;
    if (s.complete) return offset;
    beforeStreamDeadline(id);
    if (offset === s.total_bytes) await new Promise((r) => setTimeout(r, 50)); // caught up
  }
}
try {
  jobsSession = (await callOk(jobsClient, "ssh_connect", {
    host: sshd.host,
    port: sshd.port,
    username: sshd.user,
    private_key_path: sshd.keys.ed25519.path,
  })).structured.session_id;
  // One job through start, wait and remove first, so the channels are open before the peak counts.
  await removeJob(jobsClient, jobsSession, await startJob(jobsClient, jobsSession, "true"));
  streamFrom = Number((await Deno.readTextFile(`/proc/${jobsServer.pid}/status`)).match(/^VmRSS:\s+(\d+) kB/m)![1]) /
    1024;
  const t0 = performance.now();
  streamDeadline = t0 + STREAM_DEADLINE_MS;
  const ids: string[] = [];
  for (let i = 0; i < STREAM_JOBS; i++) {
    const id = await startJob(jobsClient, jobsSession, STREAM_COMMAND);
    streamJobs.add(id);
    ids.push(id);
  }
  const results = await Promise.all(ids.map((id) => Promise.all([waitEnded(id), readFollowing(id)])));
  streamMs = performance.now() - t0;
  streamPeak = await peakRssMiB(jobsServer.pid);
  for (const [i, [endedBytes, read]] of results.entries()) {
    // Its size now, after it ended: the wait that saw it end may have looked at the size first.
    const final = await waitEnded(ids[i]);
    if (read !== final || final !== STREAM_BYTES) {
      throw new Error(`job ${ids[i]}: read ${read} bytes; stdout_bytes ${final}; it printed ${STREAM_BYTES}`);
    }
    if (endedBytes !== final) staleEnds.push(`${ids[i]} ${endedBytes} of ${final}`);
    streamRead += read;
  }
} finally {
  try {
    if (jobsSession !== "") {
      await removeJobs(jobsClient, jobsSession, streamJobs);
      // The jobs directory goes too if no other run's jobs are in it (the login user may be shared).
      await callOk(jobsClient, "ssh_execute", {
        session_id: jobsSession,
        command: "rmdir ~/.cache/mcp-remote-ssh/jobs ~/.cache/mcp-remote-ssh 2>/dev/null; true",
      });
    }
  } finally {
    await jobsServer.close();
  }
}
if (staleEnds.length > 0) {
  console.warn(
    `warning: ssh_job wait reported a job ended with fewer stdout_bytes than it printed (${staleEnds.join(", ")})`,
  );
}

await Deno.remove(work, { recursive: true });

// --- 13-15. hosts from ssh_config, ProxyJump, fan-out: servers of their own -------
const hostRows = await benchHostSections(SECTIONS);

const oursMed = median(ours);
const sshMed = median(openssh);
const ratio = oursMed / sshMed;
const altRatio = median(oursAlt) / median(opensshAlt);
const spawnMed = median(spawns);
const httpMed = median(overHttp);
const httpStdioMed = median(overStdio);
const httpRatio = httpMed / httpStdioMed;
const rows: BenchRow[] = [
  [
    `ssh_execute true, median of ${N_EXEC}`,
    `${fmt(oursMed)} vs OpenSSH ControlMaster ${fmt(sshMed)} = ${ratio.toFixed(3)}x`,
    "<= 0.5x",
    ratio <= 0.5 ? "met" : "MISSED",
  ],
  [
    `  same, alternating the two`,
    `${fmt(median(oursAlt))} vs ${fmt(median(opensshAlt))} = ${altRatio.toFixed(3)}x`,
    "<= 0.5x",
    altRatio <= 0.5 ? "met" : "MISSED",
  ],
  [
    `ssh_execute true over streamable HTTP, median of ${N_EXEC}`,
    `${fmt(httpMed)} vs stdio ${fmt(httpStdioMed)} = ${httpRatio.toFixed(3)}x`,
    "<= 1.5x",
    httpRatio <= 1.5 ? "met" : "MISSED",
  ],
  [
    `shell echo round trip (one send with wait_for), median of ${N_EXEC}`,
    `${fmt(median(shellTimes))} vs OpenSSH ${fmt(sshMed)} = ${(median(shellTimes) / sshMed).toFixed(3)}x ` +
    `(ssh_execute ${fmt(oursMed)})`,
    "<= 0.5x",
    median(shellTimes) / sshMed <= 0.5 ? "met" : "MISSED",
  ],
  [
    `spawn -> initialize, median of ${N_SPAWN}`,
    `${fmt(spawnMed)} (deno run of an empty module: ${fmt(median(emptyRuns))})`,
    "<= 200 ms",
    spawnMed <= 200 ? "met" : "MISSED",
  ],
  [
    "server peak RSS (VmHWM), exec part",
    `${peakRssExec.toFixed(1)} MiB`,
    "<= 100 MiB",
    peakRssExec <= 100 ? "met" : "MISSED",
  ],
  [
    "  whole run (shells, 200 MiB transfers)",
    `${peakRss.toFixed(1)} MiB`,
    "<= 100 MiB",
    peakRss <= 100 ? "met" : "MISSED",
  ],
  ["tools/list answer", `${toolsListBytes} bytes`, "-", "-"],
  [
    "tools/list, model-visible, all toolsets",
    `${visibleTotal} bytes (${tools.tools.length} tools; read-only ${visibleReadOnly})`,
    "<= 14000 B",
    visibleTotal <= 14_000 ? "met" : "MISSED",
  ],
  ["  per toolset (connect always on)", visibleBySet.join(", "), "-", "-"],
  ...([["up", rssUp], ["down", rssDown]] as const).map(([dir, r]): [string, string, string, string] => [
    `server RSS growth, 1 GiB ${dir}load`,
    `${r.growth.toFixed(1)} MiB (from ${r.from.toFixed(1)} MiB)`,
    "<= 64 MiB",
    r.growth <= 64 ? "met" : "MISSED",
  ]),
  [
    `200 MiB through a local forward, median of ${TUNNEL_ROUNDS}`,
    `${tunnelMbps("ours").toFixed(0)} MB/s vs ssh -L ${tunnelMbps("openssh").toFixed(0)} ` +
    `(${(tunnelMbps("ours") / tunnelMbps("openssh")).toFixed(2)}x)`,
    ">= 0.8x",
    tunnelMbps("ours") / tunnelMbps("openssh") >= 0.8 ? "met" : "MISSED",
  ],
  ...(["up", "down"] as const).map((dir): [string, string, string, string] => {
    const ratio = mbps(`ours ${dir}`) / mbps(`sftp ${dir}`);
    return [
      `200 MiB ${dir}load, median of 3`,
      `${mbps(`ours ${dir}`).toFixed(0)} MB/s vs sftp ${mbps(`sftp ${dir}`).toFixed(0)} (${ratio.toFixed(2)}x), ` +
      `scp ${mbps(`scp ${dir}`).toFixed(0)} (${(mbps(`ours ${dir}`) / mbps(`scp ${dir}`)).toFixed(2)}x)`,
      ">= 1.0x",
      ratio >= 1 ? "met" : "MISSED",
    ];
  }),
];
const jobReadyMed = median(jobReady);
const echoReadyMed = median(echoReady);
const jobWaitMed = median(jobWaits);
const waitExecMed = median(waitExecs);
const jobReadyRatio = jobReadyMed / echoReadyMed;
rows.push(
  // Jobs: reported, no targets.
  [
    `job start -> "ready" seen (wait pattern), median of ${N_JOB_START}`,
    `${fmt(jobReadyMed)} vs ssh_execute echo ready ${fmt(echoReadyMed)} = ${jobReadyRatio.toFixed(2)}x ` +
    `(start call alone ${fmt(median(jobStarts))})`,
    "-",
    "-",
  ],
  [
    `ssh_job wait on an ended job, median of ${N_JOB_WAIT}`,
    `${fmt(jobWaitMed)} vs ssh_execute true ${fmt(waitExecMed)} = ${(jobWaitMed / waitExecMed).toFixed(2)}x`,
    "-",
    "-",
  ],
  [
    `server peak RSS, ${STREAM_JOBS} jobs x ${(STREAM_BYTES / 1e6).toFixed(0)} MB read while streaming`,
    `${streamPeak.toFixed(1)} MiB (from ${streamFrom.toFixed(1)} MiB); ${(streamRead / 1e6).toFixed(0)} MB read ` +
    `in ${(streamMs / 1000).toFixed(1)} s`,
    "-",
    "-",
  ],
  ...hostRows,
);
console.log(`\nmcp-remote-ssh bench (${sshd.host}:${sshd.port}, ${Deno.build.target}, cipher ${PREFERRED})`);
printRows(rows);
console.log(
  `p10/p90 ssh_execute: ${fmt(ours.toSorted((a, b) => a - b)[Math.floor(N_EXEC * 0.1)])}/${
    fmt(ours.toSorted((a, b) => a - b)[Math.floor(N_EXEC * 0.9)])
  }; OpenSSH: ${fmt(openssh.toSorted((a, b) => a - b)[Math.floor(N_EXEC * 0.1)])}/${
    fmt(openssh.toSorted((a, b) => a - b)[Math.floor(N_EXEC * 0.9)])
  }`,
);

// Every benchmarked cipher, each against OpenSSH's client forced to the same
// cipher in the same run; the first is the one the rows above describe.
console.log("\nby cipher (ours vs OpenSSH with -c, same sshd offering only that cipher)");
const cipherRows = runs.map((run) => {
  const exec = median(run.ours) / median(run.openssh);
  const execAlt = median(run.oursAlt) / median(run.opensshAlt);
  const up = mbpsOf(run, "ours up") / mbpsOf(run, "sftp up");
  const down = mbpsOf(run, "ours down") / mbpsOf(run, "sftp down");
  const fwd = tunnelMbpsOf(run, "ours") / tunnelMbpsOf(run, "openssh");
  return [
    run.cipher + (run.cipher === PREFERRED ? " (preferred)" : ""),
    `exec ${fmt(median(run.ours))} vs ${fmt(median(run.openssh))} = ${exec.toFixed(3)}x (alt ${execAlt.toFixed(3)}x)`,
    `up ${mbpsOf(run, "ours up").toFixed(0)} vs sftp ${mbpsOf(run, "sftp up").toFixed(0)} MB/s = ${up.toFixed(2)}x`,
    `down ${mbpsOf(run, "ours down").toFixed(0)} vs sftp ${mbpsOf(run, "sftp down").toFixed(0)} MB/s = ${
      down.toFixed(2)
    }x`,
    `forward ${tunnelMbpsOf(run, "ours").toFixed(0)} vs ssh -L ${tunnelMbpsOf(run, "openssh").toFixed(0)} MB/s = ${
      fwd.toFixed(2)
    }x`,
  ];
});
for (const row of cipherRows) console.log(row.join("\n  "));
