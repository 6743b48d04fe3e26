/**
 * Tools of the port-forwarding family: local (`ssh -L`), remote (`ssh -R`)
 * and dynamic SOCKS5 (`ssh -D`) tunnels, listed with their traffic and
 * closed with every connection they carry.
 *
 * @module
 */

import { isIP } from "node:net";
import { z } from "zod";
import { SshMcpError } from "../errors.ts";
import { hostMatches } from "../policy.ts";
import { type Endpoint, Forward, type ForwardInfo } from "../ssh/forward.ts";
import { hostProblem, isLoopback } from "../validate.ts";
import { defineTool, type ToolDef, type ToolDeps } from "./define.ts";
import { ok } from "./result.ts";
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

/** The port-forwarding tools. */
export function forwardTools(deps: ToolDeps): ToolDef[] {
  const { sessions, config, logger } = deps;

  const forwardPort = defineTool({
    name: "ssh_forward_port",
    toolset: "forward",
    title: "Open a port forward (SSH tunnel)",
    description: "local (ssh -L, default): listen on local_bind:local_port (0 = free), the server connects " +
      "to remote_host:remote_port. remote (ssh -R): server's remote_bind:remote_port to local_host:local_port. " +
      "dynamic (ssh -D): SOCKS5 here. Hosts default to 127.0.0.1.",
    input: {
      session_id: s.sessionId,
      direction: z.enum(["local", "remote", "dynamic"]).optional(),
      local_bind: address.optional(),
      local_port: anyPort.optional(),
      remote_host: address.optional(),
      remote_port: anyPort.optional(),
      remote_bind: address.optional(),
      local_host: address.optional(),
    },
    changes: "remote",
    run: async (args, ctx) => {
      const session = sessions.get(args.session_id);
      const direction = args.direction ?? "local";
      // The slot is taken before anything opens, so parallel opens cannot pass the limit.
      using slot = session.forwards.reserve();
      const bind = { host: args.local_bind ?? "127.0.0.1", port: args.local_port ?? 0 };
      if (direction !== "remote" && !bindAllowed(bind.host, config.forwardBindAddresses)) {
        throw new SshMcpError("BIND_FAILED", `Listening on ${bind.host} is not allowed`, {
          hint: "Forwards listen on loopback (127.0.0.1 or ::1); other addresses must be listed in the " +
            "configuration's forward_bind_addresses",
        });
      }
      const id = slot.id;
      const common = {
        id,
        logger,
        connection: session.connection,
        signal: ctx.signal,
        // The tool has no timeout argument: like a file call's, the probe has default_timeout, but at
        // most 10 s, since a target that drops packets only earns a warning.
        probeTimeoutMs: Math.min(10, config.defaultTimeoutSeconds) * 1000,
      };
      let forward: Forward;
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
        // This process connects to the target itself: the allowlist holds for it as for ssh_connect.
        const target = { host: args.local_host ?? "127.0.0.1", port: args.local_port };
        if (config.allowedHosts !== undefined && !hostMatches(config.allowedHosts, target.host, target.port)) {
          throw new SshMcpError(
            "HOST_NOT_ALLOWED",
            `${target.host}:${target.port} is not in the allowed hosts, and a remote forward would connect there from here`,
            { hint: "Nothing was opened. Forward to a host and port listed in allowed_hosts (--allow-host)" },
          );
        }
        forward = await Forward.remote(common.connection, {
          ...common,
          bind: { host: args.remote_bind ?? "127.0.0.1", port: args.remote_port ?? 0 },
          target,
        });
      }
      if (!session.connection.alive) {
        await forward.close(); // lost while opening: nothing would close it later
        throw new SshMcpError("CONNECTION_LOST", `Session ${session.id} was lost while the forward opened`);
      }
      slot.fill(forward);
      const info = forward.info();
      const warning = forward.warning;
      return warning === null
        ? ok(describe(session.id, info), `Forward ${id}: ${summary(info)}`)
        : ok({ ...describe(session.id, info), warning }, `Forward ${id}: ${summary(info)}\nWarning: ${warning}`);
    },
  });

  const listForwards = defineTool({
    name: "ssh_list_forwards",
    toolset: "forward",
    title: "List port forwards",
    description: "List forwards (all sessions' without session_id): addresses, connections, bytes, last error.",
    input: { session_id: s.sessionId.optional() },
    output: { forwards: z.array(z.object(forwardShape)) },
    changes: "nothing",
    readOnlyUseful: false, // forwards come from ssh_forward_port only
    run: (args) => {
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
    },
  });

  const closeForward = defineTool({
    name: "ssh_close_forward",
    toolset: "forward",
    title: "Close a port forward",
    description: "Stop a forward and the connections it carries.",
    input: { session_id: s.sessionId, forward_id: z.string().min(1).max(64) },
    changes: "remote",
    destructive: true,
    run: async (args) => {
      const session = sessions.get(args.session_id);
      const forward = session.forwards.lookup(args.forward_id);
      session.forwards.delete(forward.id);
      await forward.close();
      return ok({ closed: true, forward_id: forward.id }, `Closed forward ${forward.id}`);
    },
  });

  return [forwardPort, listForwards, closeForward];
}
