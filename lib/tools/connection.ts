/**
 * Tools of the connection family: ssh_connect, ssh_diagnose,
 * ssh_list_sessions, ssh_close_session.
 *
 * @module
 */

import { z } from "zod";
import type { RemoteInfo } from "../ssh/remote.ts";
import type { TargetRequest } from "../targets.ts";
import { connectPrompts } from "./ask.ts";
import { defineTool, type ToolDef, type ToolDeps } from "./define.ts";
import { ok } from "./result.ts";
import * as s from "./schemas.ts";

/** The target, credentials and checks ssh_connect and ssh_diagnose both take, with the same meaning. */
const target = {
  host: s.host,
  port: s.port.optional(),
  username: s.username.optional(),
  password: z.string().max(4096).optional(),
  private_key_path: z.string().min(1).max(4096).optional().describe("Local key file"),
  passphrase: z.string().max(4096).optional(),
  connect_timeout: s.timeoutSeconds(600).optional(),
  host_key_fingerprint: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}=?$/).optional().describe("SHA256:…"),
};

/** ssh_connect's and ssh_diagnose's arguments as the request both resolve, with the same meaning. */
function targetRequest(
  args: z.infer<z.ZodObject<typeof target>>,
  signal: AbortSignal,
): Omit<TargetRequest, "ask"> {
  return {
    host: args.host,
    port: args.port,
    username: args.username,
    password: args.password,
    privateKeyPath: args.private_key_path,
    passphrase: args.passphrase,
    connectTimeoutSeconds: args.connect_timeout,
    expectedFingerprint: args.host_key_fingerprint,
    signal, // the client's cancel ends the connect at any step
  };
}

/** The connection tools. */
export function connectionTools(deps: ToolDeps): ToolDef[] {
  const { sessions } = deps;
  return [
    defineTool({
      name: "ssh_connect",
      toolset: "connect",
      title: "Connect to an SSH server",
      // Worded to the byte: the whole tool list has a budget (tests/tool_list_test.ts).
      description: "Open an SSH session. host may be a ~/.ssh/config alias (arguments override). Host key " +
        "checked before credentials. Auth: password, key, else agent/keys.",
      input: target,
      // Under accept-new it records a host key in known_hosts here; it changes nothing remote.
      changes: "local",
      run: async (args, ctx) => {
        const resolved = await sessions.resolve({
          ...targetRequest(args, ctx.signal),
          // An unknown host key (strict) and keyboard-interactive prompts go to the user, if the client can ask.
          ask: connectPrompts(ctx.extra, deps.clientCapabilities?.()),
        });
        // A host whose policy asks approval for every call asks it for the login too, before anything is sent.
        const { host, port, username } = resolved.options;
        await ctx.admit({ host, port, username });
        const session = await sessions.openResolved(resolved);
        const info = session.connection.info;
        const origin = session.origin;
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
          ...(info.jumps.length === 0 ? {} : {
            jumps: info.jumps.map((j) => ({
              host: j.host,
              port: j.port,
              username: j.username,
              host_key_fingerprint: j.hostKeyFingerprint,
              host_key_added: j.hostKeyAdded,
            })),
          }),
          ...(origin === null || origin.alias === null ? {} : { alias: origin.alias }),
          ...(origin === null || origin.configLines.length + origin.jumpConfigLines.length === 0
            ? {}
            : { ssh_config: [...origin.configLines, ...origin.jumpConfigLines] }),
          ...(origin === null || origin.warnings.length === 0 ? {} : { warnings: origin.warnings }),
        };
        const added = info.hostKeyAdded ? " (host key newly added to known_hosts)" : "";
        const via = info.jumps.length === 0
          ? ""
          : ` via ${info.jumps.map((j) => `${j.username}@${j.host}:${j.port}`).join(" -> ")}`;
        const lines = [
          `Connected: session_id=${session.id} ${info.username}@${info.host}:${info.port}${via} ` +
          `${info.serverVersion}, host key ${info.hostKeyType} ${info.hostKeyFingerprint}${added}`,
        ];
        if (origin !== null && origin.configLines.length + origin.jumpConfigLines.length > 0) {
          lines.push(`ssh_config: ${[...origin.configLines, ...origin.jumpConfigLines].join("; ")}`);
        }
        for (const warning of origin?.warnings ?? []) lines.push(`Warning: ${warning}`);
        lines.push(describeRemote(session.remote));
        return ok(result, lines.join("\n"));
      },
    }),
    defineTool({
      name: "ssh_list_sessions",
      toolset: "connect",
      title: "List SSH sessions",
      description: "List sessions and ~/.ssh/config hosts.",
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
        hosts: z.array(z.object({
          alias: z.string(),
          host: z.string(),
          port: z.number(),
          username: z.string().nullable(),
          jumps: z.array(z.string()),
          host_key_known: z.boolean().nullable(),
          error: z.string().optional(),
        })),
        hosts_truncated: z.boolean().optional(),
        hosts_error: z.string().optional(),
      },
      changes: "nothing",
      run: async () => {
        const list = sessions.list();
        const lines = list.length === 0
          ? ["No sessions"]
          : list.map((x) =>
            `${x.session_id} ${x.username}@${x.host}:${x.port} ${
              x.connected ? "connected" : `disconnected (${x.error})`
            }`
          );
        // A broken ssh_config must not hide the sessions: it is reported beside them.
        let inventory: Awaited<ReturnType<typeof sessions.hosts>> = { hosts: [], truncated: false };
        let hostsError: string | undefined;
        try {
          inventory = await sessions.hosts();
        } catch (error) {
          hostsError = error instanceof Error ? error.message : String(error);
        }
        const hosts = inventory.hosts.map((h) => ({
          alias: h.alias,
          host: h.host,
          port: h.port,
          username: h.username,
          jumps: h.jumps,
          host_key_known: h.hostKeyKnown,
          ...(h.error === undefined ? {} : { error: h.error }),
        }));
        if (hosts.length > 0) {
          lines.push(`Hosts in ssh_config (${hosts.length}${inventory.truncated ? ", more not shown" : ""}):`);
          for (const h of hosts) lines.push(describeHost(h));
        }
        if (hostsError !== undefined) lines.push(`ssh_config unreadable: ${hostsError}`);
        return ok({
          sessions: list,
          hosts,
          ...(inventory.truncated ? { hosts_truncated: true } : {}),
          ...(hostsError === undefined ? {} : { hosts_error: hostsError }),
        }, lines.join("\n"));
      },
    }),
    defineTool({
      name: "ssh_close_session",
      toolset: "connect",
      title: "Close an SSH session",
      description: "Close a session and all in it.",
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
    defineTool({
      name: "ssh_diagnose",
      toolset: "connect",
      title: "Diagnose an SSH connection",
      description: "Why ssh_connect fails: each step, with fixes. Tries a login.",
      input: target,
      output: {
        ok: z.boolean(),
        target: z.string(),
        host: z.string().optional(),
        port: z.number().optional(),
        username: z.string().optional(),
        verdict: z.string(),
        steps: z.array(z.object({
          step: z.string(),
          status: z.enum(["ok", "warn", "fail", "skip"]),
          host: z.string().optional(),
          hop: z.number().optional(),
          detail: z.string(),
          fix: z.string().optional(),
          data: z.record(z.string(), z.unknown()).optional(),
        })),
      },
      // Not read-only, not idempotent: it sends the credentials (each refusal counts toward the host's bans,
      // fail2ban or PerSourcePenalties) though it writes nothing and opens no channel. "local" as ssh_connect,
      // not "remote": a host policy's read_only then leaves it where it leaves ssh_connect, which needs it most.
      changes: "local",
      idempotent: false,
      run: async (args, ctx) => {
        // Loaded at the first call: a server that never diagnoses does not pay for it.
        const { diagnose } = await import("../doctor/mod.ts");
        const { renderDiagnosis } = await import("../doctor/render.ts");
        const diagnosis = await diagnose(targetRequest(args, ctx.signal), {
          config: deps.config,
          resolve: (request) => sessions.resolve(request),
          // A host whose policy asks approval for every call asks it for this login too.
          admit: (t) => ctx.admit(t),
        });
        return ok(diagnosis, renderDiagnosis(diagnosis));
      },
    }),
  ];
}

/** `alias: user@host:port via j1 -> j2, host key known` in one line. */
function describeHost(
  h: {
    alias: string;
    host: string;
    port: number;
    username: string | null;
    jumps: string[];
    host_key_known: boolean | null;
    error?: string;
  },
): string {
  if (h.error !== undefined) return `  ${h.alias}: unusable: ${h.error}`;
  const via = h.jumps.length === 0 ? "" : ` via ${h.jumps.join(" -> ")}`;
  const key = h.host_key_known ? "host key known" : "host key unknown";
  return `  ${h.alias}: ${h.username}@${h.host}:${h.port}${via}, ${key}`;
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
