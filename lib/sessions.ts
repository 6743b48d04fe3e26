/**
 * The registry of open SSH sessions: ids, limits, and closing everything.
 *
 * @module
 */

import type { Config } from "./config.ts";
import { SshMcpError } from "./errors.ts";
import type { Logger } from "./log.ts";
import { randomHex } from "./random.ts";
import { type ConnectOptions, SshConnection } from "./ssh/connection.ts";
import type { Forward } from "./ssh/forward.ts";
import { probeRemote, type RemoteInfo } from "./ssh/remote.ts";
import type { Shell } from "./ssh/shell.ts";
import type { Job } from "./jobs/job.ts";
import { Table } from "./table.ts";
import {
  configError,
  type HostEntry,
  inventory,
  type ResolvedTarget,
  resolveTarget,
  type TargetRequest,
} from "./targets.ts";
import { type KnownHostsEntry, knownKeyTypes, loadKnownHosts } from "./ssh/known_hosts.ts";
import { loadSshConfig, type SshConfig, SshConfigError } from "./ssh_config/mod.ts";
import { hostMatches } from "./policy.ts";

/** One session as tools see it. */
export interface Session {
  /** The session_id tools take: "s-" and 16 hex digits. */
  id: string;
  /** The SSH connection; `alive` false once lost or closed. */
  connection: SshConnection;
  /** What the probe at connect time learned about the remote side. */
  remote: RemoteInfo;
  /** When the connection was made. */
  createdAt: Date;
  /** When a tool last looked the session up. */
  lastUsedAt: Date;
  /** Why the connection ended, while the record is kept to explain it. */
  lostReason: SshMcpError | null;
  /** Interactive shells of this session, by shell id; closed with the session. */
  shells: Table<Shell>;
  /** Port forwards of this session, by forward id; closed with the session or when it is lost. */
  forwards: Table<Forward>;
  /**
   * Jobs this session knows, by job id: closing the session forgets detached
   * ones (they run on) and ends connection-bound ones.
   */
  jobs: Table<Job>;
  /** What ssh_config decided about the target; null for a session opened with explicit options only. */
  origin: SessionOrigin | null;
}

/** Something a reader of the session list (the MCP resources) may want to see again. */
export interface SessionChange {
  /** The session the change is of. */
  session_id: string;
  /** What opened or closed: the session itself, or one of its shells or forwards. */
  what: "session" | "shell" | "forward" | "job";
  /** `lost`: the session's connection ended on its own (the record stays until closed). */
  type: "open" | "close" | "lost";
  /** The shell or forward id, for those. */
  id?: string;
}

/** What ssh_list_sessions reports about a session. */
export interface SessionSummary {
  session_id: string;
  host: string;
  port: number;
  username: string;
  connected: boolean;
  host_key_fingerprint: string;
  server_version: string;
  created_at: string;
  last_used_at: string;
  error?: string;
}

/** Options of {@linkcode SessionRegistry}. */
export interface SessionRegistryOptions {
  /**
   * Sessions allowed at once (lost ones count until closed).
   * @default 20
   */
  maxSessions?: number;
  /**
   * Shells allowed at once per session.
   * @default 8
   */
  maxShells?: number;
  /**
   * Port forwards allowed at once per session.
   * @default 20
   */
  maxForwards?: number;
  logger: Logger;
  /**
   * The configuration {@linkcode SessionRegistry.connect} builds connect
   * options from (known_hosts, agent, timeouts, keepalive, channels).
   */
  config?: Config;
  /** Opens a connection; replaceable for tests of the registry alone. */
  connect?: (options: ConnectOptions) => Promise<SshConnection>;
  /** Learns about the remote side of a new connection; replaceable with `connect`. */
  probe?: (connection: SshConnection, signal: AbortSignal | undefined, timeoutMs: number) => Promise<RemoteInfo>;
}

/**
 * What a caller chooses about one connection: an ssh_config alias or a host,
 * and whatever overrides ssh_config (a key path's `~/` is the local home);
 * the rest comes from ssh_config and the configuration (../targets.ts).
 */
export type ConnectTarget = TargetRequest;

/** How a session's target was resolved: what ssh_config decided, for the connect result. */
export interface SessionOrigin {
  /** The alias as given, when ssh_config applied to it. */
  alias: string | null;
  /** `file:line keyword value` of each ssh_config line that applied to the target. */
  configLines: string[];
  /** The same for the jump hosts, each prefixed with its hop. */
  jumpConfigLines: string[];
  /** Lines read and not followed. */
  warnings: string[];
}

/** Time the probe of a new connection may take; past it the session opens with the remote unknown. */
const PROBE_TIMEOUT_MS = 10_000;

/** Maps session ids to connections and closes them all on shutdown. */
export class SessionRegistry {
  #sessions = new Map<string, Session>();
  #opening = 0;
  #max: number;
  #maxShells: number;
  #maxForwards: number;
  #listeners = new Set<(change: SessionChange) => void>();
  #logger: Logger;
  #config: Config | undefined;
  #connect: (options: ConnectOptions) => Promise<SshConnection>;
  #probe: (connection: SshConnection, signal: AbortSignal | undefined, timeoutMs: number) => Promise<RemoteInfo>;

  /** Creates an empty registry. */
  constructor(options: SessionRegistryOptions) {
    this.#max = options.maxSessions ?? 20;
    this.#maxShells = options.maxShells ?? 8;
    this.#maxForwards = options.maxForwards ?? 20;
    this.#logger = options.logger;
    this.#config = options.config;
    this.#connect = options.connect ?? ((o) => SshConnection.open(o));
    this.#probe = options.probe ??
      ((c, signal, timeoutMs) => probeRemote(c, { timeoutMs: Math.min(PROBE_TIMEOUT_MS, timeoutMs), signal }));
  }

  /**
   * Connects to `target` with everything else from the configuration, and
   * registers the session.
   */
  async connect(target: ConnectTarget): Promise<Session> {
    return await this.openResolved(await this.resolve(target));
  }

  /** Connects to a target {@linkcode resolve} gave (ssh_config read once) and registers the session. */
  async openResolved(resolved: ResolvedTarget): Promise<Session> {
    for (const warning of resolved.warnings) this.#logger.warn(warning);
    const { options, ...origin } = resolved;
    return await this.open(options, origin);
  }

  /** What {@linkcode connect} would connect to for `target`: ssh_config and the configuration applied. */
  async resolve(target: ConnectTarget): Promise<ResolvedTarget> {
    const config = this.#config;
    if (config === undefined) throw new Error("SessionRegistry.resolve needs the config option");
    const sshConfig = await this.#readSshConfig(config);
    return resolveTarget(target, { config, sshConfig, logger: this.#logger });
  }

  /**
   * An open, live session to the same user, host and port through the same
   * jump hosts as `options`, if there is one (looked up without touching it).
   */
  findOpen(options: ConnectOptions): Session | undefined {
    const want = chainOf(options);
    return [...this.#sessions.values()].find((s) => {
      const info = s.connection.info;
      const have = [...info.jumps, info].map((h) => `${h.username}@${h.host}:${h.port}`).join(" ");
      return s.connection.alive && have === want;
    });
  }

  /**
   * The hosts of ssh_config a user can reach by name (resolved as a connect
   * would), and whether each host key is known; empty when ssh_config is off.
   */
  async hosts(): Promise<{ hosts: HostEntry[]; truncated: boolean }> {
    const config = this.#config;
    if (config === undefined) throw new Error("SessionRegistry.hosts needs the config option");
    const sshConfig = await this.#readSshConfig(config);
    const loaded = new Map<string, Promise<KnownHostsEntry[]>>();
    return await inventory({ config, sshConfig, logger: this.#logger }, async (files, host, port) => {
      const key = files.join("\n");
      if (!loaded.has(key)) loaded.set(key, loadKnownHosts(files).then((r) => r.entries));
      return knownKeyTypes(await loaded.get(key)!, host, port);
    });
  }

  /** ssh_config as it is now (read at every connect: an edit applies without a restart), or null when off. */
  async #readSshConfig(config: Config): Promise<SshConfig | null> {
    if (config.sshConfigFiles.length === 0) return null;
    try {
      return await loadSshConfig(config.sshConfigFiles, {
        home: config.home ?? "",
        localUser: config.localUser ?? "",
        localHost: config.localHost ?? "",
        uid: config.localUid,
      });
    } catch (error) {
      if (error instanceof SshConfigError) throw configError(error);
      throw error;
    }
  }

  /**
   * Connects with `options` as given and registers a new session. Every hop
   * must be in the configured allowlist: checked here, the one way in, before
   * anything goes on the network (not even a DNS query).
   */
  async open(options: ConnectOptions, origin: SessionOrigin | null = null): Promise<Session> {
    refuseUnlisted(options, this.#config?.allowedHosts);
    if (this.#sessions.size + this.#opening >= this.#max) {
      throw new SshMcpError("SESSION_LIMIT", `Cannot open more than ${this.#max} sessions`, {
        hint: "Close sessions you no longer need with ssh_close_session (ssh_list_sessions shows them)",
      });
    }
    this.#opening++;
    let connection: SshConnection;
    let remote: RemoteInfo;
    try {
      const started = performance.now();
      connection = await this.#connect(options);
      // The probe has what is left of the connect deadline, at least a second.
      const left = (options.connectTimeoutMs ?? 20_000) - (performance.now() - started);
      try {
        remote = await this.#probe(connection, options.signal, Math.max(1000, left));
      } catch (error) {
        void connection.close(); // only the caller's cancel ends up here
        throw error;
      }
    } finally {
      this.#opening--;
    }
    const id = newSessionId();
    const now = new Date();
    const session: Session = {
      id,
      connection,
      remote,
      createdAt: now,
      lastUsedAt: now,
      lostReason: null,
      shells: this.#shellTable(id),
      forwards: this.#forwardTable(id),
      jobs: this.#jobTable(id),
      origin,
    };
    this.#sessions.set(id, session);
    for (
      const [what, table] of [["shell", session.shells], ["forward", session.forwards], ["job", session.jobs]] as const
    ) {
      table.onChange((c) => this.#emit({ session_id: id, what, type: c.type, id: c.id }));
    }
    connection.onClose((reason) => {
      // A lost connection carries no tunnel: free the local ports at once.
      void session.forwards.closeAll();
      if (this.#sessions.get(id) === session) {
        session.lostReason = reason;
        this.#logger.info(`Session ${id} lost: ${reason?.message ?? "closed"}`, {
          session_id: id,
          ...(reason === null ? {} : { code: reason.code }),
        });
        this.#emit({ session_id: id, what: "session", type: "lost" });
      }
    });
    this.#logger.info(`Session ${id} opened to ${options.username}@${options.host}:${options.port}`, {
      session_id: id,
      host: options.host,
      port: options.port,
      username: options.username,
    });
    this.#emit({ session_id: id, what: "session", type: "open" });
    return session;
  }

  /** Returns a live session or throws SESSION_NOT_FOUND / CONNECTION_LOST. */
  get(id: string): Session {
    const session = this.#sessions.get(id);
    if (session === undefined) {
      throw new SshMcpError("SESSION_NOT_FOUND", `No session ${JSON.stringify(id.slice(0, 64))}`, {
        hint: "Use a session_id returned by ssh_connect (ssh_list_sessions lists them)",
      });
    }
    if (!session.connection.alive) {
      // Altered data keeps its own code (not retryable): a plain reconnect is not the advice.
      const lost = session.lostReason;
      if (lost?.code === "INTEGRITY_FAILED") {
        throw new SshMcpError(lost.code, `Session ${id} is disconnected: ${lost.message}`, {
          hint: lost.hint,
          retryable: lost.retryable,
        });
      }
      const reason = session.lostReason?.message ?? "connection closed";
      throw new SshMcpError("CONNECTION_LOST", `Session ${id} is disconnected: ${reason}`, {
        hint: "Call ssh_close_session on it and ssh_connect again",
      });
    }
    session.lastUsedAt = new Date();
    return session;
  }

  /** A session by id, lost or not, without touching it; undefined if there is none. */
  find(id: string): Session | undefined {
    return this.#sessions.get(id);
  }

  /** Every session, lost ones included, in the order they opened. */
  all(): Session[] {
    return [...this.#sessions.values()];
  }

  /**
   * Calls `listener` when a session, or a shell or forward of one, opens or
   * closes, and when a session is lost; returns the function that removes it.
   *
   * @param listener Called synchronously with the change; it must not throw.
   * @returns Unsubscribes the listener.
   */
  onChange(listener: (change: SessionChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Summaries of every session, lost ones included. */
  list(): SessionSummary[] {
    return [...this.#sessions.values()].map((s) => {
      const info = s.connection.info;
      return {
        session_id: s.id,
        host: info.host,
        port: info.port,
        username: info.username,
        connected: s.connection.alive,
        host_key_fingerprint: info.hostKeyFingerprint,
        server_version: info.serverVersion,
        created_at: s.createdAt.toISOString(),
        last_used_at: s.lastUsedAt.toISOString(),
        ...(s.connection.alive ? {} : { error: s.lostReason?.message ?? "connection closed" }),
      };
    });
  }

  /** Closes one session; throws SESSION_NOT_FOUND for an unknown id. */
  async close(id: string): Promise<void> {
    const session = this.#sessions.get(id);
    if (session === undefined) {
      throw new SshMcpError("SESSION_NOT_FOUND", `No session ${JSON.stringify(id.slice(0, 64))}`, {
        hint: "It may already be closed; ssh_list_sessions lists open sessions",
      });
    }
    this.#sessions.delete(id);
    this.#emit({ session_id: id, what: "session", type: "close" });
    await closeTables(session);
    await session.connection.close();
    this.#logger.info(`Session ${id} closed`, { session_id: id });
  }

  /** Closes every session (shutdown). */
  async closeAll(): Promise<void> {
    const all = [...this.#sessions.values()];
    this.#sessions.clear();
    for (const s of all) this.#emit({ session_id: s.id, what: "session", type: "close" });
    await Promise.allSettled(all.map((s) => closeTables(s)));
    await Promise.allSettled(all.map((s) => s.connection.close()));
  }

  #emit(change: SessionChange): void {
    for (const listener of this.#listeners) listener(change);
  }

  #shellTable(sessionId: string): Table<Shell> {
    return new Table<Shell>({
      kind: "shell",
      owner: `Session ${sessionId}`,
      notFound: "SHELL_NOT_FOUND",
      notFoundHint: "Open one with ssh_shell_open (its shell_id is returned)",
      limit: this.#maxShells,
      limitCode: "SHELL_LIMIT",
      limitHint: "Close shells you no longer need with ssh_shell_close",
      newId: (taken) => {
        let id = "default";
        for (let n = 2; taken(id); n++) id = `shell-${n}`;
        return id;
      },
      closedError: () => this.#endedWhileOpening(sessionId, "shell"),
    });
  }

  #forwardTable(sessionId: string): Table<Forward> {
    return new Table<Forward>({
      kind: "forward",
      owner: `Session ${sessionId}`,
      notFound: "FORWARD_NOT_FOUND",
      notFoundHint: "ssh_list_forwards lists the open forwards",
      limit: this.#maxForwards,
      limitCode: "FORWARD_LIMIT",
      limitHint: "Close forwards you no longer need with ssh_close_forward",
      newId: (taken) => {
        let id;
        do id = "f-" + randomHex(6); while (taken(id));
        return id;
      },
      closedError: () => this.#endedWhileOpening(sessionId, "forward"),
    });
  }

  #jobTable(sessionId: string): Table<Job> {
    return new Table<Job>({
      kind: "job",
      owner: `Session ${sessionId}`,
      notFound: "JOB_NOT_FOUND",
      notFoundHint: "ssh_job action=list lists the session's jobs (those found on the host too)",
      closedError: () => this.#endedWhileOpening(sessionId, "job"),
    });
  }

  #endedWhileOpening(sessionId: string, kind: string): SshMcpError {
    return new SshMcpError("CONNECTION_LOST", `Session ${sessionId} ended while the ${kind} opened`, {
      hint: "Call ssh_connect again",
    });
  }
}

// Shells, forwards and jobs together: every close is started before any is awaited.
async function closeTables(session: Session): Promise<void> {
  await Promise.all([session.shells.closeAll(), session.forwards.closeAll(), session.jobs.closeAll()]);
}

/** Throws HOST_NOT_ALLOWED unless every hop of `options` matches `allowed` (undefined: no list). */
export function refuseUnlisted(options: ConnectOptions, allowed: readonly string[] | undefined): void {
  if (allowed === undefined) return;
  const hops: ConnectOptions[] = [];
  for (let hop: ConnectOptions | undefined = options; hop !== undefined; hop = hop.jump) hops.unshift(hop);
  for (const [i, hop] of hops.entries()) {
    if (hostMatches(allowed, hop.host, hop.port)) continue;
    const what = i === hops.length - 1 ? "Host" : `Jump host ${i + 1} of ${hops.length - 1}`;
    const shown = allowed.slice(0, 20).join(", ") + (allowed.length > 20 ? `, and ${allowed.length - 20} more` : "");
    throw new SshMcpError("HOST_NOT_ALLOWED", `${what} ${hop.host}:${hop.port} is not in the allowed hosts`, {
      hint: `Nothing was sent to it. This server may reach only: ${shown === "" ? "(none)" : shown}. ` +
        "Use one of those, or ask the operator to add the host (allowed_hosts, --allow-host)",
    });
  }
}

/** `user@host:port` of every hop and the target, outermost first, as one string. */
function chainOf(options: ConnectOptions): string {
  const hops: string[] = [];
  for (let hop: ConnectOptions | undefined = options; hop !== undefined; hop = hop.jump) {
    hops.unshift(`${hop.username}@${hop.host}:${hop.port}`);
  }
  return hops.join(" ");
}

function newSessionId(): string {
  return "s-" + randomHex(8);
}
