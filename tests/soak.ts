/**
 * The soak (`deno task soak`, not part of `deno task test`): 10,000 mixed fuzz calls against the
 * server as users run it, the resident size after the first 1,000 and at the end. Fails when the
 * end is more than 20 MiB above the 1,000-call figure, or when the fuzz rules fail. Both figures
 * are taken once the server has gone idle and V8 has given back the garbage it kept (see
 * `measure`); the figure right after the calls is printed too.
 *
 * `MCP_FUZZ_SEED` replays a run; `MCP_FUZZ_FAMILIES` selects families (see tests/fuzz_test.ts);
 * `MCP_SOAK_CALLS` changes the total; `MCP_SOAK_INSPECT=1` also reads the heap after a full GC
 * through the V8 inspector (and `MCP_SOAK_SNAPSHOTS=DIR` writes heap snapshots there), to tell a
 * leak from memory the allocator keeps (snapshots distort the RSS figures that follow them).
 *
 * @module
 */

import { familiesFromEnv, startFuzz } from "./fixtures/fuzz.ts";
import { freePort, Inspector, type Memory, rssMiB, settledRssMiB } from "./fixtures/fuzz_inspect.ts";
import { startSshd } from "./fixtures/sshd.ts";

const FIRST = 1_000;
const TOTAL = Number(Deno.env.get("MCP_SOAK_CALLS") ?? 10_000);
const ALLOWED_GROWTH_MIB = 20;

const seed = Number(Deno.env.get("MCP_FUZZ_SEED") ?? Math.floor(Math.random() * 2 ** 31));
const families = familiesFromEnv(Deno.env.get("MCP_FUZZ_FAMILIES"));
const inspect = Deno.env.get("MCP_SOAK_INSPECT") === "1";
const snapshots = Deno.env.get("MCP_SOAK_SNAPSHOTS");
console.log(`soak: seed ${seed} (MCP_FUZZ_SEED=${seed} replays it), families ${families.join(",")}`);

await using sshd = await startSshd({ maxSessions: 10 });
const port = inspect || snapshots ? freePort() : 0;
await using fuzz = await startFuzz(sshd, {
  maxFailures: 50,
  denoFlags: port === 0 ? [] : [`--inspect=127.0.0.1:${port}`],
});
using inspector = port === 0 ? null : await Inspector.connect(port);

/**
 * RSS right after the calls, and settled (idle until V8's memory reducer has run): the first
 * moves with V8's collection schedule (up to ~40 MiB of garbage awaiting a major GC under this
 * load), the second is what the server keeps, and is what the limit applies to.
 */
async function measure(label: string, calls: number): Promise<number> {
  const busy = await rssMiB(fuzz.pid);
  const settled = await settledRssMiB(fuzz.pid);
  let line = `soak: after ${calls} calls: RSS ${busy} MiB, settled ${settled} MiB`;
  if (inspector !== null) {
    const m: Memory = await inspector.memory();
    line += ` | after full GC: RSS ${m.rss}, heapUsed ${m.heapUsed}, heapTotal ${m.heapTotal}, external ${m.external}`;
    // A snapshot makes V8 build its whole graph: RSS is not comparable after one.
    if (snapshots) await inspector.snapshot(`${snapshots}/${label}.heapsnapshot`);
  }
  console.log(line);
  return settled;
}

await measure("start", 0);
const started = performance.now();
const first = await fuzz.run({ seed, steps: Infinity, calls: FIRST, families });
const rssFirst = await measure("first", first.calls);
const rest = await fuzz.run({ seed: seed + 1, steps: Infinity, calls: TOTAL - first.calls, families });
const rssEnd = await measure("end", first.calls + rest.calls);
const minutes = ((performance.now() - started) / 60_000).toFixed(1);

const failures = [...first.failures, ...rest.failures];
for (const f of failures.slice(0, 30)) console.log(`soak: FAIL step ${f.step} [${f.family}] ${f.what}`);
const growth = Math.round((rssEnd - rssFirst) * 10) / 10;
console.log(
  `soak: ${first.calls + rest.calls} calls in ${minutes} min; settled RSS ${rssFirst} -> ${rssEnd} MiB ` +
    `(growth ${growth} MiB, allowed ${ALLOWED_GROWTH_MIB}); ${failures.length} rule failures; seed ${seed}`,
);
if (!fuzz.alive()) {
  console.log("soak: the server died");
  Deno.exitCode = 1;
}
if (growth > ALLOWED_GROWTH_MIB || failures.length > 0) Deno.exitCode = 1;
