/**
 * Confinement of local files to configured roots: upload sources are read
 * from them, download destinations are written into them.
 *
 * The path checks use only `realPath`, `lstat` and `stat`: opening a FIFO
 * blocks and opening a device can have side effects. The paths returned are
 * the ones that were checked, so callers must use them (not the input) for
 * the actual I/O, done with {@linkcode openReadFile}, {@linkcode createFile}
 * and {@linkcode confinedFiles}: those reach the path's directory again one
 * proven step at a time and act on a single name inside it (lib/confined.ts),
 * which closes the gap between the check and the use. These checks are the
 * early, friendly refusals; the confined actions are the proof.
 *
 * @module
 */

// Imported under another name because the documented API names its parameters `path`.
import nodePath from "node:path";
import { type EntryInfo, type Here, inDirectory } from "./confined.ts";
import { processUmask } from "./confined_route.ts";
import { listDirectory, removeTree } from "./confined_tree.ts";
import { LocalPathError } from "./local_path_error.ts";
import { fileKind } from "./read_bounded.ts";

export { LocalPathError, type LocalPathProblem } from "./local_path_error.ts";
export type { EntryInfo } from "./confined.ts";

/** Options for the read checks. */
export interface LocalReadOptions {
  /** Allowed roots, already absolute and real (see {@linkcode resolveRoots}). */
  roots: string[];
  /**
   * Directory that relative paths are resolved against; must be absolute.
   * Empty when there is none (the process started in a deleted directory):
   * relative paths are then refused.
   */
  cwd: string;
}

/** Options for the write check. */
export interface LocalWriteOptions extends LocalReadOptions {
  /** Whether an existing regular file may be replaced. */
  overwrite: boolean;
}

// PATH_MAX on Linux; the kernel counts bytes, not characters.
const MAX_PATH_BYTES = 4096;
// Windows file systems are case-insensitive by default, so containment must be too.
const CASE_INSENSITIVE = nodePath.sep === "\\";

/**
 * Roots made absolute and real (symlinks resolved) once at start-up, so later
 * containment checks compare real paths with real paths. A root that is
 * missing or is not a directory is an error: a typo in the configuration must
 * not silently allow nothing, or something else.
 */
export async function resolveRoots(roots: string[], cwd: string): Promise<string[]> {
  const resolved: string[] = [];
  for (const root of roots) {
    checkInput(root, "use local root");
    const absolute = absoluteFrom(root, cwd, "use local root");
    let real: string;
    try {
      real = await Deno.realPath(absolute);
    } catch (error) {
      if (isMissing(error)) {
        throw new LocalPathError("not-found", root, `Cannot use local root ${show(root)}: it does not exist`, {
          cause: error,
        });
      }
      throw error;
    }
    if (!(await Deno.stat(real)).isDirectory) {
      throw new LocalPathError("not-a-directory", root, `Cannot use local root ${show(root)}: it is not a directory`);
    }
    if (!resolved.includes(real)) resolved.push(real);
  }
  return resolved;
}

/**
 * A file to read (upload source). Resolves relative paths against `cwd`,
 * follows symlinks (realpath), then requires the real path to be inside one of
 * `roots` (true containment: `/work-evil` is not inside `/work`; a root itself
 * counts as inside), and to be a regular file (FIFOs, sockets, devices,
 * directories refused by lstat type before any open). Returns the real path.
 *
 * `..` is resolved lexically before symlinks are followed, as `path.resolve`
 * does; that can differ from what the kernel would open, which is why the
 * returned path, not the input, must be opened.
 */
export async function resolveReadFile(path: string, options: LocalReadOptions): Promise<string> {
  const real = await resolveExisting(path, options, "read");
  const info = await lstatChecked(real, path, "read");
  if (info.isDirectory) {
    throw new LocalPathError("is-a-directory", path, `Cannot read ${show(path)}: it is a directory, not a file`);
  }
  if (!info.isFile) {
    throw new LocalPathError(
      "not-a-regular-file",
      path,
      `Cannot read ${show(path)}: it is a ${fileKind(info)}, not a regular file`,
    );
  }
  return real;
}

/**
 * A directory to read recursively (upload of a tree): the same rules as
 * {@linkcode resolveReadFile}, but it must be a directory. Returns the real
 * path. This checks the top only: a walker must check every entry it reaches
 * again, since an entry may be a symlink pointing outside.
 */
export async function resolveReadDir(path: string, options: LocalReadOptions): Promise<string> {
  const real = await resolveExisting(path, options, "read directory");
  const info = await lstatChecked(real, path, "read directory");
  if (!info.isDirectory) {
    throw new LocalPathError(
      "not-a-directory",
      path,
      `Cannot read directory ${show(path)}: it is a ${fileKind(info)}, not a directory`,
    );
  }
  return real;
}

/**
 * A file to write (download destination). The parent directory must exist and
 * its real path be inside a root; the final component must not be `.` or `..`
 * and the path must not end with a separator. If the destination exists: a
 * symlink (even dangling, even pointing inside) is refused, a directory is
 * refused (`is-a-directory`), any other non-regular file is refused, and a
 * regular file is refused with `exists` unless `overwrite`.
 *
 * Returns the absolute path to write (parent realpath + basename). The caller
 * should still write to a temporary file beside it and rename, so that a
 * symlink planted after this check is replaced rather than followed.
 */
export async function resolveWriteFile(path: string, options: LocalWriteOptions): Promise<string> {
  const { destination, info } = await resolveDestination(path, options);
  if (info === null) return destination;
  if (info.isDirectory) {
    throw new LocalPathError("is-a-directory", path, `Cannot write ${show(path)}: it is a directory`);
  }
  if (!info.isFile) {
    throw new LocalPathError(
      "not-a-regular-file",
      path,
      `Cannot write ${show(path)}: it is a ${fileKind(info)}, not a regular file`,
    );
  }
  if (!options.overwrite) {
    throw new LocalPathError("exists", path, `Cannot write ${show(path)}: it already exists and overwrite is off`);
  }
  return destination;
}

/**
 * A directory to write a tree into (download of a directory): the same rules
 * as {@linkcode resolveWriteFile}, except that an existing destination must be
 * a directory (not a link to one), and is only accepted with `overwrite`,
 * since the tree will replace it. Returns the absolute path and whether it
 * exists.
 */
export async function resolveWriteDir(
  path: string,
  options: LocalWriteOptions,
): Promise<{ path: string; exists: boolean }> {
  const { destination, info } = await resolveDestination(path, options);
  if (info === null) return { path: destination, exists: false };
  if (!info.isDirectory) {
    throw new LocalPathError(
      "not-a-directory",
      path,
      `Cannot write a directory at ${show(path)}: it is a ${fileKind(info)}`,
    );
  }
  if (!options.overwrite) {
    throw new LocalPathError("exists", path, `Cannot write ${show(path)}: it already exists and overwrite is off`);
  }
  return { path: destination, exists: true };
}

// The checked destination (parent realpath + name) and what is there now;
// a symlink there is refused, even dangling, even pointing inside.
async function resolveDestination(
  path: string,
  options: LocalReadOptions,
): Promise<{ destination: string; info: Deno.FileInfo | null }> {
  checkInput(path, "write");
  const last = path.split(CASE_INSENSITIVE ? /[\\/]/ : /\//).at(-1);
  if (last === "" || last === "." || last === "..") {
    throw new LocalPathError("invalid", path, `Cannot write ${show(path)}: the path must end with a file name`);
  }
  const absolute = absoluteFrom(path, options.cwd, "write");
  const parent = await resolveExisting(path, options, "write", nodePath.dirname(absolute));
  if (!(await lstatChecked(parent, path, "write")).isDirectory) {
    throw new LocalPathError("not-a-directory", path, `Cannot write ${show(path)}: its parent is not a directory`);
  }
  const destination = nodePath.join(parent, nodePath.basename(absolute));
  let info: Deno.FileInfo;
  try {
    // lstat, not stat: a symlink at the destination must be seen as itself.
    info = await Deno.lstat(destination);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { destination, info: null };
    throw mapFailure(error, path, "write");
  }
  if (info.isSymlink) {
    throw new LocalPathError(
      "not-a-regular-file",
      path,
      `Cannot write ${show(path)}: it is a symbolic link, and downloads never write through links`,
    );
  }
  return { destination, info };
}

/**
 * Pure check: is the (already real, absolute) `path` inside one of the (real,
 * absolute) `roots`. A root counts as inside itself; `/work-evil` is not
 * inside `/work`. Relative paths and relative roots never match, so a caller
 * that forgot to resolve fails closed.
 */
export function isInside(path: string, roots: string[]): boolean {
  if (!nodePath.isAbsolute(path)) return false;
  const candidate = fold(nodePath.resolve(path));
  for (const root of roots) {
    if (!nodePath.isAbsolute(root)) continue;
    const base = fold(nodePath.resolve(root));
    if (candidate === base) return true;
    // A filesystem root ("/", "C:\") already ends with the separator.
    const prefix = base.endsWith(nodePath.sep) ? base : base + nodePath.sep;
    if (candidate.startsWith(prefix)) return true;
  }
  return false;
}

function fold(value: string): string {
  return CASE_INSENSITIVE ? value.toLowerCase() : value;
}

function show(value: string): string {
  return JSON.stringify(value);
}

function checkInput(value: string, verb: string): void {
  if (value.length === 0) {
    throw new LocalPathError("invalid", value, `Cannot ${verb} "": the path is empty`);
  }
  if (value.includes("\0")) {
    throw new LocalPathError("invalid", value, `Cannot ${verb} ${show(value)}: the path contains a NUL byte`);
  }
  if (new TextEncoder().encode(value).length > MAX_PATH_BYTES) {
    throw new LocalPathError(
      "invalid",
      value,
      `Cannot ${verb} a path of ${value.length} characters: the limit is ${MAX_PATH_BYTES} bytes`,
    );
  }
}

function absoluteFrom(value: string, cwd: string, verb: string): string {
  if (cwd === "" && !nodePath.isAbsolute(value)) {
    throw new LocalPathError(
      "invalid",
      value,
      `Cannot ${verb} ${show(value)}: the server has no working directory to resolve it against; give an absolute path`,
    );
  }
  // path.resolve would quietly fall back to the process's own working directory.
  if (!nodePath.isAbsolute(cwd) && !nodePath.isAbsolute(value)) {
    throw new LocalPathError("invalid", value, `Cannot ${verb} ${show(value)}: the working directory is not absolute`);
  }
  const absolute = nodePath.resolve(cwd, value);
  if (absolute.includes("\0") || new TextEncoder().encode(absolute).length > MAX_PATH_BYTES) {
    throw new LocalPathError("invalid", value, `Cannot ${verb} ${show(value)}: the resolved path is too long`);
  }
  return absolute;
}

/**
 * Real path of `target` (default: `value` resolved against `cwd`), required
 * to exist and be inside a root. When it cannot be resolved, the nearest
 * ancestor that can decides between "outside-roots" and "not-found", so that
 * probing paths outside the roots never reveals whether they exist.
 */
async function resolveExisting(
  value: string,
  options: LocalReadOptions,
  verb: string,
  target?: string,
): Promise<string> {
  checkInput(value, verb);
  const absolute = target ?? absoluteFrom(value, options.cwd, verb);
  let real: string;
  try {
    real = await Deno.realPath(absolute);
  } catch (error) {
    if (!(await ancestorInside(absolute, options.roots))) throw outside(value, verb, options.roots, error);
    throw mapFailure(error, value, verb);
  }
  if (!isInside(real, options.roots)) throw outside(value, verb, options.roots);
  return real;
}

async function ancestorInside(absolute: string, roots: string[]): Promise<boolean> {
  let dir = absolute;
  while (true) {
    const up = nodePath.dirname(dir);
    if (up === dir) return false;
    dir = up;
    try {
      return isInside(await Deno.realPath(dir), roots);
    } catch {
      // Any failure just means this level cannot decide; its parent will.
      continue;
    }
  }
}

function outside(value: string, verb: string, roots: string[], cause?: unknown): LocalPathError {
  const allowed = roots.length === 0 ? "no local roots are configured" : `allowed roots: ${roots.join(", ")}`;
  return new LocalPathError(
    "outside-roots",
    value,
    `Cannot ${verb} ${show(value)}: it is outside the allowed local roots (${allowed})`,
    cause === undefined ? undefined : { cause },
  );
}

function mapFailure(error: unknown, value: string, verb: string): unknown {
  const subject = `${show(value)}: ${verb === "write" ? "its parent directory" : "it"}`;
  if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
    return new LocalPathError("not-found", value, `Cannot ${verb} ${subject} does not exist`, { cause: error });
  }
  if (error instanceof Deno.errors.FilesystemLoop) {
    return new LocalPathError("not-found", value, `Cannot ${verb} ${show(value)}: too many levels of symbolic links`, {
      cause: error,
    });
  }
  if (error instanceof Error && (error as { code?: unknown }).code === "ENAMETOOLONG") {
    return new LocalPathError("invalid", value, `Cannot ${verb} ${show(value)}: a file name in it is too long`, {
      cause: error,
    });
  }
  return error;
}

// The real path has no symlinks left, so lstat sees what stat would, but
// without following a link swapped in since realpath.
async function lstatChecked(real: string, value: string, verb: string): Promise<Deno.FileInfo> {
  try {
    return await Deno.lstat(real);
  } catch (error) {
    throw mapFailure(error, value, verb);
  }
}

function isMissing(error: unknown): boolean {
  return error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory;
}

/** A local file opened for a transfer: a node:fs descriptor, owned by the caller. */
export interface OpenedFile {
  fd: number;
  size: number;
  /** Permission bits, without setuid/setgid/sticky. */
  mode: number;
}

/**
 * Opens a checked regular file (a real path from {@linkcode resolveReadFile},
 * or an entry a walker reached under a checked directory) for reading. Its
 * directory is reached from the root one proven step at a time and the file
 * opened must be the one in it (lib/confined.ts), so a parent swapped for a
 * symlink, a FIFO, a device or a final symlink are refused without blocking
 * or following them.
 */
export function openReadFile(real: string, roots: string[]): Promise<OpenedFile> {
  return attempt(() =>
    inDirectory(nodePath.dirname(real), roots, (here) => {
      const { fd, info } = here.openRead(nodePath.basename(real));
      return { fd, size: info.size, mode: info.mode & 0o777 };
    }, real)
  );
}

/**
 * Creates `path` (whose parent was checked) for writing: exclusively, private
 * (0600), never through a symlink, in its parent proven inside `roots`.
 * Returns the descriptor, owned by the caller.
 */
export function createFile(path: string, roots: string[]): Promise<number> {
  return attempt(() =>
    inDirectory(nodePath.dirname(path), roots, (here) => here.create(nodePath.basename(path)), path)
  );
}

/**
 * How a transfer acts on local files; the implementation confines every
 * action to the local roots. Paths are absolute; each acts on the last name
 * in the path's (checked) parent directory, never following a link there.
 */
export interface LocalFiles {
  /** Opens an existing regular file to read. */
  openRead(path: string): Promise<OpenedFile>;
  /** Creates a new file (exclusively, mode 0600) to write; returns its descriptor. */
  create(path: string): Promise<number>;
  /** Creates a directory with `mode` (the umask applies). */
  mkdir(path: string, mode: number): Promise<void>;
  /** Creates a symlink at `path` pointing at `target`. */
  symlink(target: string, path: string): Promise<void>;
  /** Renames within one directory; an existing `to` is refused unless `replace`. */
  rename(from: string, to: string, replace: boolean): Promise<void>;
  /** Removes a file, symlink or empty directory. */
  remove(path: string): Promise<void>;
  /** Removes a directory and everything in it, never following a link. */
  removeTree(path: string): Promise<void>;
  /**
   * Lists a directory, sorted by name: with `max`, at most `max + 1` entries,
   * so a caller with that limit sees there are more without all being read.
   */
  list(path: string, max?: number): Promise<EntryInfo[]>;
  /** Describes one entry (never following a link), or null if there is none. */
  entry(path: string): Promise<EntryInfo | null>;
  /** The umask new local files get (applied to downloaded files' modes). */
  umask(): number;
}

/**
 * Local file actions for transfers, each confined to `roots`: every path's
 * parent is reached from a root one proven step at a time, and the action is
 * taken on the name inside it.
 */
export function confinedFiles(roots: string[]): LocalFiles {
  const inParent = <T>(path: string, act: (here: Here, name: string) => T): Promise<T> =>
    attempt(() => inDirectory(nodePath.dirname(path), roots, (here) => act(here, nodePath.basename(path)), path));
  return {
    openRead: (path) => openReadFile(path, roots),
    create: (path) => createFile(path, roots),
    mkdir: (path, mode) => inParent(path, (here, name) => here.mkdir(name, mode)),
    symlink: (target, path) => inParent(path, (here, name) => here.symlink(target, name)),
    rename: (from, to, replace) => {
      if (nodePath.dirname(from) !== nodePath.dirname(to)) {
        return Promise.reject(new LocalPathError("invalid", to, `Cannot rename ${show(from)} to another directory`));
      }
      return inParent(to, (here, name) => here.rename(nodePath.basename(from), name, replace));
    },
    remove: (path) => inParent(path, (here, name) => here.remove(name)),
    // One section per directory and per few hundred names (lib/confined_tree.ts).
    removeTree: (path) => removeTree(path, roots),
    list: (path, max) => listDirectory(path, roots, max),
    entry: (path) => inParent(path, (here, name) => here.describe([name])[0] ?? null),
    umask: processUmask,
  };
}

// The confined actions are synchronous (see lib/confined.ts); callers get promises.
function attempt<T>(work: () => T): Promise<T> {
  try {
    return Promise.resolve(work());
  } catch (error) {
    return Promise.reject(error);
  }
}
