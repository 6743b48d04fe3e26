/**
 * Acting on local files inside a directory proven to lie under the local
 * roots, with no window in which a path component swapped for a symlink can
 * redirect the action (uploads read, downloads create, rename, remove).
 *
 * Deno has no openat(), and under the shipped permission set (`deno run -P`)
 * it resolves a relative path against getcwd() before the system call
 * (strace, Deno 2.9.6: after `chdir("/r/d")`, `lstat("f")` is
 * `statx("/r/d/f")`), so walking with chdir() and then acting on relative
 * names still walks every component again, and loses the race. What holds:
 *
 * - The working directory is a reference to a directory inode, and getcwd()
 *   says where that inode is now. chdir() one component at a time, each
 *   checked with lstat() to be a directory and then with getcwd() to be
 *   where it was expected, proves the working directory is inside a root.
 * - The kernel's `/proc/self/cwd` link resolves to that inode without walking
 *   any path. Deno refuses `/proc/self/...` named directly, but passes a path
 *   through a symlink to it unchanged to lstat, readlink, readdir, mkdir,
 *   chdir, rename, symlink, remove and makeTempFile (O_CREAT|O_EXCL). Each
 *   action goes through such a symlink (the "anchor"), made fresh in the
 *   system temp directory for each action and removed after it.
 * - Deno.open is the exception: it resolves symlinks itself and opens the
 *   resulting text path, so under -P `O_NOFOLLOW` has no effect (a final
 *   link is followed, where -A would fail with ELOOP). A descriptor it
 *   returns is trusted only once its device and inode equal those of an
 *   lstat() through the anchor: that check, not O_NOFOLLOW, is what refuses
 *   a link. A link raced in between the lstat and the open still makes the
 *   process open() its target (read-only or write-only, non-blocking, never
 *   creating or truncating) before the descriptor is refused and closed,
 *   with nothing read or written; a realpath() of the name right before the
 *   open narrows that window, it cannot close it.
 *
 * Whether Deno still behaves so is checked once, by a self-test in which the
 * working directory is deleted and a decoy directory is put where a textual
 * resolution would land: any action reaching the decoy, or any other
 * surprise, turns every local file action into a refusal ("fail closed").
 *
 * Without /proc (macOS) the "chain" route applies instead: the same walk,
 * but from `/`, requiring every directory on the way to be changeable only
 * by this process's user or root (lib/confined_chain.ts), then acting by
 * absolute path text; an opened descriptor must still match an lstat of its
 * name (under -P Deno resolves a final link itself before its O_NOFOLLOW open,
 * so this match is what refuses one), and getcwd() must still name the
 * directory after each action. That defeats every other user; it does not
 * defeat a process of the same user (or root), which has the same access to
 * those files anyway. On that route a regular file with more than one hard
 * link is not read: macOS lets anyone hard-link any file they can see, so
 * another name of it may have been made by anyone and lie anywhere. Windows
 * has neither route: every action is refused.
 *
 * The working directory is process-wide: every section here is synchronous
 * (one JavaScript turn, no await) and ends in the directory the process
 * started in, or in `/` once that is gone, never in a deleted or foreign
 * one. Deno turns every relative path into an absolute one when an
 * operation is called, so asynchronous work already in flight is not
 * affected. A section acts in one directory only; work on a whole tree is
 * one section per directory, each walking down again (lib/confined_tree.ts).
 *
 * @module
 */

import fs from "node:fs";
import nodePath from "node:path";
import { chainProblem } from "./confined_chain.ts";
import { confinementSelfTest, restoreDirectory, withAnchor } from "./confined_route.ts";
import { LocalPathError } from "./local_path_error.ts";

/** What an lstat through the anchor says about one entry. */
export interface EntryInfo {
  name: string;
  type: "file" | "directory" | "symlink" | "other";
  size: number;
  /** Permission bits (0o7777 at most). */
  mode: number;
  /** A symlink's target, as stored. */
  target?: string;
}

/** Actions on single names inside the proven directory; valid only during the section. */
export interface Here {
  /** The proven directory's real path. */
  readonly path: string;
  /** lstat of `name`, or null if there is none. */
  lstat(name: string): Deno.FileInfo | null;
  /** Opens the regular file `name` for reading, proven to be the one in this directory. */
  openRead(name: string): { fd: number; info: fs.Stats };
  /** Creates a new private (0600) file named `name` exclusively; returns its proven descriptor. */
  create(name: string): number;
  /** Creates the directory `name` with `mode` (the umask applies). */
  mkdir(name: string, mode: number): void;
  /** Creates the symlink `name` pointing at `target` (not checked here). */
  symlink(target: string, name: string): void;
  /** Renames `from` to `to` in this directory; refuses an existing `to` unless `replace`. */
  rename(from: string, to: string, replace: boolean): void;
  /** Removes a file, symlink or empty directory, never following a link. */
  remove(name: string): void;
  /** The names in this directory, in no particular order. */
  names(): string[];
  /** An lstat of each of `names`, in that order; names gone since are left out. */
  describe(names: string[]): EntryInfo[];
  /**
   * Removes each of `names` that is not a real directory, never following a
   * link; names gone since are passed over. Returns the names that are real
   * directories, for the caller to empty (each in its own section) first.
   */
  removeEntries(names: string[]): string[];
  /**
   * Removes `name` if it is an empty directory (or no longer a directory).
   * Returns false, removing nothing, when a directory still has entries.
   */
  removeDirectory(name: string): boolean;
}

/** Times a walk is tried again when a component changed under it, before refusing. */
const WALK_ATTEMPTS = 8;

/**
 * Runs `act` with the working directory set to `dir` (absolute, real), after
 * proving `dir` is inside one of `roots` (absolute, real). Synchronous from
 * start to end; it ends in the start directory (or `/`) in every case.
 * Throws only a {@linkcode LocalPathError}: "outside-roots" when containment
 * cannot be proven (including when this platform cannot prove it at all, or
 * a component changed during the walk or the action), "not-found" /
 * "not-a-directory" when a component is missing or is not a directory, and
 * others for what `act` met. Errors name `shown` (default `dir`), the path
 * the caller was given.
 */
export function inDirectory<T>(dir: string, roots: string[], act: (here: Here) => T, shown: string = dir): T {
  try {
    return inDirectoryUncoded(dir, roots, act, shown);
  } catch (error) {
    throw coded(error, shown);
  }
}

function inDirectoryUncoded<T>(dir: string, roots: string[], act: (here: Here) => T, shown: string): T {
  const test = confinementSelfTest();
  if (!test.ok) {
    throw new LocalPathError(
      "outside-roots",
      shown,
      `Cannot use local files: confinement to the local roots cannot be proven here (${test.reason})`,
    );
  }
  const root = containingRoot(dir, roots);
  if (root === null) {
    throw new LocalPathError(
      "outside-roots",
      shown,
      `Cannot use ${show(shown)}: it is outside the allowed local roots`,
    );
  }
  if (test.route === "proc") {
    // No refusal of hard-linked files here: Linux's fs.protected_hardlinks
    // (set to 1 by systemd on every mainstream distribution) lets a user link
    // only a file they own or can read and write, so another name someone
    // else made leads to nothing they could not read anyway, and pnpm stores
    // or backups made of hard links keep working. (Under -P Deno refuses to
    // read /proc/sys, so the setting cannot be checked at run time.)
    const components = nodePath.relative(root, dir).split(nodePath.sep).filter((c) => c !== "");
    return withAnchor((anchor) => {
      const place: Place = { named: () => anchor };
      walk(place, root, components, shown);
      return act(makeHere(place, dir));
    });
  }
  const owner = test.owner!;
  const place: Place = {
    named: (at) => at,
    refuseHardLinks: true,
    guard(path, info, last) {
      const problem = chainProblem(path, info, last, owner);
      if (problem !== null) throw new LocalPathError("not-private", shown, `Cannot use ${show(shown)}: ${problem}`);
    },
    settle() {
      // Only the chain's owners can move it; a directory moved all the same is not trusted.
      if (Deno.cwd() === dir) return;
      const why = `${show(dir)} moved during the action, so it cannot be proven inside the local roots`;
      throw new LocalPathError("outside-roots", shown, `Cannot use ${show(shown)}: ${why}`);
    },
  };
  // From `/`: a directory above the root that others can change could redirect the text path as well.
  const components = dir.split("/").filter((c) => c !== "");
  try {
    walk(place, "/", components, shown);
    return act(makeHere(place, dir));
  } finally {
    restoreDirectory();
  }
}

/**
 * Every failure of a section as a {@linkcode LocalPathError}: a component
 * that changed during the walk or the action, a name that vanished in a race
 * (rename, remove, chdir), or a system error, so that no caller ever sees a
 * raw Deno error or an internal class.
 */
function coded(error: unknown, shown: string): LocalPathError {
  if (error instanceof LocalPathError) return error;
  const cause = { cause: error };
  if (error instanceof Swapped) {
    const why = `${error.message}, so it cannot be proven inside the local roots`;
    return new LocalPathError("outside-roots", shown, `Cannot use ${show(shown)}: ${why}`, cause);
  }
  if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
    const why = "it or a directory on its way was removed or changed meanwhile";
    return new LocalPathError("not-found", shown, `Cannot use ${show(shown)}: ${why}`, cause);
  }
  if (error instanceof Deno.errors.AlreadyExists) {
    return new LocalPathError("exists", shown, `Cannot write ${show(shown)}: it appeared in the meantime`, cause);
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return new LocalPathError("permission-denied", shown, `Cannot use ${show(shown)}: ${describe(error)}`, cause);
  }
  return new LocalPathError("failed", shown, `Cannot use ${show(shown)}: ${describe(error)}`, cause);
}

/**
 * How the working directory is named during a section, and what a route
 * checks on the way: `named(dir)` is a path naming the working directory,
 * whose real path is `dir` (the /proc anchor, or `dir` itself); `guard`
 * refuses a directory on the way (its lstat; `last` for the one acted in);
 * `settle` runs after each action.
 */
interface Place {
  named(dir: string): string;
  guard?(path: string, info: Deno.FileInfo, last: boolean): void;
  settle?(): void;
  /** Refuse to read a regular file with more than one hard link (see the module doc). */
  refuseHardLinks?: boolean;
}

/** `name` in the working directory `dir`, as a path the route acts on. */
function inside(place: Place, dir: string, name: string): string {
  const named = place.named(dir);
  return named.endsWith("/") ? `${named}${name}` : `${named}/${name}`;
}

/** chdir()s from `root` down `components`, proving each step with getcwd(); retries a changed component. */
function walk(place: Place, root: string, components: string[], dir: string): void {
  for (let attempt = 1;; attempt++) {
    try {
      walkOnce(place, root, components, dir);
      return;
    } catch (error) {
      if (!(error instanceof Swapped) || attempt >= WALK_ATTEMPTS) {
        if (error instanceof Swapped) {
          throw new LocalPathError(
            "outside-roots",
            dir,
            `Cannot use ${show(dir)}: ${error.message}, so it cannot be proven inside the local roots`,
          );
        }
        throw error;
      }
    }
  }
}

class Swapped extends Error {}

function walkOnce(place: Place, root: string, components: string[], dir: string): void {
  Deno.chdir(root);
  if (Deno.cwd() !== root) throw new Swapped(`the root ${show(root)} moved`);
  place.guard?.(root, Deno.lstatSync(root), components.length === 0);
  let here = root;
  for (const [i, c] of components.entries()) {
    if (c === "." || c === ".." || c.includes("/") || c.includes("\0")) {
      throw new LocalPathError("invalid", dir, `Cannot use ${show(dir)}: it has a component ${show(c)}`);
    }
    const info = lstatOrNull(inside(place, here, c));
    if (info === null) {
      throw new LocalPathError(
        "not-found",
        dir,
        `Cannot use ${show(dir)}: ${show(nodePath.join(here, c))} does not exist`,
      );
    }
    if (info.isSymlink) throw new Swapped(`${show(nodePath.join(here, c))} is a symbolic link`);
    if (!info.isDirectory) {
      throw new LocalPathError(
        "not-a-directory",
        dir,
        `Cannot use ${show(dir)}: ${show(nodePath.join(here, c))} is not a directory`,
      );
    }
    place.guard?.(nodePath.join(here, c), info, i === components.length - 1);
    try {
      Deno.chdir(inside(place, here, c));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
        throw new Swapped(`${show(nodePath.join(here, c))} changed while it was checked`);
      }
      throw error;
    }
    here = nodePath.join(here, c);
    // getcwd() names the inode now held, wherever the path led: a component
    // swapped for a link since the lstat lands somewhere else.
    if (Deno.cwd() !== here) throw new Swapped(`${show(here)} changed while it was checked`);
  }
}

function makeHere(place: Place, dir: string): Here {
  const at = (name: string) => {
    if (name === "" || name === "." || name === ".." || name.includes("/") || name.includes("\0")) {
      throw new LocalPathError("invalid", nodePath.join(dir, name), `Cannot use the name ${show(name)}`);
    }
    return inside(place, dir, name);
  };
  const full = (name: string) => nodePath.join(dir, name);
  const settled = <T>(result: T): T => {
    place.settle?.();
    return result;
  };
  const here: Here = {
    path: dir,
    lstat: (name) => settled(lstatOrNull(at(name))),
    openRead(name) {
      const before = lstatOrNull(at(name));
      if (before === null) {
        throw new LocalPathError("not-found", full(name), `Cannot read ${show(full(name))}: it does not exist`);
      }
      if (!before.isFile) {
        const what = before.isSymlink ? "a symbolic link" : before.isDirectory ? "a directory" : "not a regular file";
        throw new LocalPathError("not-a-regular-file", full(name), `Cannot read ${show(full(name))}: it is ${what}`);
      }
      beforeOpen(at(name), full(name), full(name), "read");
      // Non-blocking, so a FIFO swapped in cannot hold the event loop. O_NOFOLLOW only
      // counts under -A (see the module doc); prove() below is what refuses a link.
      const fd = openFd(
        at(name),
        fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK,
        full(name),
      );
      try {
        const info = fs.fstatSync(fd);
        if (!info.isFile()) {
          throw new LocalPathError(
            "not-a-regular-file",
            full(name),
            `Cannot read ${show(full(name))}: it is not a regular file`,
          );
        }
        prove(info, at(name), full(name), "read");
        if (place.refuseHardLinks && info.nlink > 1) {
          throw new LocalPathError(
            "hard-linked",
            full(name),
            `Cannot read ${show(full(name))}: it has ${info.nlink} hard links, and on this system anyone can make ` +
              "one, so another name of it may lie outside the allowed local roots; copy it to a file of its own",
          );
        }
        return settled({ fd, info });
      } catch (error) {
        fs.closeSync(fd);
        throw error;
      }
    },
    create(name) {
      if (lstatOrNull(at(name)) !== null) {
        throw new LocalPathError("exists", full(name), `Cannot write ${show(full(name))}: it already exists`);
      }
      // makeTempFile creates with O_CREAT|O_EXCL (mode 0600) through the anchor, in this very directory.
      const made = nodePath.basename(
        Deno.makeTempFileSync({ dir: place.named(dir), prefix: ".mcp-", suffix: ".new" }),
      );
      let fd: number;
      try {
        beforeOpen(at(made), full(made), full(name), "write");
        fd = openFd(at(made), fs.constants.O_WRONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK, full(name));
      } catch (error) {
        Deno.removeSync(at(made));
        throw error;
      }
      try {
        prove(fs.fstatSync(fd), at(made), full(name), "write");
        place.settle?.();
        if (lstatOrNull(at(name)) !== null) {
          throw new LocalPathError("exists", full(name), `Cannot write ${show(full(name))}: it already exists`);
        }
        Deno.renameSync(at(made), at(name));
        return fd;
      } catch (error) {
        fs.closeSync(fd);
        removeQuietly(at(made));
        throw error;
      }
    },
    mkdir(name, mode) {
      settled(Deno.mkdirSync(at(name), { mode }));
    },
    symlink(target, name) {
      settled(Deno.symlinkSync(target, at(name)));
    },
    rename(from, to, replace) {
      if (!replace && lstatOrNull(at(to)) !== null) {
        throw new LocalPathError("exists", full(to), `Cannot write ${show(full(to))}: it appeared in the meantime`);
      }
      settled(Deno.renameSync(at(from), at(to)));
    },
    remove(name) {
      settled(Deno.removeSync(at(name)));
    },
    names() {
      return settled([...Deno.readDirSync(place.named(dir))].map((e) => e.name));
    },
    describe(names) {
      const entries: EntryInfo[] = [];
      for (const name of names) {
        const info = lstatOrNull(at(name));
        if (info === null) continue; // removed since the listing
        const type = info.isSymlink ? "symlink" : info.isDirectory ? "directory" : info.isFile ? "file" : "other";
        const target = type === "symlink" ? readLinkOrNull(at(name)) : null;
        if (type === "symlink" && target === null) continue; // removed between the lstat and readlink
        entries.push({
          name,
          type,
          size: info.isFile ? info.size : 0,
          mode: (info.mode ?? 0) & 0o7777,
          ...(target === null ? {} : { target }),
        });
      }
      return settled(entries);
    },
    removeEntries(names) {
      const directories: string[] = [];
      for (const name of names) {
        const info = lstatOrNull(at(name));
        if (info === null) continue;
        if (info.isDirectory) directories.push(name);
        // unlink(), which removes a link itself, never what it points at.
        else removeIfPresent(at(name));
      }
      return settled(directories);
    },
    removeDirectory(name) {
      const info = lstatOrNull(at(name));
      if (info === null) return settled(true);
      try {
        removeIfPresent(at(name));
      } catch (error) {
        // Refilled since it was emptied: the caller empties it again.
        if ((error as { code?: unknown })?.code === "ENOTEMPTY") return settled(false);
        throw error;
      }
      return settled(true);
    },
  };
  return here;
}

/**
 * Refuses `anchored` (a name through the anchor, about to be opened) unless
 * its real path is still `expected`; errors name `shown`. Under -P Deno follows a final link itself
 * before its O_NOFOLLOW open, so a link put there since the lstat would be
 * opened; this narrows that window to the few system calls between here and
 * the open. prove() after the open is what closes it.
 */
function beforeOpen(anchored: string, expected: string, shown: string, verb: string): void {
  let real: string | null;
  try {
    real = Deno.realPathSync(anchored);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound) && !(error instanceof Deno.errors.NotADirectory)) throw error;
    real = null;
  }
  if (real !== expected) {
    throw new LocalPathError(
      "outside-roots",
      shown,
      `Cannot ${verb} ${show(shown)}: the file about to be opened is not the one inside the allowed local roots ` +
        "(a path changed)",
    );
  }
}

/** Throws unless the open `fd` is the file that `anchored` (a name through the anchor) names now. */
function prove(opened: fs.Stats, anchored: string, shown: string, verb: string): void {
  const named = lstatOrNull(anchored);
  if (named === null || named.ino !== opened.ino || named.dev !== opened.dev) {
    throw new LocalPathError(
      "outside-roots",
      shown,
      `Cannot ${verb} ${show(shown)}: the file opened is not the one inside the allowed local roots (a path changed)`,
    );
  }
}

function openFd(path: string, flags: number, shown: string): number {
  try {
    return fs.openSync(path, flags);
  } catch (error) {
    const code = (error as { code?: unknown })?.code;
    if (code === "ELOOP" || code === "EMLINK" || code === "ENXIO" || code === "EISDIR") {
      throw new LocalPathError("not-a-regular-file", shown, `Cannot open ${show(shown)}: it is not a regular file`, {
        cause: error,
      });
    }
    if (code === "ENOENT" || code === "ENOTDIR") {
      throw new LocalPathError("not-found", shown, `Cannot open ${show(shown)}: it no longer exists`, { cause: error });
    }
    throw error;
  }
}

/** Removes a file, link or empty directory; false if it was already gone. */
function removeIfPresent(path: string): boolean {
  try {
    Deno.removeSync(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

function readLinkOrNull(path: string): string | null {
  try {
    return Deno.readLinkSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

function lstatOrNull(path: string): Deno.FileInfo | null {
  try {
    return Deno.lstatSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

function removeQuietly(path: string): void {
  try {
    Deno.removeSync(path);
  } catch {
    // Best effort: the file is a private, empty-or-partial temporary.
  }
}

/** The longest root that contains `dir` (or is it); roots and `dir` are absolute and real. */
function containingRoot(dir: string, roots: string[]): string | null {
  let best: string | null = null;
  for (const root of roots) {
    if (!nodePath.isAbsolute(root) || !nodePath.isAbsolute(dir)) continue;
    const rel = nodePath.relative(root, dir);
    if (rel === "" || (rel !== ".." && !rel.startsWith(`..${nodePath.sep}`) && !nodePath.isAbsolute(rel))) {
      if (best === null || root.length > best.length) best = root;
    }
  }
  return best;
}

function show(value: string): string {
  return JSON.stringify(value);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
