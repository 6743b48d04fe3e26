/**
 * End to end: a seeded fuzz run of a thousand mixed calls (correct ones, wrong types, odd
 * numbers and strings, unknown fields, bad session ids, paths at their limits, hostile connects,
 * raw JSON-RPC lines, and the cases of issue 13) against a real sshd and the server as users run
 * it (`deno run -P`). Every call must be answered within its own time plus a margin, every error
 * must be coded and none `[INTERNAL]`, the server must stay up, and the session must still run a
 * command at the end.
 *
 * Replay a failure with its printed seed: `MCP_FUZZ_SEED=<seed> deno task test tests/fuzz_test.ts`.
 * `MCP_FUZZ_FAMILIES` selects families: `nul,valid` runs those two, `-regex,-nul` all but those
 * (the families are listed in tests/fixtures/fuzz_cases.ts). `MCP_FUZZ_CALLS` changes the size.
 */

import assert from "node:assert/strict";
import { familiesFromEnv, startFuzz } from "./fixtures/fuzz.ts";
import { FAMILIES } from "./fixtures/fuzz_cases.ts";
import { sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable();
if (skip) console.warn("SKIP fuzz test: no sshd on this machine (apt-get install openssh-server)");

// 1,000 calls on each change (about ten steps for the rarest families, weight 1 of 102; a new seed
// every run); `deno task soak` sends 10,000 (tests/soak.ts), where rarer paths get their turn.
const CALLS = Number(Deno.env.get("MCP_FUZZ_CALLS") ?? 1000);

Deno.test({ name: "a seeded fuzz run never hangs, crashes or answers uncoded", ignore: skip }, async () => {
  const seed = Number(Deno.env.get("MCP_FUZZ_SEED") ?? Math.floor(Math.random() * 2 ** 31));
  const families = familiesFromEnv(Deno.env.get("MCP_FUZZ_FAMILIES"));
  console.log(`fuzz seed ${seed} (replay: MCP_FUZZ_SEED=${seed}); families ${families.join(",")}`);
  await using sshd = await startSshd({ maxSessions: 10 });
  await using fuzz = await startFuzz(sshd);

  const report = await fuzz.run({ seed, steps: Infinity, calls: CALLS, families });
  console.log(`fuzz: ${report.calls} calls in ${report.steps} steps; per family ${JSON.stringify(report.perFamily)}`);

  // The end state: the server answers, and the session (or its replacement) still runs commands.
  // After failures the answer is only reported, so a wedged server costs less waiting.
  const wait = report.failures.length === 0 ? 60_000 : 10_000;
  const ping = fuzz.alive() ? await fuzz.client.ping({ timeout: wait }).then(() => null, String) : "server died";
  const last = fuzz.alive()
    ? await fuzz.client.callTool(
      { name: "ssh_execute", arguments: { session_id: fuzz.sessionId, command: "echo still-usable", timeout: 30 } },
      undefined,
      { timeout: wait },
    ).then((r) => JSON.stringify(r.content), String)
    : "server died";

  const lines = report.failures.slice(0, 40).map((f) => {
    const bug = FAMILIES[f.family]?.knownBug;
    return `  step ${f.step} [${f.family}${bug ? `, ${bug}` : ""}] ${f.what}`;
  });
  const byFamily = Object.entries(
    Object.groupBy(report.failures, (f) => f.family) as Record<string, unknown[]>,
  ).map(([family, list]) => `${family}: ${list.length}`).join(", ");
  assert.deepEqual(
    { failures: report.failures.length, alive: fuzz.alive(), ping, usable: last.includes("still-usable") },
    { failures: 0, alive: true, ping: null, usable: true },
    `seed ${seed}: failures by family: ${byFamily || "none"}\n${lines.join("\n")}\nlast command: ${last}\n` +
      `server stderr tail:\n${fuzz.stderr().slice(-2000)}`,
  );
});
