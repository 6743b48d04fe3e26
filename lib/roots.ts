/**
 * Which local directories the transfer tools may use, per MCP server
 * instance (one per stdio client, one per HTTP session).
 *
 * A root must be something the user chose: configured ones
 * (`--allow-local-dir`, `local_roots`) win; without them, the roots the MCP
 * client sends (`roots/list`, refreshed after `notifications/roots/list_changed`,
 * `file://` only); without those, the working directory, but never when it is
 * the file system's root or the home directory (or above it): desktop clients
 * start servers there, and a download with `overwrite` could then replace
 * `~/.bashrc` or `~/.ssh/authorized_keys`.
 *
 * @module
 */

import nodePath from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { SshMcpError } from "./errors.ts";
import { isInside, resolveRoots } from "./local_paths.ts";
import type { Logger } from "./log.ts";

/** The working directory as the root of last resort: its real path, or why it may not be one. */
export type WorkingDirRoot = { root: string } | { refused: string };

/** How to allow a directory, said in every error about missing roots. */
const HOW_TO_ALLOW = "Ask the user to allow a local directory: start the server with --allow-local-dir DIR, " +
  'set "local_roots" in its config file, or use an MCP client that sends roots';

/** How long a client may take to answer `roots/list`. */
const LIST_TIMEOUT_MS = 10_000;

/**
 * Decides whether the working directory may serve as the local root of last
 * resort. It may not when it is a file system root (`/`, `C:\`), the home
 * directory or one of its ancestors (compared as real paths), or when the
 * home directory is unknown, so that this cannot be shown.
 *
 * @param cwd The process's working directory.
 * @param home The user's home directory (`HOME` or `USERPROFILE`), if known.
 * @returns The real path of the working directory, or why it is refused.
 */
export async function workingDirRoot(cwd: string, home: string | undefined): Promise<WorkingDirRoot> {
  let real: string;
  try {
    real = await Deno.realPath(cwd);
  } catch (error) {
    return { refused: `the working directory ${show(cwd)} cannot be resolved (${message(error)})` };
  }
  const problem = await tooBroad(real, home);
  return problem === null ? { root: real } : { refused: `the working directory ${problem}` };
}

/**
 * Why the real directory `real` is too broad to be a root nobody chose on
 * purpose: a file system root, the home directory or one of its ancestors, or
 * anything while the home directory is unknown. Null when it is narrow enough.
 */
async function tooBroad(real: string, home: string | undefined): Promise<string | null> {
  if (nodePath.parse(real).root === real) return `${show(real)} is the root of the file system`;
  if (!home) return `${show(real)} may be the home directory, which is unknown (HOME is not set)`;
  // A home that cannot be resolved is still compared as written, never skipped.
  const realHome = await Deno.realPath(home).catch(() => nodePath.resolve(home));
  if (!isInside(realHome, [real])) return null;
  return fold(realHome) === fold(real)
    ? `${show(real)} is the home directory`
    : `${show(real)} contains the home directory ${show(realHome)}`;
}

/** What the client declared about roots in `initialize`. */
export interface ClientRootsCapability {
  /** Present when the client can answer `roots/list`. */
  roots?: { listChanged?: boolean };
}

/** The low-level SDK server, as far as roots need it. */
export interface RootsServer {
  /** The client's capabilities once `initialize` has been answered. */
  getClientCapabilities(): ClientRootsCapability | undefined;
  /** Called when the client sends `notifications/initialized`. */
  oninitialized?: () => void;
}

/** A `roots/list` answer, as far as it is used here. */
export interface RootsList {
  /** Each root: a URI (only `file://` ones are used) and an optional display name. */
  roots: { uri: string; name?: string }[];
}

/**
 * The `roots/list` answer as read here: any URI string, so that one root in a
 * scheme other than `file://` (which the SDK's own schema rejects, failing the
 * whole list) is skipped instead of costing the client's other roots.
 */
export const RootsListSchema: z.ZodType<RootsList> = z.looseObject({
  roots: z.array(z.looseObject({ uri: z.string(), name: z.string().optional() })),
});

/** Asks the client for its roots (within a tool call, so HTTP can carry the request). */
export type ListRoots = (options: { timeout: number }) => Promise<RootsList>;

/** Options of {@linkcode LocalRoots}. */
export interface LocalRootsOptions {
  /** Roots the user configured, already real (see `resolveRoots`); they win over the client's. */
  configured: string[];
  /** The configuration turned local files off (`local_roots: []`): no roots, whatever the client sends. */
  off: boolean;
  /** The working directory as the root of last resort (see {@linkcode workingDirRoot}). */
  workingDir: WorkingDirRoot;
  /**
   * Whether the client's roots may be used (stdio: yes; HTTP: no, a remote
   * client's `file://` URIs name its own machine).
   * @default true
   */
  clientRoots?: boolean;
  /** The user's home directory: a client root that is it, or above it, or `/`, is skipped. */
  home?: string;
  /** Where the choice of roots and skipped client roots are reported. */
  logger: Logger;
}

type Source = "configured" | "off" | "client" | "working-dir" | "none";

/**
 * The local roots in force for one MCP server instance. Tools call
 * {@linkcode LocalRoots.require} before a local path is checked, and read
 * {@linkcode LocalRoots.current} again when the file is opened, so a root the
 * client removed meanwhile is refused.
 */
export class LocalRoots {
  #options: LocalRootsOptions;
  #server?: RootsServer;
  #source?: Source;
  #roots: string[] = [];
  /** Why there are no roots, when there are none. */
  #why = "";
  /** The client's list must be (re)fetched before it is used. */
  #stale = false;
  /** Bumped by every list_changed, so a fetch that raced one stays stale. */
  #generation = 0;
  #fetching?: Promise<boolean>;
  #decided: Promise<void>;
  #resolveDecided!: () => void;

  /** Creates the roots of one server instance; nothing is decided before the client has initialized. */
  constructor(options: LocalRootsOptions) {
    this.#options = options;
    this.#decided = new Promise((resolve) => (this.#resolveDecided = resolve));
    if (options.off || options.configured.length > 0) this.#decide(undefined);
  }

  /**
   * Wires the roots to a low-level SDK server: the source is decided once the
   * client has initialized (its capabilities say whether it sends roots), and
   * the client's `notifications/roots/list_changed` marks its list stale.
   *
   * @param server The SDK `Server` (`McpServer.server`).
   * @param onListChanged Registers the handler of `notifications/roots/list_changed`.
   */
  attach(server: RootsServer, onListChanged: (handler: () => void) => void): void {
    this.#server = server;
    const previous = server.oninitialized;
    server.oninitialized = () => {
      previous?.();
      const capabilities = server.getClientCapabilities();
      if (capabilities?.roots && this.#options.clientRoots === false) {
        this.#options.logger.info("The client's roots are ignored: over HTTP they name the client's machine");
      } else if (capabilities?.roots && (this.#source === "configured" || this.#source === "off")) {
        this.#options.logger.info(
          `The client's roots are ignored: ${this.#source === "off" ? "local files are off" : "configured roots win"}`,
        );
      }
      this.#decide(capabilities);
    };
    onListChanged(() => {
      this.#generation++;
      if (this.#source === "client") {
        this.#stale = true;
        this.#options.logger.info("The client's roots changed; they are read again before the next local file use");
      }
    });
  }

  /** Resolves once the source of roots is known (after the client's `initialized`, or at once when configured). */
  get decided(): Promise<void> {
    return this.#decided;
  }

  /**
   * True when this instance can never have a root: local files are off, or
   * nothing is configured, the client sends no roots and the working
   * directory is refused. Meaningful once {@linkcode LocalRoots.decided}.
   */
  get neverAny(): boolean {
    return this.#source === "off" || this.#source === "none";
  }

  /** The roots in force now, real and absolute; empty when there are none. */
  current(): string[] {
    return this.#roots;
  }

  /**
   * The roots to check a local path against, after fetching the client's list
   * if it is new or changed.
   *
   * @param listRoots Sends `roots/list` to the client.
   * @returns At least one root.
   * @throws {SshMcpError} `PATH_NOT_ALLOWED` when there is none, saying why and how to allow a directory.
   */
  async require(listRoots: ListRoots): Promise<string[]> {
    // A client that skipped `notifications/initialized` has still answered initialize.
    if (this.#source === undefined) this.#decide(this.#server?.getClientCapabilities());
    // Twice at most: once more if the list changed during the first fetch.
    for (let i = 0; i < 2 && this.#stale; i++) {
      this.#fetching ??= this.#fetch(listRoots).finally(() => (this.#fetching = undefined));
      if (!(await this.#fetching)) break;
    }
    if (this.#roots.length === 0) throw this.unavailable();
    return this.#roots;
  }

  /** The error local file tools answer while there are no roots. */
  unavailable(): SshMcpError {
    return new SshMcpError(
      "PATH_NOT_ALLOWED",
      `Local files are unavailable: no local roots are configured (${this.#why || "not decided yet"})`,
      {
        hint: this.#source === "off"
          ? 'Local files were turned off with "local_roots": [] in the config file; ' + HOW_TO_ALLOW
          : HOW_TO_ALLOW,
      },
    );
  }

  #decide(capabilities: ClientRootsCapability | undefined): void {
    if (this.#source !== undefined) return;
    const { configured, off, workingDir, logger } = this.#options;
    if (off) {
      this.#source = "off";
      this.#why = 'local files are turned off by "local_roots": [] in the config file';
    } else if (configured.length > 0) {
      this.#source = "configured";
      this.#roots = configured;
    } else if (capabilities?.roots && this.#options.clientRoots !== false) {
      this.#source = "client";
      this.#stale = true;
      logger.info("Local roots come from the client (roots capability); read at the first local file use");
    } else if ("root" in workingDir) {
      this.#source = "working-dir";
      this.#roots = [workingDir.root];
      logger.info(`Local root: the working directory ${show(workingDir.root)} (nothing else is configured)`);
    } else {
      this.#source = "none";
      this.#why = `none was given, the client sends no roots, and ${workingDir.refused}`;
      logger.info(`No local roots: ${this.#why}`);
    }
    this.#resolveDecided();
  }

  /** Fetches the client's roots; false when the client could not be asked. */
  async #fetch(listRoots: ListRoots): Promise<boolean> {
    const { logger } = this.#options;
    const generation = this.#generation;
    let listed: RootsList;
    try {
      listed = await listRoots({ timeout: LIST_TIMEOUT_MS });
    } catch (error) {
      // Fail closed, and ask again next time: the old list may be what the user just removed.
      this.#roots = [];
      this.#why = `the client did not answer roots/list: ${message(error)}`;
      logger.warn(`Local roots: ${this.#why}`);
      return false;
    }
    const roots: string[] = [];
    for (const { uri } of listed.roots) {
      const path = localPath(uri);
      if (path === undefined) {
        logger.debug(`Local roots: ignoring the client's root ${show(uri)}: not a local file:// URI`);
        continue;
      }
      try {
        // fileURLToPath gives an absolute path: the working directory (maybe gone) plays no part.
        for (const real of await resolveRoots([path], nodePath.parse(path).root)) {
          // A client (or an agent steering it) must not open the whole disk or the home directory.
          const broad = await tooBroad(real, this.#options.home);
          if (broad !== null) {
            logger.warn(`Local roots: skipping the client's root ${show(uri)}: ${broad}; allow a narrower directory`);
            continue;
          }
          if (!roots.includes(real)) roots.push(real);
        }
      } catch (error) {
        // One stale workspace folder must not cost the others.
        logger.warn(`Local roots: skipping the client's root ${show(uri)}: ${message(error)}`);
      }
    }
    this.#roots = roots;
    this.#why = listed.roots.length === 0
      ? "the client sent an empty roots list"
      : "none of the client's roots is an existing local directory (file:// URI)";
    if (generation === this.#generation) this.#stale = false;
    logger.info(`Local roots from the client: ${roots.length === 0 ? "none" : roots.map(show).join(", ")}`);
    return true;
  }
}

/** The local path of a `file://` URI; undefined for any other URI, or a file URI naming another host. */
function localPath(uri: string): string | undefined {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return undefined; // not a URI at all: nothing to use
  }
  if (url.protocol !== "file:") return undefined;
  try {
    return fileURLToPath(url);
  } catch {
    return undefined; // e.g. file://server/share on a POSIX system
  }
}

function fold(value: string): string {
  return nodePath.sep === "\\" ? value.toLowerCase() : value;
}

function show(value: string): string {
  return JSON.stringify(value);
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
