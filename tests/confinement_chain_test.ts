/**
 * The route without /proc (macOS's, lib/confined_chain.ts), raced on Linux
 * under the shipped permission set: a directory inside a root is swapped in
 * a tight loop (atomic rename exchange) with a symlink to a directory
 * outside while a `deno run -P` process reads, creates, renames, makes
 * directories and lists through it (tests/fixtures/confine_race.ts).
 *
 * What the chain route promises is that nobody but this user and root can
 * swap a directory on the way; it does not promise to win against a racer
 * of the same user, which the first test measures against the /proc route.
 * The second shows that a chain others can write is refused outright.
 */

import assert from "node:assert/strict";
import { ROOT } from "./fixtures/mcp.ts";
import { racerAvailable, startRacer } from "./fixtures/racer.ts";

const ROUNDS = 400;

interface Tally {
  ok: number;
  leaked: number;
  refused: Record<string, number>;
}

interface Setup extends AsyncDisposable {
  base: string;
  root: string;
  outside: string;
  /** Everything below `outside`, to compare after the race. */
  snapshot(): Promise<string[]>;
}

async function setup(): Promise<Setup> {
  const base = await Deno.realPath(await Deno.makeTempDir({ prefix: "mcp-confine-chain-" }));
  const root = `${base}/root`;
  const outside = `${base}/outside`;
  // Same names inside and outside: only the content (and the marker) tells where a result came from.
  for (const [dir, content, mark] of [[`${root}/d`, "inside", "inside-mark"], [outside, "OUTSIDE", "OUTSIDE-MARK"]]) {
    await Deno.mkdir(`${dir}/tree`, { recursive: true });
    await Deno.writeTextFile(`${dir}/f.txt`, content);
    await Deno.writeTextFile(`${dir}/tree/${mark}`, content);
  }
  await Deno.symlink(outside, `${root}/swap`);
  const snapshot = async () => {
    const out: string[] = [];
    const walk = async (dir: string, rel: string) => {
      for await (const e of Deno.readDir(dir)) {
        out.push(`${rel}${e.name}`);
        if (e.isDirectory) await walk(`${dir}/${e.name}`, `${rel}${e.name}/`);
      }
    };
    await walk(outside, "");
    return out.sort();
  };
  return {
    base,
    root,
    outside,
    snapshot,
    async [Symbol.asyncDispose]() {
      await Deno.remove(base, { recursive: true });
    },
  };
}

/** Runs the harness under `-P` with `route` while `d` and `swap` are exchanged. */
async function race(s: Setup, route: "proc" | "chain"): Promise<Record<string, Tally>> {
  await using _racer = await startRacer(`${s.root}/d`, `${s.root}/swap`);
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-P",
      "--quiet",
      "--frozen",
      "--config",
      `${ROOT}deno.json`,
      `${ROOT}tests/fixtures/confine_race.ts`,
      route,
      s.root,
      String(ROUNDS),
    ],
    cwd: s.base,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.ok(out.success, `the harness failed: ${stderr}`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

function total(tallies: Record<string, Tally>, field: "ok" | "leaked"): number {
  return Object.values(tallies).reduce((n, t) => n + t[field], 0);
}

Deno.test({
  name: "under -P, a private chain raced by its own user: the /proc route never leaks, the chain route is measured",
  ignore: !racerAvailable(),
}, async () => {
  await using s = await setup();
  const before = await s.snapshot();
  const proc = await race(s, "proc");
  console.log("proc route:", JSON.stringify(proc));
  assert.equal(total(proc, "leaked"), 0, JSON.stringify(proc));
  assert.deepEqual(await s.snapshot(), before, "the /proc route wrote outside the root");
  assert.ok(total(proc, "ok") > 0, `nothing got through, so the race proved nothing: ${JSON.stringify(proc)}`);

  // The racer is this user (root here), who owns the chain: the chain route
  // does not promise to win, and this records how often it loses.
  const chain = await race(s, "chain");
  const escaped = (await s.snapshot()).filter((name) => !before.includes(name));
  console.log("chain route:", JSON.stringify(chain), `written outside: ${escaped.length}`);
  assert.ok(total(chain, "ok") > 0, `nothing got through: ${JSON.stringify(chain)}`);
});

Deno.test({
  name: "under -P, the chain route refuses every action through a chain others can write, while it is swapped",
  ignore: !racerAvailable(),
}, async () => {
  await using s = await setup();
  const before = await s.snapshot();
  // The directory whose entries are swapped is writable by everyone: anyone could be the racer.
  await Deno.chmod(s.root, 0o777);
  const chain = await race(s, "chain");
  console.log("chain route, root 0777:", JSON.stringify(chain));
  assert.equal(total(chain, "ok"), 0, JSON.stringify(chain));
  assert.equal(total(chain, "leaked"), 0, JSON.stringify(chain));
  for (const [action, t] of Object.entries(chain)) {
    assert.deepEqual(Object.keys(t.refused), ["not-private"], `${action}: ${JSON.stringify(t)}`);
    assert.equal(t.refused["not-private"], ROUNDS);
  }
  assert.deepEqual(await s.snapshot(), before, "something was written outside the root");
});
