/**
 * Where confinement sections start and end, and which route proves them on
 * this platform (see lib/confined.ts): the start directory every section
 * returns to, the /proc anchor of the Linux route and the behavioural
 * self-test that must pass before either route is trusted.
 *
 * @module
 */

import nodePath from "node:path";
import { chainSelfTest } from "./confined_chain.ts";

// Captured once, before any section can have moved the process: relative local
// paths are resolved against it, and sections return to it.
const START = captureStart();

function captureStart(): string | null {
  try {
    return Deno.cwd();
  } catch {
    // Started in a deleted directory (or without read permission): relative paths have no base.
    return null;
  }
}

/**
 * The process's working directory when it started (captured once, when this
 * module is loaded), against which relative local paths are resolved; null if
 * it had none. Later changes, such as the directory being deleted, do not
 * affect it.
 */
export function startDirectory(): string | null {
  return START;
}

/**
 * Ends a section: back to the start directory, or to `/` if that is gone, so
 * that the process never stays in a deleted directory (where Deno.cwd()
 * throws) nor in one a section walked into.
 */
export function restoreDirectory(): void {
  if (START !== null) {
    try {
      Deno.chdir(START);
      return;
    } catch {
      // Deleted or replaced by a file since start-up: fall back below.
    }
  }
  try {
    Deno.chdir("/");
  } catch {
    // Nothing is left to return to; no section relies on the directory it ends in.
  }
}

/**
 * How containment is proven: "proc" through Linux's /proc/self/cwd, "chain"
 * by path text along directories only this user or root can change (macOS).
 */
export type ConfinementRoute = "proc" | "chain";

/** What the self-test of a route found. */
export type SelfTest = { ok: true; route: ConfinementRoute; umask: number; owner: number | null } | {
  ok: false;
  reason: string;
  /** The environment (no temp directory, a failed system call), not Deno's behaviour, made it fail. */
  transient?: boolean;
};
const selfTests = new Map<ConfinementRoute, SelfTest>();
let forcedRoute: ConfinementRoute | null = null;

/**
 * For tests only: takes `route` for every later action instead of the
 * platform's own (null restores it), so that the macOS route is tested on
 * Linux too. Deliberately reachable from no flag, configuration key or
 * environment variable: on Linux it would trade the /proc proof for the
 * weaker chain rule.
 */
export function forceConfinementRoute(route: ConfinementRoute | null): void {
  forcedRoute = route;
}

/** The route this platform uses, or why there is none. */
function platformRoute(): ConfinementRoute | { reason: string } {
  if (forcedRoute !== null) return forcedRoute;
  if (Deno.build.os === "linux") return "proc";
  if (Deno.build.os === "darwin") return "chain";
  if (Deno.build.os === "windows") {
    return {
      reason: "on Windows Deno reports neither owners nor permission bits and has no /proc, so no route can prove it",
    };
  }
  return { reason: `no route proves it on ${Deno.build.os}` };
}

/**
 * The umask the kernel applies to new directories, as measured by the
 * self-test (Deno needs `--allow-sys` to ask); 0o022 if unknown.
 */
export function processUmask(): number {
  const test = confinementSelfTest();
  return test.ok ? test.umask : 0o022;
}

/**
 * Runs (once per process) the behavioural test that every action this
 * module takes through the anchor reaches the kernel unresolved. Exported
 * for tests and for a start-up log line.
 */
export function confinementSelfTest(): SelfTest {
  const route = platformRoute();
  if (typeof route !== "string") return { ok: false, reason: route.reason };
  const known = selfTests.get(route);
  if (known !== undefined) return known;
  let test: SelfTest;
  if (route === "proc") test = runSelfTest();
  else {
    const chain = chainSelfTest(restoreDirectory);
    test = chain.ok ? { ok: true, route, umask: chain.umask, owner: chain.owner } : chain;
  }
  // Only what Deno does is remembered: a failure the environment caused (a
  // full temp directory, say) is tried again by the next action.
  if (test.ok || test.transient !== true) selfTests.set(route, test);
  return test;
}

function runSelfTest(): SelfTest {
  if (Deno.build.os !== "linux") return { ok: false, reason: "it needs Linux's /proc/self/cwd" };
  let base: string | null = null;
  try {
    base = Deno.makeTempDirSync({ prefix: "mcp-remote-ssh-selftest-" });
    const gone = nodePath.join(base, "gone");
    Deno.mkdirSync(gone);
    const ino = Deno.statSync(gone).ino;
    // Where a resolution through getcwd()'s text would land once `gone` is deleted.
    const decoy = `${gone} (deleted)`;
    Deno.mkdirSync(decoy);
    Deno.writeTextFileSync(nodePath.join(decoy, "x"), "decoy");
    Deno.symlinkSync("x", nodePath.join(decoy, "l"));
    Deno.mkdirSync(nodePath.join(decoy, "d"));
    Deno.mkdirSync(nodePath.join(base, "umask"), { mode: 0o777 });
    const umask = ~(Deno.statSync(nodePath.join(base, "umask")).mode ?? 0o755) & 0o777;
    const result = withAnchor((anchor) => {
      Deno.chdir(gone);
      Deno.removeSync(gone);
      const at = (name: string) => `${anchor}/${name}`;
      const probes: [string, () => unknown][] = [
        ["lstat", () => Deno.lstatSync(at("x"))],
        ["readlink", () => Deno.readLinkSync(at("l"))],
        ["mkdir", () => Deno.mkdirSync(at("m"))],
        ["create", () => Deno.makeTempFileSync({ dir: anchor })],
        ["rename", () => Deno.renameSync(at("x"), at("y"))],
        ["symlink", () => Deno.symlinkSync("t", at("s"))],
        ["remove", () => Deno.removeSync(at("x"))],
        ["chdir", () => Deno.chdir(at("d"))],
      ];
      for (const [name, probe] of probes) {
        try {
          probe();
          return `${name} through /proc/self/cwd reached a path, not the working directory`;
        } catch (error) {
          if (!(error instanceof Deno.errors.NotFound)) return `${name} failed: ${describe(error)}`;
        }
      }
      if (Deno.statSync(`${anchor}/.`).ino !== ino) return "stat through /proc/self/cwd named another directory";
      if ([...Deno.readDirSync(anchor)].length !== 0) return "readdir through /proc/self/cwd listed another directory";
      return null;
    });
    const left = [...Deno.readDirSync(decoy)].map((e) => e.name).sort().join(",");
    if (result !== null) return { ok: false, reason: result };
    if (left !== "d,l,x") return { ok: false, reason: "an action through /proc/self/cwd changed another directory" };
    return { ok: true, route: "proc", umask, owner: null };
  } catch (error) {
    return { ok: false, reason: `the self-test failed: ${describe(error)}`, transient: true };
  } finally {
    restoreDirectory();
    if (base !== null) {
      try {
        Deno.removeSync(base, { recursive: true });
      } catch {
        // A leftover empty temp directory is not worth failing over.
      }
    }
  }
}

/**
 * Makes a fresh anchor (a symlink to /proc/self/cwd in a new private temp
 * directory), runs `act`, then ends the section ({@linkcode restoreDirectory})
 * and removes the anchor. All synchronous.
 */
export function withAnchor<T>(act: (anchor: string) => T): T {
  const holder = Deno.makeTempDirSync({ prefix: "mcp-remote-ssh-" });
  const anchor = nodePath.join(holder, "cwd");
  try {
    Deno.symlinkSync("/proc/self/cwd", anchor);
    return act(anchor);
  } finally {
    try {
      restoreDirectory();
    } finally {
      try {
        Deno.removeSync(holder, { recursive: true });
      } catch {
        // Removing a private symlink and its directory failing is not a reason to fail the action.
      }
    }
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
