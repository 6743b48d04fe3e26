/**
 * The one error of local file confinement: why a local path was refused.
 * Its own module, so that the confinement sections (lib/confined*.ts) and
 * the path checks built on them (lib/local_paths.ts) both use it without
 * importing each other.
 *
 * @module
 */

/** Why a local path was refused. */
export type LocalPathProblem =
  | "outside-roots"
  | "not-found"
  | "not-a-regular-file"
  | "not-a-directory"
  | "is-a-directory"
  /** The destination exists and overwriting was not allowed. */
  | "exists"
  /** Empty, contains NUL, too long, or names no file. */
  | "invalid"
  /**
   * A directory on the way can be changed by another user, so where the path
   * leads cannot be proven (the route without /proc, lib/confined_chain.ts).
   */
  | "not-private"
  /** A file with more than one hard link, on a system where anyone can make one (the chain route). */
  | "hard-linked"
  /** The system refused the action (EACCES, EPERM). */
  | "permission-denied"
  /** Any other failure of a local file action; the message carries the system's own. */
  | "failed";

/** A local path refused by one of the checks of lib/local_paths.ts or lib/confined.ts. */
export class LocalPathError extends Error {
  /** Why the path was refused. */
  readonly problem: LocalPathProblem;
  /** The path as the caller gave it. */
  readonly path: string;

  /** Creates an error for `path` (as given) refused because of `problem`. */
  constructor(problem: LocalPathProblem, path: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "LocalPathError";
    this.problem = problem;
    this.path = path;
  }
}
