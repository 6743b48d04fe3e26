/**
 * `deno task bench`: mcp-remote-ssh against OpenSSH on the same local sshd,
 * in the same run. Prints medians and ratios; asserts nothing (timings do not
 * belong in tests). OpenSSH baselines that reuse a connection do so through
 * an ESTABLISHED ControlMaster, as ours reuses its open session; rows that
 * open a connection per run say "fresh connection".
 *
 * 1. ssh_execute `true` over MCP stdio on one open session (N=200) vs
 *    `ssh true` through an established ControlMaster (target <= 0.35x), first
 *    in blocks (N ours, then N ssh), then alternating; the alternating rounds
 *    also run `true` on the ssh2 library floor (below), so the row beside it
 *    shows what the MCP layer and our code add.
 * 2. Start-up (N=10, alternated with `deno run` of a module that prints one
 *    line, same flags, timed to that line): spawn -> `initialize` answer
 *    (target <= 2x that module) and spawn -> first `tools/list` answer (what a
 *    user waits for; reported against the same 2x), then spawn -> first
 *    `ssh_connect` ready beside a second connect on the same server (ssh2
 *    loads after start-up; this shows where that cost lands).
 * 3. Peak RSS (VmHWM) of the server over the run: after exec (1), and after
 *    exec, all transfers (6), the forward (8) and the shells (5) (target
 *    <= 90 MiB each). Section 6 prints its VmRSS after each round of the
 *    largest size, first vs last, to show it stays flat.
 * 4. Bytes of the tools/list answer, and what of it reaches the model (name,
 *    description, input schema) per toolset and all on (target <= 14,000).
 * 5. Shell round trip: `echo` through one ssh_shell_send that waits for its
 *    output (`wait_for`; N=200) vs OpenSSH ControlMaster `true` (target <= 0.5x).
 * 6. Transfers of 1 MiB (15 rounds), 50 MiB (7) and 200 MiB (5), up and
 *    down (tests/fixtures/bench_transfers.ts): ours (ssh_upload_file /
 *    ssh_download_file on the open session) vs `sftp -b` and `scp` through
 *    an established ControlMaster (checked: `ssh -O check`, the master's
 *    cipher from its log, one mux session per transfer, and no credential
 *    given to the clients, so a fresh connection could not log in), the ssh2
 *    library floor (fastPut/fastGet), and sftp/scp on a fresh connection.
 *    Alternating: each round runs every method up, then every method down,
 *    starting one method later each round; every upload checked by size.
 *    Target ours >= 1.0x sftp (ControlMaster) for each size and direction.
 *    At 1 MiB the fixed costs decide, as a user meets them: our MCP call
 *    (JSON-RPC, the tool's checks, temp file + rename) against sftp's
 *    process start and mux session set-up.
 * 7. RSS growth of a fresh server during a 1 GiB upload, and during a 1 GiB
 *    download (target <= 64 MiB each).
 * 8. 200 MiB through a local forward vs `ssh -L` to the same sshd, median of
 *    7 alternating rounds (target >= 0.8x). Single runs on a 2-core VM swing
 *    by +-15%, so fewer rounds made the ratio a draw.
 * 9. ssh_execute `true` over streamable HTTP (N=200) vs over stdio, measured
 *    back to back (target <= 1.5x).
 * 10. Jobs, start -> first output: ssh_execute background=true of
 *    `echo ready; sleep 1` to the return of the `ssh_job wait pattern=ready`
 *    that follows it (N=30), alternated with ssh_execute `echo ready`; the
 *    start call alone beside it. Reported only, no target.
 * 11. ssh_job wait on a job that has already ended (N=50), alternated with
 *    ssh_execute `true`. Reported only.
 * 12. Peak RSS of a fresh server while 20 jobs each print ~50 MB and the
 *    client waits on all of them and reads their output in 1 MiB pages as
 *    it grows; bytes read (checked against each job's stdout_bytes and
 *    content) and wall time. Reported only.
 * 13.-15. ssh_config aliases, one ProxyJump hop, fan-out to 20 hosts, on
 *    sshds and servers of their own: see tests/fixtures/bench_hosts.ts.
 * 16. `ssh_execute true` with an audit log against without, alternating
 *    (target <= 1.05x): see tests/fixtures/bench_audit.ts.
 *
 * The ssh2 library floor (tests/fixtures/bench_floor.ts) is one connection
 * of the `ssh2` npm library in the bench process, made through
 * lib/ssh2/mod.ts as ours is (same socket, repairs, cipher list, host key
 * checked), with no MCP layer or session code above it.
 *
 * 1, 6 and 8 run once per cipher (chacha20-poly1305@openssh.com,
 * aes128-gcm@openssh.com, aes256-gcm@openssh.com; `BENCH_CIPHERS` picks
 * others, comma-separated), each against its own sshd that offers only that
 * cipher, so our client has to use it, and OpenSSH's client gets `-c` with
 * it. The target rows are those of the cipher our client prefers (the
 * first of ours that is benchmarked); the other ciphers follow in a table
 * and transfer only the 200 MiB size, to keep the run short. 5, 4, 3, 9,
 * 10 and 11 run on the preferred cipher's server after 1, 6 and 8; 2, 7
 * and 12 start servers of their own. The total wall time is printed last
 * (about 15 minutes on a quiet 2-core machine).
 *
 * `BENCH_ONLY=6` (comma-separated numbers) runs only the sections named,
 * with only the set-up they need: `BENCH_ONLY=6 BENCH_CIPHERS=chacha20-poly1305@openssh.com`
 * is the transfer section alone on the preferred cipher (~2 minutes). `BENCH_N` sets N of 1, 5, 9 and 16;
 * `BENCH_SIZES=1x15,50x7,200x5` (MiB x rounds, the default) the sizes of 6, the last also the other ciphers' size.
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
import { AUDIT_SECTION, benchAudit } from "./fixtures/bench_audit.ts";
import { type Floor, openFloor } from "./fixtures/bench_floor.ts";
import {
  benchTransfers,
  makeBlobs,
  type Method,
  METHOD_LABEL,
  type SizeResult,
  type TransferResult,
  type TransferSize,
} from "./fixtures/bench_transfers.ts";
// @ts-types="@modelcontextprotocol/sdk/shared/transport"
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
// @ts-types="@modelcontextprotocol/sdk/types"
import type { JSONRPCMessage, Tool } from "@modelcontextprotocol/sdk/types.js";

const BENCH_START = performance.now();
const N_EXEC = Number(Deno.env.get("BENCH_N") ?? 200);
const N_SPAWN = 10;
/** Sizes of section 6 on the preferred cipher, with their rounds; the other ciphers run the last only. */
const SIZES: TransferSize[] = (Deno.env.get("BENCH_SIZES") ?? "1x15,50x7,200x5").split(",").map((x) => {
  const [mib, rounds] = x.split("x").map(Number);
  if (!(mib > 0 && Number.isInteger(rounds) && rounds > 0)) throw new Error(`BENCH_SIZES: ${x} is not <MiB>x<rounds>`);
  return { mib, rounds };
});
const EXEC_TARGET = 0.35;
const SPAWN_TARGET = 2;
const RSS_TARGET_MIB = 90;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function fmt(ms: number): string {
  return `${ms.toFixed(2)} ms`;
}

const verdict = (ok: boolean) => ok ? "met" : "MISSED";

/** Prints the table of rows: what, value, target, verdict. */
function printRows(rows: BenchRow[]): void {
  const whatWidth = Math.max(38, ...rows.map(([what]) => what.length));
  for (const [what, value, goal, verdict] of rows) {
    console.log(`${what.padEnd(whatWidth)} ${value.padEnd(62)} target ${goal.padEnd(10)} ${verdict}`);
  }
}

/** The sections to run: `BENCH_ONLY`, comma-separated, or all. */
function sectionsToRun(): Set<number> {
  const all = [...Array.from({ length: 12 }, (_, i) => i + 1), ...HOST_SECTIONS, AUDIT_SECTION];
  const only = Deno.env.get("BENCH_ONLY");
  if (only === undefined || only.trim() === "") return new Set(all);
  const named = only.split(",").map((x) => Number(x.trim()));
  const unknown = named.filter((n) => !all.includes(n));
  if (unknown.length > 0) throw new Error(`BENCH_ONLY names no section ${unknown.join(", ")} (1-${all.length})`);
  return new Set(named);
}

function isDirectory(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
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
const has = (n: number) => SECTIONS.has(n);
/** Rows by section, printed in the order of {@linkcode PRINT_ORDER}. */
const rowsOf = new Map<number, BenchRow[]>();
const addRows = (section: number, ...rows: BenchRow[]) => rowsOf.set(section, [...rowsOf.get(section) ?? [], ...rows]);
const PRINT_ORDER = [1, 9, 5, 2, 3, 4, 7, 8, 6, 10, 11, 12, ...HOST_SECTIONS, AUDIT_SECTION];
/** Sections that use the preferred cipher's sshd (and, but for 7 and 12, its server and session). */
const NEEDS_MAIN = [1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
/** Sections that run once per cipher. */
const PER_CIPHER = [1, 6, 8];

const work = await Deno.makeTempDir({ prefix: "mcp-bench-" });
/**
 * Where section 6 puts its remote files (the remote side is this machine):
 * tmpfs when there is one, so no transfer pays for the disk writeback of the
 * bytes another wrote before it (the local downloads are removed at once,
 * before any writeback starts). `BENCH_REMOTE_TMP=/tmp` measures on disk.
 */
const REMOTE_TMP = Deno.env.get("BENCH_REMOTE_TMP") ?? (isDirectory("/dev/shm") ? "/dev/shm" : "/tmp");
// A bench that fails half-way must not leave its blobs behind.
const removeWork = () => {
  try {
    Deno.removeSync(work, { recursive: true });
  } catch { /* already gone */ }
};
globalThis.addEventListener("unhandledrejection", removeWork);
globalThis.addEventListener("error", removeWork);
const blobOf = has(6) ? await makeBlobs(work, SIZES.map((s) => s.mib)) : () => "";

// A source here sends 200 MiB to each connection; the tunnels go out through
// sshd and back to it, and the reader times the whole stream to EOF.
const SOURCE_BYTES = 200 * MIB;
const source = has(8) ? Deno.listen({ hostname: "127.0.0.1", port: 0 }) : null;
const sourcePort = source === null ? 0 : (source.addr as Deno.NetAddr).port;
const sourceChunk = new Uint8Array(MIB);
crypto.getRandomValues(sourceChunk.subarray(0, 65536));
(async () => {
  if (source === null) return;
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

/** What one cipher measured: sections 1, 6 and 8 (those named). */
interface CipherRun {
  cipher: string;
  sshd: Sshd;
  knownHosts: string;
  server: TestServer;
  session: string;
  oursOnce: () => Promise<number>;
  /** Section 1, or null when it did not run. */
  exec: {
    ours: number[];
    openssh: number[];
    oursAlt: number[];
    opensshAlt: number[];
    floorAlt: number[];
    peakRss: number;
  } | null;
  /** Section 6, or null. */
  transfers: TransferResult | null;
  /** Section 8, or null. */
  tunnel: { ours: number[]; openssh: number[] } | null;
}

/**
 * Sections 1, 6 and 8 (those named) against an sshd that offers only
 * `cipher`; OpenSSH's clients get `-c cipher`. The sshd and server are left
 * running for the caller to close.
 */
async function measureCipher(cipher: string, preferred: boolean): Promise<CipherRun> {
  const sshd = await startSshd({ maxSessions: 10, extraConfig: `Ciphers ${cipher}\n` });
  const knownHosts = await sshd.writeKnownHosts(`${work}/known_hosts-${cipher}`);
  const cipherArgs = ["-c", cipher];

  const server = await startServer({ args: ["--known-hosts", knownHosts, "--allow-local-dir", work] });
  const connect = await callOk(server.client, "ssh_connect", {
    host: sshd.host,
    port: sshd.port,
    username: sshd.user,
    private_key_path: sshd.keys.ed25519.path,
  });
  const session = connect.structured.session_id;
  async function oursOnce(): Promise<number> {
    const t0 = performance.now();
    const r = await callOk(server.client, "ssh_execute", { session_id: session, command: "true" });
    const ms = performance.now() - t0;
    if (r.structured.exit_code !== 0) throw new Error(`true exited ${r.structured.exit_code}`);
    return ms;
  }
  const run: CipherRun = {
    cipher,
    sshd,
    knownHosts,
    server,
    session,
    oursOnce,
    exec: null,
    transfers: null,
    tunnel: null,
  };
  let floor: Floor | null = null;
  try {
    if (has(1) || has(6)) floor = await openFloor(sshd);
    if (has(1)) run.exec = await measureExec(run, floor!, cipherArgs);
    if (has(6)) {
      run.transfers = await benchTransfers({
        cipher,
        sshd,
        knownHosts,
        work,
        remoteTmp: REMOTE_TMP,
        client: server.client,
        session,
        serverPid: server.pid!,
        floor: floor!,
        sizes: preferred ? SIZES : SIZES.slice(-1),
        blob: blobOf,
      });
    }
    if (has(8)) run.tunnel = await measureForward(run, cipherArgs);
  } catch (error) {
    await server.close();
    await sshd.stop();
    throw error;
  } finally {
    await floor?.close();
  }
  return run;
}

/** Section 1 on one cipher: ours, OpenSSH through a ControlMaster, and the ssh2 floor. */
async function measureExec(run: CipherRun, floor: Floor, cipherArgs: string[]): Promise<CipherRun["exec"]> {
  const { sshd, knownHosts, server, oursOnce } = run;
  for (let i = 0; i < 20; i++) await oursOnce();
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
  // The master is up (`-O check` fails otherwise). The timed runs may only use it: ControlMaster=no and no
  // credential (ssh takes an option's first value, so these come first), so a fresh connection could not log in.
  await ssh("-O", "check");
  const viaMaster = [
    ...["ControlMaster=no", "PubkeyAuthentication=no", "PasswordAuthentication=no", "KbdInteractiveAuthentication=no"]
      .flatMap((o) => ["-o", o]),
    ...sshArgs,
  ];
  async function sshOnce(): Promise<number> {
    const t0 = performance.now();
    const out = await new Deno.Command("ssh", { args: [...viaMaster, "true"], stdin: "null" }).output();
    const ms = performance.now() - t0;
    if (out.code !== 0) throw new Error(`ssh through the master failed: ${new TextDecoder().decode(out.stderr)}`);
    return ms;
  }
  async function floorOnce(): Promise<number> {
    const t0 = performance.now();
    const code = await floor.exec("true");
    const ms = performance.now() - t0;
    if (code !== 0) throw new Error(`true exited ${code} on the ssh2 floor`);
    return ms;
  }
  for (let i = 0; i < 20; i++) await floorOnce();
  // In blocks: N of ours, then N of OpenSSH.
  const ours: number[] = [];
  const openssh: number[] = [];
  for (let i = 0; i < N_EXEC; i++) ours.push(await oursOnce());
  for (let i = 0; i < N_EXEC; i++) openssh.push(await sshOnce());
  // Alternating, as a check: drift in machine load hits all alike, and each
  // of our calls follows an idle gap, as an agent's calls do (our session then
  // has a shell started ahead: lib/ssh/exec.ts; in blocks it rarely has).
  const oursAlt: number[] = [];
  const opensshAlt: number[] = [];
  const floorAlt: number[] = [];
  for (let i = 0; i < N_EXEC; i++) {
    oursAlt.push(await oursOnce());
    opensshAlt.push(await sshOnce());
    floorAlt.push(await floorOnce());
  }
  await new Deno.Command("ssh", { args: [...sshArgs, "-O", "exit"], stdin: "null", stderr: "null" }).output();
  return { ours, openssh, oursAlt, opensshAlt, floorAlt, peakRss: await peakRssMiB(server.pid!) };
}

const TUNNEL_ROUNDS = 7;

/** Section 8 on one cipher: 200 MiB through our local forward and through `ssh -L`, alternating. */
async function measureForward(run: CipherRun, cipherArgs: string[]): Promise<CipherRun["tunnel"]> {
  const { sshd, knownHosts, server, session } = run;
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
  return tunnel;
}

/** Section 9 on the preferred cipher's sshd, beside its stdio server. */
async function section9(main: CipherRun): Promise<BenchRow[]> {
  const { sshd, knownHosts, oursOnce } = main;
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

  const httpMed = median(overHttp);
  const httpStdioMed = median(overStdio);
  const httpRatio = httpMed / httpStdioMed;
  return [[
    `9. ssh_execute true over streamable HTTP, median of ${N_EXEC}`,
    `${fmt(httpMed)} vs stdio ${fmt(httpStdioMed)} = ${httpRatio.toFixed(3)}x`,
    "<= 1.5x",
    verdict(httpRatio <= 1.5),
  ]];
}

/** Sections 10 and 11 on the preferred cipher's server and session. */
async function sections10and11(main: CipherRun): Promise<void> {
  const { server, session, oursOnce } = main;
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

  const jobReadyMed = median(jobReady);
  const echoReadyMed = median(echoReady);
  const jobWaitMed = median(jobWaits);
  const waitExecMed = median(waitExecs);
  const jobReadyRatio = jobReadyMed / echoReadyMed;
  if (has(10)) {
    addRows(10, [
      `10. job start -> "ready" seen (wait pattern), median of ${N_JOB_START}`,
      `${fmt(jobReadyMed)} vs ssh_execute echo ready ${fmt(echoReadyMed)} = ${jobReadyRatio.toFixed(2)}x ` +
      `(start call alone ${fmt(median(jobStarts))})`,
      "-",
      "-",
    ]);
  }
  if (has(11)) {
    addRows(11, [
      `11. ssh_job wait on an ended job, median of ${N_JOB_WAIT}`,
      `${fmt(jobWaitMed)} vs ssh_execute true ${fmt(waitExecMed)} = ${(jobWaitMed / waitExecMed).toFixed(2)}x`,
      "-",
      "-",
    ]);
  }
}

/** Section 7: a server of its own on the preferred cipher's sshd. */
async function section7(sshd: Sshd, knownHosts: string): Promise<BenchRow[]> {
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

  await Deno.remove(`${work}/gib`).catch(() => {});
  await Deno.remove(`${work}/gib.back`).catch(() => {});
  return ([["up", rssUp], ["down", rssDown]] as const).map(([dir, r]): BenchRow => [
    `7. server RSS growth, 1 GiB ${dir}load`,
    `${r.growth.toFixed(1)} MiB (from ${r.from.toFixed(1)} MiB)`,
    "<= 64 MiB",
    verdict(r.growth <= 64),
  ]);
}

/** Section 12: a server of its own on the preferred cipher's sshd. */
async function section12(sshd: Sshd, knownHosts: string): Promise<BenchRow[]> {
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
      const w = await callOk(jobsClient, "ssh_job", {
        session_id: jobsSession,
        action: "wait",
        job_id: id,
        timeout: 25,
      });
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

  return [[
    `12. server peak RSS, ${STREAM_JOBS} jobs x ${(STREAM_BYTES / 1e6).toFixed(0)} MB read while streaming`,
    `${streamPeak.toFixed(1)} MiB (from ${streamFrom.toFixed(1)} MiB); ${(streamRead / 1e6).toFixed(0)} MB read ` +
    `in ${(streamMs / 1000).toFixed(1)} s`,
    "-",
    "-",
  ]];
}

/**
 * Section 2: spawn -> initialize, -> first tools/list and -> first ssh_connect
 * ready, alternated with `deno run` of a module that prints one line, timed to
 * that line as ours is timed to its answer (so neither side's exit counts).
 * ssh2 loads after start-up (lib/ssh2/mod.ts): the connect row shows whether
 * that cost reaches the first connection, beside a second connect on the same
 * server.
 */
async function section2(): Promise<BenchRow[]> {
  await using sshd = await startSshd();
  const knownHosts = await sshd.writeKnownHosts(`${work}/known_hosts-spawn`);
  const emptyModule = `${work}/empty.ts`;
  await Deno.writeTextFile(emptyModule, 'console.log("up");\n');
  const init: number[] = [];
  const listed: number[] = [];
  const connected: number[] = [];
  const again: number[] = [];
  const emptyRuns: number[] = [];
  const connectArgs = {
    host: sshd.host,
    port: sshd.port,
    username: sshd.user,
    private_key_path: sshd.keys.ed25519.path,
  };
  for (let i = 0; i < N_SPAWN + 1; i++) {
    const t0 = performance.now();
    const s = await startServer({ args: ["--known-hosts", knownHosts] });
    const tInit = performance.now() - t0;
    const tools = await s.client.listTools();
    const tList = performance.now() - t0;
    const first = await callOk(s.client, "ssh_connect", connectArgs);
    const tConnect = performance.now() - t0;
    const t2 = performance.now();
    const second = await callOk(s.client, "ssh_connect", connectArgs);
    const tAgain = performance.now() - t2;
    for (const c of [first, second]) {
      await callOk(s.client, "ssh_close_session", { session_id: c.structured.session_id });
    }
    await s.close();
    if (tools.tools.length === 0) throw new Error("tools/list answered no tools");
    const t1 = performance.now();
    // The flags of runArgs(): the same deno.json, permission set and V8 flags.
    const empty = new Deno.Command(Deno.execPath(), {
      args: ["run", ...RUN_FLAGS, "--quiet", "--frozen", "--config", `${ROOT}deno.json`, emptyModule],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const reader = empty.stdout.getReader();
    const line = await reader.read();
    const tEmpty = performance.now() - t1;
    reader.releaseLock();
    await empty.stdout.cancel();
    if (line.done || !(await empty.status).success) throw new Error("deno run of the one-line module failed");
    if (i === 0) continue; // warms the caches both read
    init.push(tInit);
    listed.push(tList);
    connected.push(tConnect);
    again.push(tAgain);
    emptyRuns.push(tEmpty);
  }
  const e = median(emptyRuns);
  const [i, l, c, a] = [median(init), median(listed), median(connected), median(again)];
  return [
    [
      `2. spawn -> initialize, median of ${N_SPAWN} (alternated)`,
      `${fmt(i)} vs deno run of a one-line module ${fmt(e)} = ${(i / e).toFixed(2)}x`,
      `<= ${SPAWN_TARGET}x`,
      verdict(i / e <= SPAWN_TARGET),
    ],
    [
      `  spawn -> first tools/list answer`,
      `${fmt(l)} = ${(l / e).toFixed(2)}x the one-line module`,
      `(<= ${SPAWN_TARGET}x)`,
      verdict(l / e <= SPAWN_TARGET),
    ],
    [
      `  spawn -> first ssh_connect ready (after tools/list)`,
      `${fmt(c)}: ${fmt(c - l)} after tools/list, vs a second connect on the same server ${fmt(a)}`,
      "-",
      "-",
    ],
  ];
}

const rate = (mib: number, ms: number) => (mib * MIB / 1e6) / (ms / 1000);
/** "12.3 ms (85 MB/s)" for one method's median. */
function transferFigure(mib: number, ms: number): string {
  return `${ms < 1000 ? fmt(ms) : `${(ms / 1000).toFixed(2)} s`} (${rate(mib, ms).toFixed(0)} MB/s)`;
}

/** The rows of section 6 for one cipher's results. */
function transferRows(t: TransferResult, peak: number | null): BenchRow[] {
  const rows: BenchRow[] = [];
  for (const s of t.sizes) {
    for (const dir of ["up", "down"] as const) {
      const m = (method: Method) => median(s.ms[`${method} ${dir}`]);
      // Speed ratio: their time over ours.
      const vs = (method: Method) => (m(method) / m("ours")).toFixed(2);
      const ok = m("sftp") / m("ours") >= 1;
      rows.push(
        [
          `6. ${s.mib} MiB ${dir}load, median of ${s.rounds} (alternating)`,
          `ours ${transferFigure(s.mib, m("ours"))} vs sftp (ControlMaster) ${transferFigure(s.mib, m("sftp"))} = ` +
          `${vs("sftp")}x`,
          ">= 1.0x",
          verdict(ok),
        ],
        [
          `  ${METHOD_LABEL.scp}; ${METHOD_LABEL.floor}`,
          `${transferFigure(s.mib, m("scp"))} = ${vs("scp")}x; ` +
          `${transferFigure(s.mib, m("floor"))}, ours ${vs("floor")}x of it`,
          "-",
          "-",
        ],
        [
          `  fresh connection: sftp; scp`,
          `${transferFigure(s.mib, m("sftp fresh"))} = ${vs("sftp fresh")}x; ` +
          `${transferFigure(s.mib, m("scp fresh"))} = ${vs("scp fresh")}x`,
          "-",
          "-",
        ],
      );
    }
  }
  rows.push([
    "  the ControlMaster of sftp/scp",
    `${t.masterCheck}; its log: cipher ${t.cipher} both ways, ${t.muxSessions} sessions through it (one per transfer)`,
    "-",
    "-",
  ]);
  const rss = t.rssAfterLargest;
  const largest = t.sizes.at(-1)!.mib;
  rows.push([
    `  server VmRSS after each ${largest} MiB round`,
    `first ${rss[0].toFixed(1)} MiB, last ${rss.at(-1)!.toFixed(1)} MiB (${rss.map((x) => x.toFixed(0)).join(", ")})` +
    (peak === null ? "" : `; peak (VmHWM) so far ${peak.toFixed(1)} MiB`),
    "-",
    "-",
  ]);
  return rows;
}

// --- the run -------------------------------------------------------------------
const runs: CipherRun[] = [];
let main: CipherRun | null = null;
try {
  if (NEEDS_MAIN.some(has)) {
    // The preferred cipher first; its sshd and server stay for the sections below.
    const others = PER_CIPHER.some(has) ? BENCHED.filter((c) => c !== PREFERRED) : [];
    for (const cipher of [PREFERRED, ...others]) {
      const run = await measureCipher(cipher, cipher === PREFERRED);
      runs.push(run);
      if (cipher === PREFERRED) main = run;
      else {
        await run.server.close();
        await run.sshd.stop();
      }
    }
  }
  source?.close();

  if (main !== null) {
    const { server, session, exec } = main;
    if (exec !== null) {
      const [o, s, oa, sa, fa] = [exec.ours, exec.openssh, exec.oursAlt, exec.opensshAlt, exec.floorAlt].map(median);
      const p = (xs: number[], q: number) => xs.toSorted((a, b) => a - b)[Math.floor(xs.length * q)];
      addRows(
        1,
        [
          `1. ssh_execute true, median of ${N_EXEC}`,
          `${fmt(o)} vs OpenSSH ControlMaster ${fmt(s)} = ${(o / s).toFixed(3)}x`,
          `<= ${EXEC_TARGET}x`,
          verdict(o / s <= EXEC_TARGET),
        ],
        [
          `  same, alternating ours / ssh / floor`,
          `${fmt(oa)} vs ${fmt(sa)} = ${(oa / sa).toFixed(3)}x`,
          `<= ${EXEC_TARGET}x`,
          verdict(oa / sa <= EXEC_TARGET),
        ],
        [
          `  ssh2 library floor, exec true (alternating)`,
          `${fmt(fa)} = ${(fa / sa).toFixed(3)}x of ControlMaster; ours adds ${fmt(oa - fa)} to it`,
          "-",
          "-",
        ],
        [
          `  p10/p90 (blocks)`,
          `ours ${fmt(p(exec.ours, 0.1))}/${fmt(p(exec.ours, 0.9))}; ` +
          `OpenSSH ${fmt(p(exec.openssh, 0.1))}/${fmt(p(exec.openssh, 0.9))}`,
          "-",
          "-",
        ],
      );
    }
    if (main.transfers !== null) {
      addRows(6, ...transferRows(main.transfers, await peakRssMiB(server.pid!)));
    }
    if (main.tunnel !== null) {
      const t = (k: "ours" | "openssh") => (SOURCE_BYTES / 1e6) / (median(main!.tunnel![k]) / 1000);
      addRows(8, [
        `8. 200 MiB through a local forward, median of ${TUNNEL_ROUNDS}`,
        `${t("ours").toFixed(0)} MB/s vs ssh -L ${t("openssh").toFixed(0)} (${(t("ours") / t("openssh")).toFixed(2)}x)`,
        ">= 0.8x",
        verdict(t("ours") / t("openssh") >= 0.8),
      ]);
    }

    // --- 5. shell round trip: ssh_shell_send waiting for the output in the same call ----
    if (has(5)) {
      await callOk(server.client, "ssh_shell_open", { session_id: session });
      await callOk(server.client, "ssh_shell_send", {
        session_id: session,
        data: "PS1='> '",
        wait_for: "> ",
        timeout: 10,
      });
      const shellOnce = async (i: number): Promise<number> => {
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
      };
      for (let i = 0; i < 20; i++) await shellOnce(i);
      const shellTimes: number[] = [];
      for (let i = 20; i < 20 + N_EXEC; i++) shellTimes.push(await shellOnce(i));
      const sh = median(shellTimes);
      const ssh = exec === null ? null : median(exec.openssh);
      addRows(5, [
        `5. shell echo round trip (one send with wait_for), median of ${N_EXEC}`,
        ssh === null
          ? `${fmt(sh)} (section 1 did not run: no OpenSSH figure)`
          : `${fmt(sh)} vs OpenSSH ${fmt(ssh)} = ${(sh / ssh).toFixed(3)}x (ssh_execute ${fmt(median(exec!.ours))})`,
        "<= 0.5x",
        ssh === null ? "-" : verdict(sh / ssh <= 0.5),
      ]);
    }

    // --- 4. tools/list size ------------------------------------------------------
    if (has(4)) {
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
      addRows(
        4,
        ["4. tools/list answer", `${toolsListBytes} bytes`, "-", "-"],
        [
          "  model-visible, all toolsets",
          `${visibleTotal} bytes (${tools.tools.length} tools; read-only ${visibleReadOnly})`,
          "<= 14000 B",
          verdict(visibleTotal <= 14_000),
        ],
        ["  per toolset (connect always on)", visibleBySet.join(", "), "-", "-"],
      );
    }

    // --- 3. peak RSS of the server that served everything above -----------------
    if (has(3)) {
      const peakRss = await peakRssMiB(server.pid!);
      const ran = [1, 6, 8, 5].filter(has).join(", ");
      if (exec !== null) {
        addRows(3, [
          "3. server peak RSS (VmHWM), after exec (1)",
          `${exec.peakRss.toFixed(1)} MiB`,
          `<= ${RSS_TARGET_MIB} MiB`,
          verdict(exec.peakRss <= RSS_TARGET_MIB),
        ]);
      }
      addRows(3, [
        `${exec === null ? "3. server peak RSS (VmHWM)," : " "} whole run (sections ${ran})`,
        `${peakRss.toFixed(1)} MiB`,
        `<= ${RSS_TARGET_MIB} MiB`,
        verdict(peakRss <= RSS_TARGET_MIB),
      ]);
    }

    if (has(9)) addRows(9, ...await section9(main));
    if (has(10) || has(11)) await sections10and11(main);
    await server.close();
  }

  if (has(2)) addRows(2, ...await section2());
  if (main !== null && has(7)) addRows(7, ...await section7(main.sshd, main.knownHosts));
  if (main !== null && has(12)) addRows(12, ...await section12(main.sshd, main.knownHosts));
} finally {
  await main?.server.close();
  await main?.sshd.stop();
  try {
    source?.close();
  } catch { /* closed after the per-cipher sections */ }
  removeWork();
}

// --- 13-15. hosts from ssh_config, ProxyJump, fan-out: servers of their own -------
for (const row of await benchHostSections(SECTIONS)) addRows(13, row);
// --- 16. the audit log's cost per call: servers of their own -----------------------
if (has(AUDIT_SECTION)) addRows(AUDIT_SECTION, ...await benchAudit());

const cipherNote = main === null ? "" : `, cipher ${PREFERRED}`;
console.log(`\nmcp-remote-ssh bench, sections ${[...SECTIONS].join(", ")} (${Deno.build.target}${cipherNote})`);
printRows(PRINT_ORDER.flatMap((n) => rowsOf.get(n) ?? []));

// Every benchmarked cipher, each against OpenSSH's client forced to the same
// cipher in the same run; the first is the one the rows above describe.
if (PER_CIPHER.some(has) && runs.length > 0) {
  console.log("\nby cipher (ours vs OpenSSH with -c, same sshd offering only that cipher)");
  for (const run of runs) {
    const lines = [run.cipher + (run.cipher === PREFERRED ? " (preferred)" : "")];
    if (run.exec !== null) {
      const e = run.exec;
      lines.push(
        `exec ${fmt(median(e.ours))} vs ControlMaster ${fmt(median(e.openssh))} = ` +
          `${(median(e.ours) / median(e.openssh)).toFixed(3)}x (alt ${
            (median(e.oursAlt) / median(e.opensshAlt)).toFixed(3)
          }x; ssh2 floor ${fmt(median(e.floorAlt))})`,
      );
    }
    if (run.transfers !== null) {
      const s: SizeResult = run.transfers.sizes.at(-1)!;
      for (const dir of ["up", "down"] as const) {
        const m = (k: Method) => median(s.ms[`${k} ${dir}`]);
        lines.push(
          `${s.mib} MiB ${dir} ${rate(s.mib, m("ours")).toFixed(0)} vs sftp (CM) ${
            rate(s.mib, m("sftp")).toFixed(0)
          } ` +
            `MB/s = ${(m("sftp") / m("ours")).toFixed(2)}x; scp (CM) ${rate(s.mib, m("scp")).toFixed(0)}, ` +
            `ssh2 floor ${rate(s.mib, m("floor")).toFixed(0)}, fresh sftp ${rate(s.mib, m("sftp fresh")).toFixed(0)} ` +
            `MB/s (median of ${s.rounds})`,
        );
      }
    }
    if (run.tunnel !== null) {
      const t = (k: "ours" | "openssh") => (SOURCE_BYTES / 1e6) / (median(run.tunnel![k]) / 1000);
      lines.push(
        `forward ${t("ours").toFixed(0)} vs ssh -L ${t("openssh").toFixed(0)} MB/s = ${
          (t("ours") / t("openssh")).toFixed(2)
        }x`,
      );
    }
    console.log(lines.join("\n  "));
  }
}
console.log(`\ntotal wall time ${((performance.now() - BENCH_START) / 1000).toFixed(0)} s`);
