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

const TEST_FILE = /(^|[._])test\.(ts|tsx|mts|js|jsx|mjs)$/;
const KEYS_PREFIX = "mcp-run-keys-";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}

/** Runs the tests; returns the exit code of `deno test`. */
async function main(args: string[]): Promise<number> {
  const soak = args.includes("--soak");
  const passed = args.filter((arg) => arg !== "--soak");
  const files = passed.some(isPath) ? [] : await testFiles(soak);
  if (files.length === 0 && !passed.some(isPath)) {
    console.error("No test files found");
    return 1;
  }
  const dashes = passed.indexOf("--");
  const testArgs = dashes < 0 ? [...passed, ...files] : [...passed.slice(0, dashes), ...files, ...passed.slice(dashes)];
  const jobs = Deno.env.get("DENO_JOBS") ?? String(DEFAULT_JOBS);

  sweepStaleKeyDirs();
  const keys = await Deno.makeTempDir({ prefix: `${KEYS_PREFIX}${Deno.pid}-` });
  let account: TestAccount | null = null;
  try {
    if (Deno.uid() === 0 && Deno.build.os === "linux") account = await joinTestAccount();
    const child = new Deno.Command(Deno.execPath(), {
      args: ["test", "-A", "--frozen", "--v8-flags=--expose-gc", "--parallel", ...testArgs],
      cwd: ROOT,
      env: { DENO_JOBS: jobs, [KEY_CACHE_ENV]: keys },
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    // Ctrl+C reaches deno test through the terminal; a TERM to us is passed on. Either way we
    // stay to clean up after it.
    const forward = (signal: Deno.Signal) => () => {
      try {
        child.kill(signal);
      } catch (error) {
        if (!(error instanceof TypeError)) throw error; // already exited
      }
    };
    const handlers = (["SIGINT", "SIGTERM"] as const).map((signal) => [signal, forward(signal)] as const);
    for (const [signal, handler] of handlers) Deno.addSignalListener(signal, handler);
    try {
      const status = await child.status;
      return status.code !== 0 ? status.code : status.signal === null ? 0 : 1;
    } finally {
      for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
    }
  } finally {
    account?.leave();
    await Deno.remove(keys, { recursive: true });
  }
}

/** Whether a `deno test` argument names a file or directory (and is not a flag or its value). */
function isPath(arg: string): boolean {
  return !arg.startsWith("-") && exists(arg.startsWith("/") ? arg : `${ROOT}${arg}`);
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
