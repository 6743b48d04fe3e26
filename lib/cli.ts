/**
 * Command-line flags, help text and version.
 *
 * @module
 */

import { parseArgs } from "node:util";
import denoJson from "../deno.json" with { type: "json" };
import { LOG_LEVELS, type LogLevel } from "./log.ts";
import { parseToolsets, type Toolset, TOOLSETS } from "./toolsets.ts";

/** The version printed by `--version`, from deno.json. */
export const VERSION: string = denoJson.version;

/** Flags as given; unset ones are undefined so the config file can fill them. */
export interface CliFlags {
  transport: "stdio" | "streamable-http" | "sse";
  /** HTTP transports: address to bind. */
  host?: string;
  /** HTTP transports: port to bind (0 = a free one). */
  port?: number;
  /** HTTP transports: file holding the bearer token. */
  tokenFile?: string;
  /** HTTP transports: origins allowed in an Origin header. */
  allowOrigins: string[];
  /** HTTP transports: PEM certificate chain to serve HTTPS with (needs `tlsKey`). */
  tlsCert?: string;
  /** HTTP transports: PEM private key of `tlsCert`. */
  tlsKey?: string;
  config?: string;
  knownHosts: string[];
  /** `--ssh-config` files, in order ("none" reads none). */
  sshConfigs: string[];
  allowLocalDirs: string[];
  /** `--no-working-dir`: the working directory is never a local root, not even as the last resort. */
  noWorkingDir?: boolean;
  hostKeyPolicy?: "strict" | "accept-new";
  logLevel?: LogLevel;
  /** Toolsets to offer (`connect` always); undefined: the config file's, else all. */
  toolsets?: Toolset[];
  /** Offer only tools that change nothing. */
  readOnly: boolean;
  /** `--allow-host` patterns, added to the config file's `allowed_hosts`. */
  allowHosts: string[];
  /** `--audit-log FILE`: replaces the config file's `audit_log`. */
  auditLog?: string;
  /**
   * TEST ONLY (`--test-ssh2-version`, not in --help): the ssh2 version the
   * repairs of lib/ssh2/ are to believe is installed, so a test can see them
   * turn themselves off.
   */
  testSsh2Version?: string;
  version: boolean;
  help: boolean;
}

/** Help text for `--help`. */
export const HELP = `mcp-remote-ssh ${VERSION}
An MCP server that gives AI agents SSH sessions, commands and files on remote hosts.

Usage: mcp-remote-ssh [options] [-- DIR...]
       mcp-remote-ssh verify-audit FILE    check an audit log's hash chain
       mcp-remote-ssh doctor [options] HOST
                                           why a connection to HOST fails (or works), step
                                           by step, with the fix; changes nothing (--help)

Options:
  --transport KIND              stdio (default), streamable-http, or sse (older HTTP clients)
  --host ADDR                   HTTP: address to bind (default 127.0.0.1); another address
                                than loopback needs TLS (--tls-cert, --tls-key) and a
                                configured token
  --port N                      HTTP: port (default 9810; 0 picks a free one)
  --token-file FILE             HTTP: bearer token clients must send; or set
                                MCP_REMOTE_SSH_TOKEN; on loopback without either, a random
                                token is generated and printed once to stderr
  --allow-origin ORIGIN         HTTP: an Origin browsers may send, e.g.
                                http://localhost:6274 (repeatable; default none)
  --tls-cert FILE               HTTP: serve HTTPS with this PEM certificate (chain);
                                needs --tls-key
  --tls-key FILE                HTTP: the PEM private key of --tls-cert
  --config FILE                 JSON configuration file (see README)
  --ssh-config FILE             ssh_config file to read instead of ~/.ssh/config
                                (repeatable, read in order); none reads none
  --known-hosts FILE            Extra known_hosts file, read after ~/.ssh/known_hosts;
                                the last one given receives new keys under accept-new
                                (repeatable)
  --allow-local-dir DIR         Local directory that uploads may read and downloads may write
                                (repeatable, or list them after --). Without one: the MCP
                                client's roots if it sends any, else the working directory
                                unless it is / or your home
  --no-working-dir              Never use the working directory as that last resort (a
                                client that starts the server where it likes)
  --host-key-policy POLICY      strict (default): refuse unknown host keys;
                                accept-new: record unknown keys, refuse changed ones
  --log-level LEVEL             debug, info, warn (default), error, silent; logs go to stderr
  --toolsets LIST               Tools to offer, comma-separated: ${TOOLSETS.join(",")}
                                (default all; connect is always on)
  --read-only                   Offer only tools that change nothing: no commands, shells,
                                writes, transfers or forwards
  --allow-host PATTERN          Connect only to hosts matching a pattern (repeatable; every
                                jump hop too): host, host:port, *.example.com, 10.0.0.0/8,
                                !excluded. Default: any host
  --audit-log FILE              Record every tool call as one JSON line, hash-chained
                                (see README: guardrails)
  --version                     Print the version and exit
  --help                        Print this help and exit

An empty --ssh-config= or --host-key-policy= counts as not given (a desktop bundle's
setting left empty). With stdio, stdout carries only MCP messages. The server exits on
stdin EOF (stdio), SIGINT or SIGTERM, closing every SSH connection it holds.
`;

/** Parses argv; throws a TypeError with a readable message on bad flags. */
export function parseFlags(argv: string[]): CliFlags {
  const { values, positionals, tokens } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    tokens: true,
    options: {
      transport: { type: "string" },
      host: { type: "string" },
      port: { type: "string" },
      "token-file": { type: "string" },
      "allow-origin": { type: "string", multiple: true },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
      config: { type: "string" },
      "known-hosts": { type: "string", multiple: true },
      "ssh-config": { type: "string", multiple: true },
      "allow-local-dir": { type: "string", multiple: true },
      "no-working-dir": { type: "boolean" },
      "host-key-policy": { type: "string" },
      "log-level": { type: "string" },
      toolsets: { type: "string" },
      "read-only": { type: "boolean" },
      "allow-host": { type: "string", multiple: true },
      "audit-log": { type: "string" },
      "test-ssh2-version": { type: "string" },
      version: { type: "boolean", short: "V" },
      help: { type: "boolean", short: "h" },
    },
  });
  // Local directories may also follow `--`: a desktop bundle (packaging/mcpb) expands a list
  // of folders into separate arguments only, never into one flag per folder. Before `--` a
  // bare word is a mistake (`--read-only yes`) and is refused.
  const end = tokens.findIndex((t) => t.kind === "option-terminator");
  const stray = tokens.find((t, i) => t.kind === "positional" && (end === -1 || i < end));
  if (stray?.kind === "positional") {
    throw new TypeError(`Unexpected argument ${JSON.stringify(stray.value)}: local directories go after --`);
  }
  const transport = values.transport ?? "stdio";
  if (transport !== "stdio" && transport !== "streamable-http" && transport !== "sse") {
    throw new TypeError(`Invalid --transport ${JSON.stringify(transport)}: use stdio, streamable-http or sse`);
  }
  const port = values.port === undefined ? undefined : Number(values.port);
  if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port <= 65535 && /^\d+$/.test(values.port!))) {
    throw new TypeError(`Invalid --port ${JSON.stringify(values.port)}: use 0-65535`);
  }
  if (transport === "stdio" && (values.host ?? values.port ?? values["token-file"]) !== undefined) {
    throw new TypeError("--host, --port and --token-file apply to the HTTP transports only");
  }
  if (transport === "stdio" && (values["tls-cert"] ?? values["tls-key"]) !== undefined) {
    throw new TypeError("--tls-cert and --tls-key apply to the HTTP transports only");
  }
  // A certificate without its key (or the reverse) cannot serve HTTPS; saying
  // so here beats a server that silently falls back to plain HTTP.
  if ((values["tls-cert"] === undefined) !== (values["tls-key"] === undefined)) {
    throw new TypeError("--tls-cert and --tls-key go together: give both PEM files, or neither");
  }
  // A bundle setting left empty arrives as `--host-key-policy=` / `--ssh-config=`: not given.
  const policy = values["host-key-policy"] || undefined;
  if (policy !== undefined && policy !== "strict" && policy !== "accept-new") {
    throw new TypeError(`Invalid --host-key-policy ${JSON.stringify(policy)}: use strict or accept-new`);
  }
  const level = values["log-level"];
  if (level !== undefined && !(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new TypeError(`Invalid --log-level ${JSON.stringify(level)}: use one of ${LOG_LEVELS.join(", ")}`);
  }
  return {
    transport,
    host: values.host,
    port,
    tokenFile: values["token-file"],
    allowOrigins: values["allow-origin"] ?? [],
    tlsCert: values["tls-cert"],
    tlsKey: values["tls-key"],
    config: values.config,
    knownHosts: values["known-hosts"] ?? [],
    sshConfigs: (values["ssh-config"] ?? []).filter((f) => f !== ""),
    allowLocalDirs: [...(values["allow-local-dir"] ?? []), ...positionals],
    noWorkingDir: values["no-working-dir"] ?? false,
    hostKeyPolicy: policy,
    logLevel: level as LogLevel | undefined,
    toolsets: values.toolsets === undefined ? undefined : parseToolsets(values.toolsets),
    readOnly: values["read-only"] ?? false,
    allowHosts: values["allow-host"] ?? [],
    auditLog: values["audit-log"],
    testSsh2Version: values["test-ssh2-version"],
    version: values.version ?? false,
    help: values.help ?? false,
  };
}
