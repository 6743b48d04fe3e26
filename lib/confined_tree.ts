/**
 * Work on whole local directories (listing one, removing a tree) as a series
 * of confined sections (lib/confined.ts): one directory and a bounded number
 * of names per section, with the event loop let run between sections.
 *
 * A section is synchronous, so one over a 100,000-entry directory, or one
 * that removed a whole tree, held every other session (timers, keepalives,
 * HTTP requests) for as long as it ran: 1.5 s for a listing of 100,000
 * entries. Each section walks down from a root again and proves the
 * directory it acts in, so nothing carries over from one section to the
 * next but names, and a directory swapped between two sections is refused
 * by the next walk. In particular a tree is never left by `..`: under -P
 * Deno resolves `..` as text, and `<anchor>/..` would name the anchor's own
 * temp directory, not the parent.
 *
 * @module
 */

import nodePath from "node:path";
import { type EntryInfo, inDirectory } from "./confined.ts";
import { LocalPathError } from "./local_path_error.ts";

/** Names handled (lstat-ed or removed) in one section, at most: about 10 ms of work. */
const CHUNK = 512;
/** Time a run of sections may hold the event loop before it lets other work run. */
const TURN_MS = 10;
/** Directory depth {@linkcode removeTree} descends at most. */
const MAX_REMOVE_DEPTH = 128;
/** Times a directory is emptied again when entries keep appearing in it. */
const EMPTY_ROUNDS = 8;

/**
 * Lists the directory `dir` (absolute, real) inside `roots`: at most
 * `max + 1` entries, sorted by name, so that a caller with a limit of `max`
 * sees that there are more without every entry being examined. Entries
 * removed meanwhile are left out.
 */
export async function listDirectory(dir: string, roots: string[], max = Infinity): Promise<EntryInfo[]> {
  // The names alone are cheap (one getdents); the lstat and readlink of each are what take time.
  const names = inDirectory(dir, roots, (here) => here.names()).sort();
  const wanted = names.slice(0, max + 1);
  const entries: EntryInfo[] = [];
  for (let i = 0; i < wanted.length; i += CHUNK) {
    await pace();
    entries.push(...inDirectory(dir, roots, (here) => here.describe(wanted.slice(i, i + CHUNK))));
  }
  return entries;
}

/**
 * Removes `path` (absolute, its parent real) inside `roots` and, if it is a
 * real directory, everything below it, never following a link. Each
 * directory is emptied in sections of its own, deepest first, then removed
 * from its parent. Nothing is done if `path` does not exist.
 */
export async function removeTree(path: string, roots: string[]): Promise<void> {
  const parent = nodePath.dirname(path);
  const name = nodePath.basename(path);
  const directories = inDirectory(parent, roots, (here) => here.removeEntries([name]), path);
  if (directories.length === 0) return;
  await removeDirectory(parent, name, roots, 0, path);
}

/** Empties `parent/name`, then removes it; tries again if it was refilled meanwhile. */
async function removeDirectory(parent: string, name: string, roots: string[], depth: number, shown: string) {
  const dir = nodePath.join(parent, name);
  if (depth >= MAX_REMOVE_DEPTH) {
    throw new LocalPathError(
      "invalid",
      shown,
      `Cannot remove ${JSON.stringify(shown)}: ${JSON.stringify(dir)} is nested more than ${MAX_REMOVE_DEPTH} ` +
        "levels deep",
    );
  }
  for (let round = 1;; round++) {
    await empty(dir, roots, depth, shown);
    await pace();
    if (inDirectory(parent, roots, (here) => here.removeDirectory(name), shown)) return;
    if (round >= EMPTY_ROUNDS) {
      throw new LocalPathError(
        "failed",
        shown,
        `Cannot remove ${JSON.stringify(shown)}: entries keep appearing in ${JSON.stringify(dir)}`,
      );
    }
  }
}

/** Removes everything in `dir` once: its names as listed now, subdirectories emptied first. */
async function empty(dir: string, roots: string[], depth: number, shown: string): Promise<void> {
  const names = inDirectory(dir, roots, (here) => here.names(), shown);
  for (let i = 0; i < names.length; i += CHUNK) {
    await pace();
    const chunk = names.slice(i, i + CHUNK);
    const directories = inDirectory(dir, roots, (here) => here.removeEntries(chunk), shown);
    for (const sub of directories) await removeDirectory(dir, sub, roots, depth + 1, shown);
  }
}

// When the current run of sections started; null once the event loop has had a turn.
let turnStart: number | null = null;

/**
 * Lets timers, I/O and other sessions run once the sections run since the
 * event loop last had a turn have taken TURN_MS, and costs nothing before.
 * Awaiting a resolved promise would not do: only other microtasks run then.
 * A timer is the turn (node:timers' setImmediate does not let I/O run under
 * Deno 2.9.6: a TCP echo loop got 1 reply in 200 ms between setImmediate
 * yields, 1308 between setTimeout(0) ones).
 */
async function pace(): Promise<void> {
  const now = performance.now();
  if (turnStart === null) {
    turnStart = now;
    // Fires once the loop gets a turn, whoever gave it one: a new run starts then.
    Deno.unrefTimer(setTimeout(() => turnStart = null, 0));
    return;
  }
  if (now - turnStart < TURN_MS) return;
  await new Promise((resolve) => setTimeout(resolve, 0));
}
