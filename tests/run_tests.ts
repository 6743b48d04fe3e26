/**
 * What `deno task test` (and, with `--soak`, `deno task soak`) runs: `deno test` over the test
 * files in parallel, with what the files share set up once for the whole run.
 *
 * - Test modules run in parallel (`--parallel`, {@linkcode DEFAULT_JOBS} at a time unless
 *   `DENO_JOBS` says otherwise): the end-to-end tests spend much of their time waiting on
 *   processes, timers and the network. The slowest files start first ({@linkcode SLOW_FIRST}),
 *   so no long file is left running alone at the end.
 * - One directory of host and client keys for the run (tests/fixtures/keys.ts), named in
 *   `MCP_TEST_KEY_CACHE` and removed at the end.
 * - As root, the suite's account (tests/fixtures/account.ts) is joined for the whole run, so it
 *   is created once instead of again each time no module happens to hold it; the last member
 *   still removes it, as before.
 *
 * Arguments go to `deno test` as they are; without a test file or directory among them, every
 * test file of the repository is run (as plain `deno test` would find them), or with `--soak`
 * the soak tests (`tests/soak/*_soak.ts`, which `deno test` does not find on its own). Examples:
 * `deno task test tests/exec_test.ts`, `deno task test --filter "rekeying"`,
 * `DENO_JOBS=1 deno task test` (one file after another).
 *
 * Deno's own summary line (`ok | N passed ... | N failed`) ends the output once, as .ci/run reads
 * it; the exit code is `deno test`'s.
 *
 * @module
 */

import { ROOT } from "./fixtures/mcp.ts";
import { joinTestAccount, type TestAccount } from "./fixtures/account.ts";
import { KEY_CACHE_ENV } from "./fixtures/keys.ts";
import { exists } from "./fixtures/process.ts";

/**
 * Test modules run at once when `DENO_JOBS` is not set: twice the cores, at least 4. Most files
 * spend their time waiting (timers, remote commands, process start-up), so more jobs than cores
 * pay until the CPU is busy. Measured on 2 cores (whole suite, machine otherwise idle): 4 jobs
 * 5m41s, 8 jobs 5m43s, each with about 8.5 min of CPU used, which then bounds the run.
 */
export const DEFAULT_JOBS: number = Math.max(4, 2 * navigator.hardwareConcurrency);

/**
 * Files started before all others, longest first (from a measured run): each takes a minute or
 * more in a parallel run, which must overlap with the rest of the run rather than follow it.
 */
export const SLOW_FIRST: readonly string[] = [
  "tests/jobs_test.ts",
  "tests/forward_test.ts",
  "tests/http_test.ts",
  "tests/exec_test.ts",
  "tests/elicitation_test.ts",
  "tests/jobs_bound_test.ts",
  "tests/login_shells_test.ts",
  "tests/ssh_layer_test.ts",
  "tests/fanout_test.ts",
  "tests/guardrails_test.ts",
  "tests/forward_refused_test.ts",
  "tests/error_codes_test.ts",
  "tests/audit_test.ts",
  "tests/deadlines_test.ts",
  "tests/connect_test.ts",
  "tests/remote_probe_test.ts",
  "tests/jump_test.ts",
];

/**
 * Test files whose code changes the working directory of its process (lib/confined*.ts walks
 * local paths with chdir(), into directories the tests then remove). The working directory is
 * one per process, shared by every parallel test module: a process another module spawned meanwhile
 * failed to start ("failed resolving cwd"). These run in a `deno test` process of their own, beside
 * the main one; their results are added to the one summary line.
 */
export const CHANGE_CWD: readonly string[] = ["lib/confined_test.ts", "lib/local_paths_test.ts"];

const TEST_FILE = /(^|[._])test\.(ts|tsx|mts|js|jsx|mjs)$/;
const KEYS_PREFIX = "mcp-run-keys-";

/** Runs the tests; returns the exit code of `deno test` (the first non-zero one). */
async function main(args: string[]): Promise<number> {
  const soak = args.includes("--soak");
  const rest = args.filter((arg) => arg !== "--soak");
  const dashes = rest.indexOf("--") < 0 ? rest.length : rest.indexOf("--");
  const named = rest.slice(0, dashes).filter(isPath);
  const flags = rest.slice(0, dashes).filter((arg) => !isPath(arg));
  const scriptArgs = rest.slice(dashes);
  const files = named.length > 0 ? named.flatMap(expand) : await testFiles(soak);
  if (files.length === 0) {
    console.error("No test files found");
    return 1;
  }
  const alone = files.filter((file) => CHANGE_CWD.includes(file));
  const groups = [
    { files: files.filter((file) => !alone.includes(file)), parallel: true },
    { files: alone, parallel: false },
  ].filter((group) => group.files.length > 0);
  const jobs = Deno.env.get("DENO_JOBS") ?? String(DEFAULT_JOBS);

  // Ctrl+C reaches deno test through the terminal; a TERM to us is passed on. Either way we stay
  // to clean up after it. Listening from the start: a signal while the account is being set up
  // stops the run before any test starts, and still cleans up.
  const children: Deno.ChildProcess[] = [];
  let stopped = false;
  const forward = (signal: Deno.Signal) => () => {
    stopped = true;
    for (const child of children) {
      try {
        child.kill(signal);
      } catch (error) {
        if (!(error instanceof TypeError)) throw error; // already exited
      }
    }
  };
  const handlers = (["SIGINT", "SIGTERM"] as const).map((signal) => [signal, forward(signal)] as const);
  for (const [signal, handler] of handlers) Deno.addSignalListener(signal, handler);
  try {
    sweepStaleKeyDirs();
    const keys = await Deno.makeTempDir({ prefix: `${KEYS_PREFIX}${Deno.pid}-` });
    let account: TestAccount | null = null;
    try {
      if (Deno.uid() === 0 && Deno.build.os === "linux") account = await joinTestAccount();
      if (stopped) return 130;
      const started = performance.now();
      for (const group of groups) {
        children.push(
          new Deno.Command(Deno.execPath(), {
            args: [
              "test",
              "-A",
              "--frozen",
              "--v8-flags=--expose-gc",
              ...(group.parallel ? ["--parallel"] : []),
              ...flags,
              ...group.files,
              ...scriptArgs,
            ],
            cwd: ROOT,
            env: { DENO_JOBS: jobs, [KEY_CACHE_ENV]: keys },
            stdin: groups.length === 1 ? "inherit" : "null",
            stdout: groups.length === 1 ? "inherit" : "piped",
            stderr: "inherit",
          }).spawn(),
        );
      }
      const exitCodes = async () =>
        (await Promise.all(children.map((child) => child.status))).map((status) =>
          status.code !== 0 ? status.code : status.signal === null ? 0 : 1
        );
      if (children.length === 1) return (await exitCodes())[0];
      // The main run's output as it comes; the short separate run's after it; one summary line.
      const [main, ...others] = children;
      let done: Output[];
      try {
        done = await Promise.all([pump(main.stdout, true), ...others.map((child) => pump(child.stdout, false))]);
      } catch (error) {
        forward("SIGTERM")(); // nobody reads their output any more
        await exitCodes(); // and the keys and the account stay until they have ended
        throw error;
      }
      const codes = await exitCodes();
      for (const output of done.slice(1)) await write(output.lines.join(""));
      const runs = done.map((output, i) => ({ summaries: output.summaries, code: codes[i] }));
      await write(mergeSummaries(runs, performance.now() - started) + "\n");
      return codes.find((code) => code !== 0) ?? 0;
    } finally {
      account?.leave();
      await Deno.remove(keys, { recursive: true });
    }
  } finally {
    for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
  }
}

/** Whether a `deno test` argument names a file or directory (and is not a flag or its value). */
function isPath(arg: string): boolean {
  return !arg.startsWith("-") && exists(absolute(arg));
}

function absolute(path: string): string {
  return path.startsWith("/") ? path : `${ROOT}${path}`;
}

/** A named file as it is; a directory as the test files below it, as paths from the root when inside it. */
function expand(path: string): string[] {
  const full = absolute(path).replace(/\/+$/, "");
  if (!Deno.statSync(full).isDirectory) return [relative(full)];
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const entry of Deno.readDirSync(dir)) {
      if (entry.isDirectory && !["node_modules", ".git"].includes(entry.name)) walk(`${dir}/${entry.name}`);
      else if (entry.isFile && TEST_FILE.test(entry.name)) found.push(relative(`${dir}/${entry.name}`));
    }
  };
  walk(full);
  return found.sort();
}

function relative(path: string): string {
  return path.startsWith(ROOT) ? path.slice(ROOT.length) : path;
}

/** What a piped `deno test` printed: its lines but the summary (kept apart), ends included. */
interface Output {
  lines: string[];
  summaries: string[];
}

const SUMMARY = /^(ok|FAILED) \| \d+ passed/;

/** Reads `stream` line by line; with `live`, writes each line on at once instead of keeping it. */
async function pump(stream: ReadableStream<Uint8Array>, live: boolean): Promise<Output> {
  const output: Output = { lines: [], summaries: [] };
  let pending = "";
  const take = async (line: string) => {
    if (SUMMARY.test(stripAnsi(line))) output.summaries.push(stripAnsi(line).trim());
    else if (live) await write(line);
    else output.lines.push(line);
  };
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    pending += text;
    for (let end = pending.indexOf("\n"); end >= 0; end = pending.indexOf("\n")) {
      await take(pending.slice(0, end + 1));
      pending = pending.slice(end + 1);
    }
  }
  if (pending !== "") await take(pending);
  return output;
}

async function write(text: string): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  for (let done = 0; done < bytes.length;) done += await Deno.stdout.write(bytes.subarray(done));
}

function stripAnsi(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/\x1b\[[0-9;]*m/g, "");
}

/** What one `deno test` process printed as its summary line(s), and how it exited. */
export interface TestRun {
  summaries: string[];
  code: number;
}

/**
 * One summary line, in deno test's own form (`ok | 731 passed (436 steps) | 0 failed (5m33s)`),
 * adding up the counts of several: .ci/run reads the last such line. A process that exited
 * non-zero without a FAILED summary of its own (it crashed, or was killed) counts as one failure,
 * so the line never says ok, or 0 failed, for a run that failed.
 */
export function mergeSummaries(runs: TestRun[], elapsedMs: number): string {
  const counts = new Map<string, { count: number; steps: number }>([["passed", { count: 0, steps: 0 }]]);
  const add = (label: string, count: number, steps: number) => {
    const total = counts.get(label) ?? { count: 0, steps: 0 };
    total.count += count;
    total.steps += steps;
    counts.set(label, total);
  };
  let failed = false;
  for (const run of runs) {
    let saidFailed = false;
    for (const line of run.summaries) {
      const [verdict, ...parts] = line.split(" | ");
      if (verdict !== "ok") failed = saidFailed = true;
      for (const part of parts) {
        const match = /^(\d+) ([a-z][a-z ]*?)(?: \((\d+) steps?\))?(?: \([^)]*\))?$/.exec(part);
        if (match !== null) add(match[2], Number(match[1]), Number(match[3] ?? 0));
      }
    }
    if (run.code !== 0 && !saidFailed) {
      failed = true;
      add("failed", 1, 0);
    }
  }
  if (!counts.has("failed")) counts.set("failed", { count: 0, steps: 0 });
  const shown = [...counts].map(([label, { count, steps }]) =>
    `${count} ${label}${steps === 0 ? "" : ` (${steps} step${steps === 1 ? "" : "s"})`}`
  );
  return `${failed ? "FAILED" : "ok"} | ${shown.join(" | ")} (${duration(elapsedMs)})`;
}

function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const seconds = Math.floor(ms / 1000);
  return seconds < 60 ? `${seconds}s` : `${Math.floor(seconds / 60)}m${seconds % 60}s`;
}

/** The files `deno test` would find (or the soak files), the slow ones first, paths from the root. */
async function testFiles(soak: boolean): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  const excluded = ((config.exclude ?? []) as string[]).map((path) => path.replace(/\/$/, ""));
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const entry of Deno.readDirSync(`${ROOT}${dir}`)) {
      const path = dir === "" ? entry.name : `${dir}/${entry.name}`;
      if (entry.isDirectory) {
        if ([".git", "node_modules", ...excluded].includes(path)) continue;
        walk(path);
      } else if (entry.isFile) {
        const isSoak = path.startsWith("tests/soak/") && path.endsWith("_soak.ts");
        if (soak ? isSoak : TEST_FILE.test(entry.name)) found.push(path);
      }
    }
  };
  walk("");
  found.sort();
  const first = SLOW_FIRST.filter((path) => found.includes(path));
  return [...first, ...found.filter((path) => !first.includes(path))];
}

/** Removes key directories of runs whose runner is gone (killed before it could clean up). */
function sweepStaleKeyDirs(): void {
  if (Deno.build.os !== "linux") return; // the owner is looked up in /proc
  const tmp = Deno.env.get("TMPDIR") ?? "/tmp";
  for (const entry of Deno.readDirSync(tmp)) {
    const pid = new RegExp(`^${KEYS_PREFIX}(\\d+)-`).exec(entry.name)?.[1];
    if (pid === undefined || exists(`/proc/${pid}`)) continue;
    Deno.removeSync(`${tmp}/${entry.name}`, { recursive: true });
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
