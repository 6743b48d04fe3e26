/**
 * Tools of the connection family: ssh_connect, ssh_list_sessions,
 * ssh_close_session.
 *
 * @module
 */

import { z } from "zod";
import type { RemoteInfo } from "../ssh/remote.ts";
import { connectPrompts } from "./ask.ts";
import { defineTool, type ToolDef, type ToolDeps } from "./define.ts";
import { ok } from "./result.ts";
import * as s from "./schemas.ts";

/** The connection tools. */
export function connectionTools(deps: ToolDeps): ToolDef[] {
  const { sessions } = deps;
  return [
    defineTool({
      name: "ssh_connect",
      toolset: "connect",
      title: "Connect to an SSH server",
      description: "Open an SSH session; returns session_id for the other tools. The host key must match " +
        "known_hosts before any credential is sent. Auth: password, private_key_path (+passphrase), else ssh-agent.",
      input: {
        host: s.host,
        port: s.port.default(22).describe("Default 22"),
        username: s.username,
        password: z.string().max(4096).optional(),
        private_key_path: z.string().min(1).max(4096).optional().describe("Key file on this machine"),
        passphrase: z.string().max(4096).optional().describe("Of the private key"),
        connect_timeout: s.timeoutSeconds(600).optional(),
        host_key_fingerprint: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}=?$/).optional()
          .describe("Expected SHA256:… host key; any other is refused"),
      },
      // Under accept-new it records a host key in known_hosts here; it changes nothing remote.
      changes: "local",
      run: async (args, ctx) => {
        const session = await sessions.connect({
          host: args.host,
          port: args.port,
          username: args.username,
          password: args.password,
          privateKeyPath: args.private_key_path,
          passphrase: args.passphrase,
          connectTimeoutSeconds: args.connect_timeout,
          signal: ctx.signal, // the client's cancel ends the connect at any step
          // An unknown host key (strict) and keyboard-interactive prompts go to the user, if the client can ask.
          ask: connectPrompts(ctx.extra, deps.clientCapabilities?.()),
          expectedFingerprint: args.host_key_fingerprint,
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
      },
    }),
    defineTool({
      name: "ssh_list_sessions",
      toolset: "connect",
      title: "List SSH sessions",
      description: "List open sessions: host, user, state, host key fingerprint.",
      input: {},
      output: {
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
      changes: "nothing",
      run: () => {
        const list = sessions.list();
        const text = list.length === 0
          ? "No sessions"
          : list.map((x) =>
            `${x.session_id} ${x.username}@${x.host}:${x.port} ${
              x.connected ? "connected" : `disconnected (${x.error})`
            }`
          ).join("\n");
        return Promise.resolve(ok({ sessions: list }, text));
      },
    }),
    defineTool({
      name: "ssh_close_session",
      toolset: "connect",
      title: "Close an SSH session",
      description: "Close a session and everything running on it.",
      input: { session_id: s.sessionId },
      // Ends what this server started there (shells and what runs in them, forwards).
      changes: "remote",
      destructive: true,
      idempotent: true,
      run: async (args) => {
        await sessions.close(args.session_id);
        return ok({ session_id: args.session_id, closed: true }, `Closed session ${args.session_id}`);
      },
    }),
  ];
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
