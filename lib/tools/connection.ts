/**
 * Tools of the connection family: ssh_connect, ssh_list_sessions,
 * ssh_close_session.
 *
 * @module
 */

// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import type { RemoteInfo } from "../ssh/remote.ts";
import type { ToolDeps } from "./mod.ts";
import { guarded, ok } from "./result.ts";
import * as s from "./schemas.ts";

/** Registers the connection tools. */
export function registerConnectionTools(server: McpServer, deps: ToolDeps): void {
  const { sessions, config } = deps;

  server.registerTool(
    "ssh_connect",
    {
      title: "Connect to an SSH server",
      description: "Open a persistent SSH session and return its session_id. The server's host key is checked " +
        "against known_hosts before any credential is sent; unknown or changed keys are refused with the " +
        "fingerprint and how to trust it. Authenticates with `password`, `private_key_path` (+ `passphrase`), " +
        "or, when neither is given, the ssh-agent from SSH_AUTH_SOCK.",
      inputSchema: {
        host: s.host,
        port: s.port.default(22).describe("SSH port (default 22)"),
        username: s.username,
        password: z.string().max(4096).optional().describe("Password for password authentication"),
        private_key_path: z.string().min(1).max(4096).optional()
          .describe("Path of a private key file on the machine running this server (e.g. ~/.ssh/id_ed25519)"),
        passphrase: z.string().max(4096).optional().describe("Passphrase of an encrypted private key"),
        connect_timeout: s.timeoutSeconds(600, "Time allowed for TCP connect, handshake and authentication")
          .optional(),
      },
      outputSchema: {
        session_id: z.string(),
        host: z.string(),
        port: z.number(),
        username: z.string(),
        connected: z.boolean(),
        host_key_type: z.string(),
        host_key_fingerprint: z.string().describe("SHA256 fingerprint, as ssh-keygen -l prints it"),
        host_key_added: z.boolean().describe("True when accept-new recorded this host key now"),
        server_version: z.string(),
        auth_method: z.enum(["password", "publickey", "agent"]),
        remote: z.object({
          os: z.string().nullable().describe("uname -s (Linux, Darwin, FreeBSD...), Windows, or null if unknown"),
          login_shell: z.string().nullable(),
          exec: z.enum(["posix", "replaced", "windows", "unknown"])
            .describe(
              "posix: ssh_execute works as described; replaced: the server runs a forced command instead; " +
                "windows: no POSIX shell (Windows, or a cmd.exe/PowerShell login shell), ssh_execute is unavailable; " +
                "unknown: the probe did not finish",
            ),
          process_group: z.enum(["own", "setsid", "none"]).nullable()
            .describe("none: a timeout kills the shell only, not what it started"),
          login_output: z.string().optional().describe("What the login files print on every command"),
          note: z.string().optional(),
        }),
      },
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
    },
    guarded(async (args, extra) => {
      const session = await sessions.open({
        host: args.host,
        port: args.port,
        username: args.username,
        password: args.password,
        privateKeyPath: args.private_key_path === undefined
          ? undefined
          : expandHome(args.private_key_path, config.home),
        passphrase: args.passphrase,
        agentSocket: config.agentSocket,
        knownHosts: {
          files: config.knownHostsFiles,
          writeFile: config.knownHostsWriteFile,
          policy: config.hostKeyPolicy,
        },
        connectTimeoutMs: (args.connect_timeout ?? config.connectTimeoutSeconds) * 1000,
        keepaliveIntervalMs: config.keepaliveIntervalSeconds * 1000,
        keepaliveCountMax: config.keepaliveCountMax,
        maxChannels: config.maxChannelsPerSession,
        logger: deps.logger,
        signal: extra.signal, // the client's cancel ends the connect at any step
      });
      const info = session.connection.info;
      const result = {
        session_id: session.id,
        host: info.host,
        port: info.port,
        username: info.username,
        connected: true,
        host_key_type: info.hostKeyType,
        host_key_fingerprint: info.hostKeyFingerprint,
        host_key_added: info.hostKeyAdded,
        server_version: info.serverVersion,
        auth_method: info.authMethod,
        remote: remoteSummary(session.remote),
      };
      const added = info.hostKeyAdded ? " (host key newly added to known_hosts)" : "";
      return ok(
        result,
        `Connected: session_id=${session.id} ${info.username}@${info.host}:${info.port} ` +
          `${info.serverVersion}, host key ${info.hostKeyType} ${info.hostKeyFingerprint}${added}\n` +
          describeRemote(session.remote),
      );
    }),
  );

  server.registerTool(
    "ssh_list_sessions",
    {
      title: "List SSH sessions",
      description: "List open SSH sessions with their host, user, state and host key fingerprint.",
      inputSchema: {},
      outputSchema: {
        sessions: z.array(z.object({
          session_id: z.string(),
          host: z.string(),
          port: z.number(),
          username: z.string(),
          connected: z.boolean(),
          host_key_fingerprint: z.string(),
          server_version: z.string(),
          created_at: z.string(),
          last_used_at: z.string(),
          error: z.string().optional(),
        })),
      },
      annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    guarded(() => {
      const list = sessions.list();
      const text = list.length === 0
        ? "No sessions"
        : list.map((x) =>
          `${x.session_id} ${x.username}@${x.host}:${x.port} ${x.connected ? "connected" : `disconnected (${x.error})`}`
        ).join("\n");
      return Promise.resolve(ok({ sessions: list }, text));
    }),
  );

  server.registerTool(
    "ssh_close_session",
    {
      title: "Close an SSH session",
      description: "Close a session and everything running on it.",
      inputSchema: { session_id: s.sessionId },
      outputSchema: { session_id: z.string(), closed: z.boolean() },
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
    },
    guarded(async (args) => {
      await sessions.close(args.session_id);
      return ok({ session_id: args.session_id, closed: true }, `Closed session ${args.session_id}`);
    }),
  );
}

function remoteSummary(r: RemoteInfo) {
  return {
    os: r.os,
    login_shell: r.loginShell,
    exec: r.exec,
    process_group: r.processGroup,
    ...(r.loginOutput === "" ? {} : { login_output: r.loginOutput }),
    ...(r.note === null ? {} : { note: r.note }),
  };
}

/** One line per fact an agent should act on. */
function describeRemote(r: RemoteInfo): string {
  const lines = [`Remote: ${r.os ?? "unknown OS"}, login shell ${r.loginShell ?? "unknown"}`];
  if (r.exec === "replaced") {
    lines.push(
      "Warning: this account does not run the commands it is sent (a forced command: ForceCommand or " +
        `command= in authorized_keys, or a login shell that runs none); ssh_execute shows what it runs instead. ` +
        `It answered: ${r.note || "(nothing)"}`,
    );
  }
  if (r.exec === "windows") {
    lines.push(
      `${r.os === "Windows" ? "Windows server" : "No POSIX shell (the login shell answered like PowerShell)"}: ` +
        "ssh_execute and ssh_sudo_execute are unavailable; shells and file tools work.",
    );
  }
  if (r.exec === "unknown") lines.push(`Note: the remote could not be probed (${r.note ?? "no answer"}).`);
  if (r.processGroup === "none") {
    lines.push("Note: no process group of its own and no setsid: a timeout kills a command's shell only.");
  }
  if (r.loginOutput !== "") {
    lines.push(
      `The login files print on every command (kept out of stdout/stderr): ${JSON.stringify(r.loginOutput)}`,
    );
  }
  return lines.join("\n");
}

function expandHome(path: string, home: string | undefined): string {
  if (path !== "~" && !path.startsWith("~/")) return path;
  return home ? home + path.slice(1) : path;
}
