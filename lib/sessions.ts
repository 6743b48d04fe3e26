/**
 * The registry of open SSH sessions: ids, limits, and closing everything.
 *
 * @module
 */

import { SshMcpError } from "./errors.ts";
import type { Logger } from "./log.ts";
import { randomHex } from "./random.ts";
import { type ConnectOptions, SshConnection } from "./ssh/connection.ts";
import type { Forward } from "./ssh/forward.ts";
import { probeRemote, type RemoteInfo } from "./ssh/remote.ts";
import type { Shell } from "./ssh/shell.ts";

/** One session as tools see it. */
export interface Session {
  id: string;
  connection: SshConnection;
  /** What the probe at connect time learned about the remote side. */
  remote: RemoteInfo;
  createdAt: Date;
  lastUsedAt: Date;
  /** Why the connection ended, while the record is kept to explain it. */
  lostReason: SshMcpError | null;
  /** Interactive shells of this session, by shell id. */
  shells: Map<string, Shell>;
  /** Port forwards of this session, by forward id. */
  forwards: Map<string, Forward>;
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
  logger: Logger;
  /** Opens a connection; replaceable for tests of the registry alone. */
  connect?: (options: ConnectOptions) => Promise<SshConnection>;
  /** Learns about the remote side of a new connection; replaceable with `connect`. */
  probe?: (connection: SshConnection, signal: AbortSignal | undefined, timeoutMs: number) => Promise<RemoteInfo>;
}

/** Time the probe of a new connection may take; past it the session opens with the remote unknown. */
const PROBE_TIMEOUT_MS = 10_000;

/** Maps session ids to connections and closes them all on shutdown. */
export class SessionRegistry {
  #sessions = new Map<string, Session>();
  #opening = 0;
  #max: number;
  #logger: Logger;
  #connect: (options: ConnectOptions) => Promise<SshConnection>;
  #probe: (connection: SshConnection, signal: AbortSignal | undefined, timeoutMs: number) => Promise<RemoteInfo>;

  /** Creates an empty registry. */
  constructor(options: SessionRegistryOptions) {
    this.#max = options.maxSessions ?? 20;
    this.#logger = options.logger;
    this.#connect = options.connect ?? ((o) => SshConnection.open(o));
    this.#probe = options.probe ??
      ((c, signal, timeoutMs) => probeRemote(c, { timeoutMs: Math.min(PROBE_TIMEOUT_MS, timeoutMs), signal }));
  }

  /** Connects and registers a new session. */
  async open(options: ConnectOptions): Promise<Session> {
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
      shells: new Map(),
      forwards: new Map(),
    };
    this.#sessions.set(id, session);
    connection.onClose((reason) => {
      // A lost connection carries no tunnel: free the local ports at once.
      closeForwards(session).catch(() => {});
      if (this.#sessions.get(id) === session) {
        session.lostReason = reason;
        this.#logger.info(`Session ${id} lost: ${reason?.message ?? "closed"}`);
      }
    });
    this.#logger.info(`Session ${id} opened to ${options.username}@${options.host}:${options.port}`);
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
    for (const shell of session.shells.values()) shell.close();
    session.shells.clear();
    await closeForwards(session);
    await session.connection.close();
    this.#logger.info(`Session ${id} closed`);
  }

  /** Closes every session (shutdown). */
  async closeAll(): Promise<void> {
    const all = [...this.#sessions.values()];
    this.#sessions.clear();
    for (const s of all) for (const shell of s.shells.values()) shell.close();
    await Promise.allSettled(all.map((s) => closeForwards(s)));
    await Promise.allSettled(all.map((s) => s.connection.close()));
  }
}

async function closeForwards(session: Session): Promise<void> {
  const forwards = [...session.forwards.values()];
  session.forwards.clear();
  await Promise.allSettled(forwards.map((f) => f.close()));
}

function newSessionId(): string {
  return "s-" + randomHex(8);
}
