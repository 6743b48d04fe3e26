/**
 * Tools of the port-forwarding family: local (`ssh -L`), remote (`ssh -R`)
 * and dynamic SOCKS5 (`ssh -D`) tunnels, listed with their traffic and
 * closed with every connection they carry.
 *
 * @module
 */

// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { isIP } from "node:net";
import { z } from "zod";
import { SshMcpError } from "../errors.ts";
import type { Session } from "../sessions.ts";
import { type Endpoint, Forward, type ForwardInfo } from "../ssh/forward.ts";
import { hostProblem, isLoopback } from "../validate.ts";
import { randomHex } from "../random.ts";
import type { ToolDeps } from "./mod.ts";
import { guarded, ok } from "./result.ts";
import * as s from "./schemas.ts";

const address = z.string().min(1).max(255).superRefine((value, ctx) => {
  const why = hostProblem(value);
  if (why !== null) ctx.addIssue({ code: "custom", message: why });
});
const anyPort = z.int().min(0).max(65535);

const endpoint = z.object({ host: z.string(), port: z.number() });
const forwardShape = {
  forward_id: z.string(),
  session_id: z.string(),
  direction: z.enum(["local", "remote", "dynamic"]),
  listen: endpoint.describe("Where connections arrive: here for local/dynamic, on the SSH server for remote"),
  target: endpoint.nullable().describe(
    "Where they go: as seen from the SSH server for local, from here for remote; null for dynamic",
  ),
  open_connections: z.number(),
  total_connections: z.number(),
  bytes_out: z.number().describe("Bytes from connecting clients to targets"),
  bytes_in: z.number().describe("Bytes from targets back to clients"),
  created_at: z.string(),
  last_error: z.string().nullable(),
  last_error_at: z.string().nullable(),
};

function describe(sessionId: string, f: ForwardInfo) {
  return {
    forward_id: f.id,
    session_id: sessionId,
    direction: f.kind,
    listen: f.listen,
    target: f.target,
    open_connections: f.openConnections,
    total_connections: f.totalConnections,
    bytes_out: f.bytesOut,
    bytes_in: f.bytesIn,
    created_at: f.createdAt.toISOString(),
    last_error: f.lastError,
    last_error_at: f.lastErrorAt?.toISOString() ?? null,
  };
}

function show(e: Endpoint): string {
  return isIP(e.host) === 6 ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

function summary(f: ForwardInfo): string {
  switch (f.kind) {
    case "local":
      return `${show(f.listen)} here -> ${show(f.target!)} from the SSH server`;
    case "dynamic":
      return `SOCKS5 proxy on ${show(f.listen)} here, connecting from the SSH server`;
    case "remote":
      return `${show(f.listen)} on the SSH server -> ${show(f.target!)} here`;
  }
}

/** Whether a local listener may bind `host`: loopback always, others only when configured. */
function bindAllowed(host: string, allowed: string[]): boolean {
  return isLoopback(host) || allowed.includes(host);
}

function newForwardId(): string {
  return "f-" + randomHex(6);
}

/** Registers the port-forwarding tools. */
export function registerForwardTools(server: McpServer, deps: ToolDeps): void {
  const { sessions, config, logger } = deps;
  // Forward slots being opened, per session, so parallel opens cannot pass the cap.
  const opening = new WeakMap<Session, number>();

  function forwardOf(sessionId: string, forwardId: string): { session: Session; forward: Forward } {
    const session = sessions.get(sessionId);
    const forward = session.forwards.get(forwardId);
    if (forward === undefined) {
      throw new SshMcpError("FORWARD_NOT_FOUND", `Session ${sessionId} has no forward ${JSON.stringify(forwardId)}`, {
        hint: "ssh_list_forwards lists the open forwards",
      });
    }
    return { session, forward };
  }

  server.registerTool(
    "ssh_forward_port",
    {
      title: "Open a port forward (SSH tunnel)",
      description: "Open a tunnel over the session. direction=local (ssh -L, the default): listen here on " +
        "local_bind:local_port (0 picks a free port, returned) and connect from the SSH server to " +
        "remote_host:remote_port, e.g. a database on the server's 127.0.0.1. direction=remote (ssh -R): the SSH server " +
        "listens on remote_bind:remote_port and connections come back to local_host:local_port here. " +
        "direction=dynamic (ssh -D): a SOCKS5 proxy here on local_bind:local_port; each client picks its " +
        "destination, reached from the SSH server. Local listeners bind loopback only unless configured otherwise. " +
        "Opening a local forward makes one test connection from the SSH server to the target (closed at once, " +
        "no bytes sent; a dynamic one tries 127.0.0.1 port 0): a server that forbids forwarding fails the call " +
        "with FORWARD_REFUSED, a target where nothing answers yet gives a warning.",
      inputSchema: {
        session_id: s.sessionId,
        direction: z.enum(["local", "remote", "dynamic"]).optional().describe("local (default), remote or dynamic"),
        local_bind: address.optional().describe(
          "local/dynamic: address to listen on here (default 127.0.0.1; others need forward_bind_addresses)",
        ),
        local_port: anyPort.optional().describe(
          "local/dynamic: port to listen on here (default 0 = a free one). remote: the port connections go to here",
        ),
        remote_host: address.optional().describe(
          "local: host the SSH server connects to (default 127.0.0.1, i.e. the server itself)",
        ),
        remote_port: anyPort.optional().describe(
          "local: port the SSH server connects to (required). remote: port the SSH server listens on (0 = it picks)",
        ),
        remote_bind: address.optional().describe(
          "remote: address the SSH server listens on (default 127.0.0.1; others need its GatewayPorts)",
        ),
        local_host: address.optional().describe("remote: host connections go to from here (default 127.0.0.1)"),
      },
      outputSchema: {
        ...forwardShape,
        warning: z.string().optional().describe(
          "Set when the forward opened but may not work: nothing answered at the target, or the server may " +
            "refuse some destinations",
        ),
      },
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
    },
    guarded(async (args, extra) => {
      const session = sessions.get(args.session_id);
      const direction = args.direction ?? "local";
      const taken = session.forwards.size + (opening.get(session) ?? 0);
      if (taken >= config.maxForwardsPerSession) {
        throw new SshMcpError(
          "FORWARD_LIMIT",
          `Session ${session.id} already has ${config.maxForwardsPerSession} forwards`,
          { hint: "Close forwards you no longer need with ssh_close_forward" },
        );
      }
      const bind = { host: args.local_bind ?? "127.0.0.1", port: args.local_port ?? 0 };
      if (direction !== "remote" && !bindAllowed(bind.host, config.forwardBindAddresses)) {
        throw new SshMcpError("BIND_FAILED", `Listening on ${bind.host} is not allowed`, {
          hint: "Forwards listen on loopback (127.0.0.1 or ::1); other addresses must be listed in the " +
            "configuration's forward_bind_addresses",
        });
      }
      const id = newForwardId();
      const common = {
        id,
        logger,
        connection: session.connection,
        signal: extra.signal,
        // The tool has no timeout argument: like a file call's, the probe has default_timeout, but at
        // most 10 s, since a target that drops packets only earns a warning.
        probeTimeoutMs: Math.min(10, config.defaultTimeoutSeconds) * 1000,
      };
      opening.set(session, (opening.get(session) ?? 0) + 1);
      let forward: Forward;
      try {
        if (direction === "local") {
          if (args.remote_port === undefined || args.remote_port === 0) {
            throw new SshMcpError("INVALID_ARGUMENT", "A local forward needs remote_port (1-65535)", {
              hint: "remote_port is the port to reach from the SSH server, e.g. 5432",
            });
          }
          forward = await Forward.local(common.connection, {
            ...common,
            bind,
            target: { host: args.remote_host ?? "127.0.0.1", port: args.remote_port },
          });
        } else if (direction === "dynamic") {
          forward = await Forward.dynamic(common.connection, { ...common, bind });
        } else {
          if (args.local_port === undefined || args.local_port === 0) {
            throw new SshMcpError("INVALID_ARGUMENT", "A remote forward needs local_port (1-65535)", {
              hint: "local_port is the port here that connections to the SSH server's listener reach",
            });
          }
          forward = await Forward.remote(common.connection, {
            ...common,
            bind: { host: args.remote_bind ?? "127.0.0.1", port: args.remote_port ?? 0 },
            target: { host: args.local_host ?? "127.0.0.1", port: args.local_port },
          });
        }
      } finally {
        opening.set(session, (opening.get(session) ?? 1) - 1);
      }
      if (!session.connection.alive) {
        await forward.close(); // lost while opening: nothing would close it later
        throw new SshMcpError("CONNECTION_LOST", `Session ${session.id} was lost while the forward opened`);
      }
      session.forwards.set(id, forward);
      const info = forward.info();
      const warning = forward.warning;
      return warning === null
        ? ok(describe(session.id, info), `Forward ${id}: ${summary(info)}`)
        : ok({ ...describe(session.id, info), warning }, `Forward ${id}: ${summary(info)}\nWarning: ${warning}`);
    }),
  );

  server.registerTool(
    "ssh_list_forwards",
    {
      title: "List port forwards",
      description: "List open port forwards with their addresses, open and total connections, bytes each way and " +
        "the last error (e.g. a target that refused). Without session_id, every session's forwards.",
      inputSchema: { session_id: s.sessionId.optional() },
      outputSchema: { forwards: z.array(z.object(forwardShape)) },
      annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    guarded((args) => {
      const ids = args.session_id === undefined
        ? sessions.list().map((x) => x.session_id)
        : [sessions.get(args.session_id).id];
      const forwards = ids.flatMap((id) => {
        const session = sessions.find(id);
        return session === undefined ? [] : [...session.forwards.values()].map((f) => describe(id, f.info()));
      });
      const text = forwards.length === 0
        ? "No forwards"
        : forwards.map((f) =>
          `${f.forward_id} (${f.session_id}) ${f.direction}: ${f.open_connections} open, ${f.total_connections} ` +
          `total, ${f.bytes_out} B out, ${f.bytes_in} B in` + (f.last_error ? `; last error: ${f.last_error}` : "")
        ).join("\n");
      return Promise.resolve(ok({ forwards }, text));
    }),
  );

  server.registerTool(
    "ssh_close_forward",
    {
      title: "Close a port forward",
      description: "Stop a forward's listener and close every connection it carries; the port is free afterwards.",
      inputSchema: {
        session_id: s.sessionId,
        forward_id: z.string().min(1).max(64).describe("Forward id from ssh_forward_port"),
      },
      outputSchema: { closed: z.boolean(), forward_id: z.string() },
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
    },
    guarded(async (args) => {
      const { session, forward } = forwardOf(args.session_id, args.forward_id);
      session.forwards.delete(forward.id);
      await forward.close();
      return ok({ closed: true, forward_id: forward.id }, `Closed forward ${forward.id}`);
    }),
  );
}
