/**
 * The sessions of one server instance as MCP resources: `ssh://sessions`
 * lists them, `ssh://sessions/{id}` shows one with its shells and forwards.
 * Both are JSON. A client is told `notifications/resources/list_changed`
 * when a session, shell or forward opens or closes, or a session is lost;
 * a burst (closing a session closes all it owns) is one notification.
 *
 * @module
 */

// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { type McpServer, ResourceTemplate } from "@modelcontextprotocol/sdk/server/mcp.js";
// @ts-types="@modelcontextprotocol/sdk/types"
import { McpError, type ReadResourceResult } from "@modelcontextprotocol/sdk/types.js";
import type { Session, SessionRegistry } from "./sessions.ts";

/** The URI of the session list. */
export const SESSIONS_URI = "ssh://sessions";
/** The URI template of one session. */
export const SESSION_URI_TEMPLATE = "ssh://sessions/{id}";
/** The resource's media type. */
export const JSON_MIME = "application/json";
/** MCP's "Resource not found" JSON-RPC error (spec 2025-11-25, resources). */
export const RESOURCE_NOT_FOUND: number = -32002;

/** The URI of the session with `id`. */
export function sessionUri(id: string): string {
  return `${SESSIONS_URI}/${id}`;
}

/** What {@linkcode registerResources} leaves to close. */
export interface SessionResources {
  /** Stops the notifications (the server is closing). */
  close(): void;
}

/**
 * Registers the session resources on `server` and sends `list_changed`
 * when `sessions` changes. Adds the `resources` capability (listChanged).
 *
 * @param server The server instance whose client sees these sessions.
 * @param sessions That instance's registry (over HTTP each client has its own).
 * @returns The handle that stops the notifications.
 */
export function registerResources(server: McpServer, sessions: SessionRegistry): SessionResources {
  server.registerResource(
    "sessions",
    SESSIONS_URI,
    {
      title: "SSH sessions",
      description: "Every SSH session of this client: host, user, port, state, when it connected, and the ids of " +
        "its shells and forwards",
      mimeType: JSON_MIME,
    },
    (uri) => json(uri.href, { sessions: sessions.all().map(sessionSummary) }),
  );
  server.registerResource(
    "session",
    new ResourceTemplate(SESSION_URI_TEMPLATE, {
      list: () => ({
        resources: sessions.all().map((s) => ({
          uri: sessionUri(s.id),
          name: s.id,
          title: `${s.connection.info.username}@${s.connection.info.host}:${s.connection.info.port}`,
          mimeType: JSON_MIME,
        })),
      }),
    }),
    {
      title: "SSH session",
      description: "One SSH session: its state, its shells (id, size, whether ended) and its port forwards " +
        "(id, direction, addresses)",
      mimeType: JSON_MIME,
    },
    (uri, variables) => {
      const id = variables.id;
      const session = typeof id === "string" ? sessions.find(id) : undefined;
      if (session === undefined) {
        throw new McpError(RESOURCE_NOT_FOUND, `Resource not found: ${uri.href.slice(0, 200)}`, { uri: uri.href });
      }
      return json(uri.href, sessionDetail(session));
    },
  );

  // One notification per burst: closing a session closes its shells and
  // forwards one after another, each a change.
  let pending: ReturnType<typeof setTimeout> | undefined;
  const send = () => {
    pending = undefined;
    if (!server.isConnected()) return;
    // A client gone mid-send is no failure of whatever changed the sessions.
    server.server.sendResourceListChanged().catch(() => {});
  };
  const off = sessions.onChange(() => {
    pending ??= setTimeout(send, 0);
  });
  return {
    close() {
      off();
      clearTimeout(pending);
      pending = undefined;
    },
  };
}

function json(uri: string, value: unknown): ReadResourceResult {
  return { contents: [{ uri, mimeType: JSON_MIME, text: JSON.stringify(value, null, 2) }] };
}

function sessionState(s: Session) {
  const info = s.connection.info;
  return {
    session_id: s.id,
    uri: sessionUri(s.id),
    host: info.host,
    port: info.port,
    username: info.username,
    connected: s.connection.alive,
    connected_at: s.createdAt.toISOString(),
    last_used_at: s.lastUsedAt.toISOString(),
    ...(s.connection.alive ? {} : { error: s.lostReason?.message ?? "connection closed" }),
  };
}

function sessionSummary(s: Session) {
  return { ...sessionState(s), shells: [...s.shells.keys()], forwards: [...s.forwards.keys()] };
}

function sessionDetail(s: Session) {
  return {
    ...sessionState(s),
    host_key_fingerprint: s.connection.info.hostKeyFingerprint,
    shells: [...s.shells.values()].map((shell) => ({ shell_id: shell.id, ...shell.size, closed: shell.closed })),
    forwards: [...s.forwards.values()].map((f) => {
      const info = f.info();
      return { forward_id: info.id, kind: info.kind, listen: info.listen, target: info.target };
    }),
    // Jobs (background commands) go here once sessions hold them: jobs: [{ job_id, command, state }].
  };
}
