/**
 * Serving MCP over HTTP: streamable HTTP (the current transport) or SSE (for
 * older clients), safe to run.
 *
 * Every request passes the same gate before anything else: the `Host` header
 * must name the bound address (DNS rebinding), an `Origin`, when sent, must be
 * allowed by configuration, a token in the query string is refused, the
 * bearer token must match (constant time), and the body must fit the limit.
 *
 * Beyond loopback it serves HTTPS only (see tls.ts). Sessions are capped:
 * an `initialize` beyond `maxSessions` gets 503 with Retry-After, and a
 * session that has not completed `initialize` within `initTimeoutMs` is
 * dropped, so a token holder cannot pile up servers until memory runs out.
 *
 * Each HTTP session gets its own MCP server and its own SSH session registry,
 * so one client can never list, use or close another's SSH sessions, shells or
 * forwards, even with a guessed id; when the HTTP session ends (DELETE, idle
 * timeout, shutdown) everything it owned is closed.
 *
 * @module
 */

// @ts-types="@modelcontextprotocol/sdk/server/webStandardStreamableHttp"
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
// @ts-types="@modelcontextprotocol/sdk/shared/transport"
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
// @ts-types="@modelcontextprotocol/sdk/types"
import { isInitializeRequest, SUPPORTED_PROTOCOL_VERSIONS } from "@modelcontextprotocol/sdk/types.js";
import { createHash, timingSafeEqual } from "node:crypto";
import { isIP } from "node:net";
import type { Logger } from "../log.ts";
import { settle } from "./pending.ts";
import { randomHex } from "../random.ts";
import { isLoopback } from "../validate.ts";
import { jsonError, plain, readJson, refusal } from "./responses.ts";
import { SseTransport } from "./sse.ts";
import { type TlsPem, tlsProblem } from "./tls.ts";
import type { CreatedServer } from "../server.ts";

/** Options of {@linkcode serveHttp}. */
export interface HttpOptions {
  transport: "streamable-http" | "sse";
  /** Address to bind. */
  host: string;
  /** Port to bind; 0 picks a free one (reported by `onListen`). */
  port: number;
  /** The bearer token every request must carry. */
  token: string;
  /** Origins allowed in an `Origin` header (exact, e.g. "http://localhost:3000"); none by default. */
  allowedOrigins: string[];
  /** Largest request body accepted. */
  maxBodyBytes: number;
  /** An HTTP session unused this long is closed with everything it owned. */
  idleTimeoutMs: number;
  /** HTTP sessions open at once; an `initialize` (or SSE stream) beyond them gets 503. */
  maxSessions: number;
  /**
   * A session whose client has not sent `notifications/initialized` this long
   * after it opened is closed: the handshake takes one round trip, and a
   * half-open session still holds a server and a slot.
   */
  initTimeoutMs: number;
  /** Serve HTTPS with this certificate and key; without it only loopback is allowed. */
  tls?: TlsPem;
  /** Builds the MCP server (and SSH session registry) of one HTTP session. */
  create: () => CreatedServer;
  logger: Logger;
  /** Called once listening, with the port bound. */
  onListen?: (port: number) => void;
}

/** A running HTTP server. */
export interface HttpServer {
  port: number;
  /** Stops accepting, closes every HTTP session and what it owned. */
  shutdown(): Promise<void>;
  /** Resolves once the server has stopped. */
  finished: Promise<void>;
}

/** Environment variable holding the bearer token. */
export const TOKEN_ENV = "MCP_REMOTE_SSH_TOKEN";

/**
 * The bearer token for a server bound to `host`: from `tokenFile`, else
 * `envToken`; on loopback without either, a new random one (`generated`).
 * Throws a TypeError for a weak token, or for another address without one:
 * anyone who can reach it could drive the user's SSH sessions.
 */
export async function resolveToken(
  host: string,
  tokenFile: string | undefined,
  envToken: string | undefined,
): Promise<{ token: string; generated: boolean }> {
  const configured = tokenFile === undefined ? envToken?.trim() : (await Deno.readTextFile(tokenFile)).trim();
  if (configured !== undefined && configured !== "") {
    if (configured.length < 16 || /\s/.test(configured)) {
      throw new TypeError("the token must be at least 16 characters, without whitespace");
    }
    return { token: configured, generated: false };
  }
  if (isLoopback(host)) return { token: randomToken(), generated: true };
  throw new TypeError(
    `refusing to listen on ${host} without a token: anyone who can reach it could drive your SSH sessions. ` +
      `Set ${TOKEN_ENV} or pass --token-file, or bind 127.0.0.1`,
  );
}

/** An `mcpServers` entry a client can paste to reach `url` with `token`. */
export function clientConfig(transport: HttpOptions["transport"], url: string, token: string): string {
  const entry = { type: transport === "sse" ? "sse" : "http", url, headers: { Authorization: `Bearer ${token}` } };
  return JSON.stringify({ mcpServers: { ssh: entry } }, null, 2);
}

function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** Where the streamable HTTP endpoint lives. */
export const MCP_PATH = "/mcp";
/** Where an SSE client opens its stream, and where it posts messages. */
export const SSE_PATH = "/sse";
export const SSE_MESSAGES_PATH = "/messages";

/** One HTTP session: its transport, its own MCP server, and when it was last used. */
interface HttpSession {
  id: string;
  created: CreatedServer;
  transport: WebStandardStreamableHTTPServerTransport | SseTransport;
  lastUsed: number;
  /** Ids of requests not yet answered or cancelled: a long command keeps its session alive. */
  inFlight: Set<string | number>;
  /** The client sent `notifications/initialized`: the session is past its handshake. */
  initialized: boolean;
  /** Drops the session if the handshake is not completed in time. */
  initTimer: number;
  closing: Promise<void> | null;
}

/** Starts the HTTP server; resolves once it listens. */
export function serveHttp(options: HttpOptions): Promise<HttpServer> {
  const refused = tlsProblem(options.host, options.tls !== undefined);
  if (refused !== null) return Promise.reject(new TypeError(refused));
  const sessions = new Map<string, HttpSession>();
  // Initialize requests being handled: they hold a slot before their session exists.
  let reserved = 0;
  const { logger } = options;
  const tokenOk = tokenChecker(options.token);
  // Built once the port is known (port 0 asks for a free one); nothing arrives before.
  let hostOk: (host: string | null) => boolean = () => false;

  const closeSession = (session: HttpSession, why: string): Promise<void> => {
    session.closing ??= (async () => {
      clearTimeout(session.initTimer);
      sessions.delete(session.id);
      logger.info(`HTTP session ${session.id.slice(0, 8)}… closed: ${why}`);
      await session.created.close().catch(() => {});
      await session.transport.close().catch(() => {});
    })();
    return session.closing;
  };

  /** Records a session that has just opened, and starts its handshake deadline. */
  const admit = (id: string, created: CreatedServer, transport: HttpSession["transport"]): HttpSession => {
    const session: HttpSession = {
      id,
      created,
      transport,
      lastUsed: Date.now(),
      inFlight: new Set(),
      initialized: false,
      initTimer: 0,
      closing: null,
    };
    session.initTimer = Number(setTimeout(() => {
      if (!session.initialized) closeSession(session, "initialize not completed in time");
    }, options.initTimeoutMs));
    Deno.unrefTimer(session.initTimer);
    sessions.set(id, session);
    return session;
  };

  /** The 503 for a session beyond the cap, or null when a slot is free. */
  const full = (requestId: string | number | null): Response | null => {
    if (sessions.size + reserved < options.maxSessions) return null;
    logger.warn(`HTTP session refused: ${options.maxSessions} open, the most allowed (http_max_sessions)`);
    // A slot held by an abandoned handshake is free again by then.
    const retryAfter = String(Math.max(1, Math.ceil(options.initTimeoutMs / 1000)));
    return jsonError(
      503,
      -32000,
      `Too many HTTP sessions: ${options.maxSessions} are open, the most this server allows; ` +
        `end one (DELETE) or retry later`,
      { id: requestId, headers: { "retry-after": retryAfter } },
    );
  };

  const sweep = setInterval(() => {
    const now = Date.now();
    for (const s of sessions.values()) {
      if (s.inFlight.size === 0 && now - s.lastUsed > options.idleTimeoutMs) closeSession(s, "idle timeout");
    }
  }, Math.min(60_000, Math.max(1000, options.idleTimeoutMs / 4)));
  Deno.unrefTimer(Number(sweep));

  const gate = (request: Request, url: URL): Response | null => {
    if (!hostOk(authority(request, url))) {
      return plain(403, "Forbidden: Host header does not name this server");
    }
    const origin = request.headers.get("origin");
    if (origin !== null && !options.allowedOrigins.includes(origin)) {
      return plain(403, "Forbidden: Origin not allowed");
    }
    for (const name of url.searchParams.keys()) {
      if (/token|auth|key|secret|password/i.test(name)) {
        return plain(400, "Bad Request: credentials are accepted only in the Authorization header");
      }
    }
    if (!tokenOk(request.headers.get("authorization"))) {
      return new Response("Unauthorized\n", {
        status: 401,
        headers: { "www-authenticate": 'Bearer realm="mcp-remote-ssh"', "content-type": "text/plain" },
      });
    }
    const length = request.headers.get("content-length");
    if (length !== null && Number(length) > options.maxBodyBytes) {
      return plain(413, `Payload Too Large: the limit is ${options.maxBodyBytes} bytes`);
    }
    const version = request.headers.get("mcp-protocol-version");
    if (version !== null && !SUPPORTED_PROTOCOL_VERSIONS.includes(version)) {
      return plain(400, `Bad Request: unsupported MCP-Protocol-Version ${JSON.stringify(version.slice(0, 40))}`);
    }
    return null;
  };

  async function streamable(request: Request): Promise<Response> {
    const id = request.headers.get("mcp-session-id");
    const existing = id === null ? undefined : sessions.get(id);
    if (id !== null && (existing === undefined || existing.transport instanceof SseTransport)) {
      return jsonError(404, -32001, "Session not found");
    }
    // Every POSTed message is checked here, as on stdio: the SDK answers an
    // invalid one -32700 whatever is wrong with it (see jsonrpc.ts).
    let body: unknown = undefined;
    if (request.method === "POST") {
      body = await readJson(request, options.maxBodyBytes);
      if (body instanceof Response) return body;
      const refused = refusal(body);
      if (refused !== null) return refused;
    }
    if (existing !== undefined) {
      const transport = existing.transport as WebStandardStreamableHTTPServerTransport;
      existing.lastUsed = Date.now();
      const response = await transport.handleRequest(request, body === undefined ? undefined : { parsedBody: body });
      if (request.method === "DELETE" && response.ok) await closeSession(existing, "deleted by the client");
      return response;
    }
    if (request.method !== "POST") return jsonError(400, -32000, "Bad Request: no session; initialize first");
    const messages = Array.isArray(body) ? body : [body];
    // The JSON-RPC id the 503 answers; isInitializeRequest's type leaves it out.
    const initialize = messages.find((m) => isInitializeRequest(m)) as { id?: string | number } | undefined;
    if (initialize === undefined) {
      return jsonError(400, -32000, "Bad Request: no session; initialize first");
    }
    const busy = full(initialize.id ?? null);
    if (busy !== null) return busy;
    reserved++;
    let reserving = true;
    const release = () => {
      if (reserving) reserved--;
      reserving = false;
    };
    let created: CreatedServer | null = null;
    let session: HttpSession | null = null;
    try {
      // The session's own server and registry; kept only if initialize succeeds.
      // Inside the try: a failure here must still give the reservation back.
      created = options.create();
      const server = created;
      const transport: WebStandardStreamableHTTPServerTransport = new WebStandardStreamableHTTPServerTransport({
        sessionIdGenerator: newSessionId,
        maxRequestBodySize: options.maxBodyBytes,
        onsessioninitialized: (sid) => {
          release(); // the reservation becomes the session, in one step
          session = admit(sid, server, transport);
          logger.info(`HTTP session ${sid.slice(0, 8)}… opened`);
        },
      });
      transport.onclose = () => {
        if (session !== null) closeSession(session, "transport closed");
      };
      await server.server.connect(transport);
      trackRequests(transport, () => session);
      return await transport.handleRequest(request, { parsedBody: body });
    } finally {
      release();
      if (session === null) await created?.close(); // initialize failed: nothing to keep
    }
  }

  async function sse(request: Request, url: URL): Promise<Response> {
    if (url.pathname === SSE_PATH && request.method === "GET") {
      const busy = full(null);
      if (busy !== null) return busy;
      const id = newSessionId();
      const transport = new SseTransport(id, `${SSE_MESSAGES_PATH}?sessionId=${id}`);
      const session = admit(id, options.create(), transport);
      transport.onclose = () => closeSession(session, "stream closed");
      await session.created.server.connect(transport);
      trackRequests(transport, () => session);
      logger.info(`SSE session ${id.slice(0, 8)}… opened`);
      return transport.response(request.signal);
    }
    if (url.pathname === SSE_MESSAGES_PATH && request.method === "POST") {
      const session = sessions.get(url.searchParams.get("sessionId") ?? "");
      if (session === undefined || !(session.transport instanceof SseTransport)) {
        return plain(404, "Session not found");
      }
      session.lastUsed = Date.now();
      const body = await readJson(request, options.maxBodyBytes);
      if (body instanceof Response) return body;
      return session.transport.deliver(body);
    }
    return plain(404, "Not Found");
  }

  let boundPort = options.port;
  let resolveListening!: () => void;
  const listening = new Promise<void>((resolve) => (resolveListening = resolve));
  const server = Deno.serve({
    hostname: options.host,
    port: options.port,
    ...options.tls,
    onListen: (addr) => {
      boundPort = (addr as Deno.NetAddr).port;
      hostOk = hostChecker(options.host, boundPort);
      options.onListen?.(boundPort);
      resolveListening();
    },
    onError: (error) => {
      logger.error(`HTTP handler failed: ${error instanceof Error ? error.message : String(error)}`);
      return plain(500, "Internal Server Error");
    },
  }, async (request) => {
    let url: URL;
    try {
      url = new URL(request.url);
    } catch {
      return plain(400, "Bad Request: unparsable request target or Host");
    }
    const refused = gate(request, url);
    if (refused !== null) {
      logger.info(`HTTP ${request.method} ${url.pathname} refused: ${refused.status}`);
      return refused;
    }
    if (options.transport === "streamable-http") {
      if (url.pathname !== MCP_PATH) return plain(404, "Not Found");
      return await streamable(request);
    }
    return await sse(request, url);
  });

  let stopping: Promise<void> | null = null;
  const shutdown = () =>
    stopping ??= (async () => {
      clearInterval(sweep);
      await Promise.allSettled([...sessions.values()].map((s) => closeSession(s, "server shutdown")));
      await server.shutdown();
    })();
  return listening.then(() => ({ port: boundPort, shutdown, finished: server.finished }));
}

/**
 * Counts a session's unanswered requests (wrapping the handlers the MCP
 * server installed on its transport), so the idle sweep never closes a
 * session in the middle of a long command.
 */
function trackRequests(transport: Transport, session: () => HttpSession | null): void {
  const receive = transport.onmessage;
  const send = transport.send.bind(transport);
  transport.onmessage = (message, extra) => {
    const s = session();
    if (s !== null) {
      settle(s.inFlight, message, "in");
      if ("method" in message && message.method === "notifications/initialized" && !("id" in message)) {
        s.initialized = true;
        clearTimeout(s.initTimer);
      }
    }
    receive?.(message, extra);
  };
  transport.send = (message, options) => {
    const s = session();
    if (s !== null) {
      s.lastUsed = Date.now();
      settle(s.inFlight, message, "out");
    }
    return send(message, options);
  };
}

/**
 * The authority the client addressed, as `host:port`. HTTP/1.1 sends it as
 * `Host`; HTTP/2 (which browsers and fetch negotiate over TLS) sends
 * `:authority`, which Deno puts only into the request URL. A browser always
 * sends one of the two, so DNS rebinding is checked either way; an HTTP/1.x
 * request without `Host` gets a URL Deno made up from `localhost`, which is
 * no browser's and still needs the token.
 */
function authority(request: Request, url: URL): string | null {
  const host = request.headers.get("host");
  if (host !== null) return host;
  if (url.hostname === "") return null;
  // URL drops a default port; the Host check compares it explicitly.
  return url.port === "" ? `${url.hostname}:${url.protocol === "https:" ? 443 : 80}` : url.host;
}

/** ≥ 128 bits from the system's CSPRNG (here 256), hex. */
function newSessionId(): string {
  return randomHex(32);
}

/**
 * The check of `Host` headers for a server bound at `bind`:`port`, built
 * once: the bound address, plus the loopback names when it is loopback.
 */
export function hostChecker(bind: string, port: number): (host: string | null) => boolean {
  // A wildcard bind serves whatever address the client used; DNS rebinding
  // is then stopped by the token, which a rebinding page does not have.
  if (bind === "0.0.0.0" || bind === "::") return (host) => host !== null && /^[A-Za-z0-9.\-:[\]]+$/.test(host);
  const names = [
    isIP(bind) === 6 ? `[${bind}]` : bind,
    ...(isLoopback(bind) ? ["localhost", "127.0.0.1", "[::1]"] : []),
  ];
  const allowed = new Set(names.map((name) => `${name}:${port}`.toLowerCase()));
  return (host) => host !== null && allowed.has(host.toLowerCase());
}

/**
 * The bearer-token check, built once: both sides are SHA-256 hashed before a
 * constant-time comparison, so not even the token's length leaks.
 */
export function tokenChecker(token: string): (header: string | null) => boolean {
  const wanted = createHash("sha256").update(token).digest();
  return (header) => {
    const match = header?.match(/^Bearer\s+(\S+)\s*$/i) ?? null;
    const given = createHash("sha256").update(match?.[1] ?? "").digest();
    return timingSafeEqual(given, wanted) && match !== null;
  };
}
