/**
 * Validated configuration from a JSON file, flags and environment.
 *
 * @module
 */

import { z } from "zod";
import type { CliFlags } from "./cli.ts";
import { LOG_LEVELS, type LogLevel } from "./log.ts";
import type { WorkingDirRoot } from "./roots.ts";
import { type Toolset, TOOLSETS } from "./toolsets.ts";
import { BoundedReadError, ONE_MIB, readBoundedFile } from "./read_bounded.ts";
import { type HostPolicyRule, patternProblem } from "./policy.ts";

/** Everything the server needs to know at start-up. */
export interface Config {
  /** known_hosts files read in order. */
  knownHostsFiles: string[];
  /** Where accept-new records new host keys. */
  knownHostsWriteFile: string;
  /** ssh_config files read, in order, for every connect ([] when reading them is turned off). */
  sshConfigFiles: string[];
  hostKeyPolicy: "strict" | "accept-new";
  logLevel: LogLevel;
  /** Open SSH sessions allowed at once. */
  maxSessions: number;
  /** Channels open at once per session; keep at or below the server's MaxSessions. */
  maxChannelsPerSession: number;
  /** Cap per output stream of one command, in bytes. */
  maxOutputBytes: number;
  /** Output kept per interactive shell for reading, in bytes. */
  shellBufferBytes: number;
  /** Timeout of ssh_execute when the call gives none, in seconds. */
  defaultTimeoutSeconds: number;
  /** Upper bound of any command timeout, in seconds. */
  maxTimeoutSeconds: number;
  connectTimeoutSeconds: number;
  keepaliveIntervalSeconds: number;
  keepaliveCountMax: number;
  /**
   * Local directories transfers may read and write: as configured here,
   * real paths after start-up resolves them. When set, the client's roots are
   * ignored.
   */
  localRoots: string[];
  /** The configuration turned local files off (`local_roots: []` and no --allow-local-dir). */
  localFilesOff: boolean;
  /**
   * The working directory as the local root of last resort (no configured
   * roots, a client that sends none). Start-up checks it (`workingDirRoot` in
   * lib/roots.ts); until then it is refused.
   */
  workingDir: WorkingDirRoot;
  /**
   * Whether the MCP client's roots may become local roots. Over stdio the
   * client runs on this machine; over HTTP its `file://` URIs name its own
   * machine, and a remote client must not choose what this one reads or writes.
   */
  clientRoots: boolean;
  /**
   * Addresses local forward listeners may bind besides loopback (127.0.0.0/8, ::1).
   * Empty by default: a tunnel is reachable from this machine only.
   */
  forwardBindAddresses: string[];
  /** Forwards allowed per session. */
  maxForwardsPerSession: number;
  /** HTTP transports: origins allowed in an Origin header (exact match). */
  httpAllowedOrigins: string[];
  /** HTTP transports: largest request body, in bytes. */
  httpMaxBodyBytes: number;
  /** HTTP transports: an idle HTTP session is closed (with its SSH sessions) after this long, in seconds. */
  httpIdleTimeoutSeconds: number;
  /** HTTP transports: HTTP sessions open at once; an `initialize` beyond them gets 503. */
  httpMaxSessions: number;
  /** HTTP transports: a session that has not completed `initialize` this long after it opened is dropped, in seconds. */
  httpInitTimeoutSeconds: number;
  /** HTTP transports: PEM certificate (chain) and private key files to serve HTTPS with; both or neither. */
  httpTls?: { certFile: string; keyFile: string };
  /** Bytes of cut command output kept for ssh_output_read, for the whole server. */
  outputRetentionBytes: number;
  /** Hours a finished detached job's files stay on the remote host before a later job start or list removes them. */
  jobRetentionHours: number;
  /** False: jobs are connection-bound (output kept here, ended with the connection) instead of detached. */
  detachedJobs: boolean;
  /** Toolsets offered (`connect` always); undefined: all. */
  toolsets?: Toolset[];
  /** Only tools that change nothing are offered. */
  readOnly: boolean;
  /** ssh-agent socket from SSH_AUTH_SOCK, if any. */
  agentSocket?: string;
  /** The user's home directory, for `~/` in key paths. */
  home?: string;
  /** The local user name (USER, else LOGNAME): the remote user when none is given, as with ssh. */
  localUser?: string;
  /** This machine's name, for %l and %L in ssh_config. */
  localHost?: string;
  /** The local user id, for %i in ssh_config and its owner check; undefined where there is none (Windows). */
  localUid?: number;
  /**
   * Host patterns (../policy.ts) every hop of a connection must match, checked
   * before any network traffic; undefined: no restriction.
   */
  allowedHosts?: string[];
  /** Per-host policies, first value obtained wins (../policy.ts `policyFor`). */
  hostPolicies: HostPolicyRule[];
  /** The audit log (./audit/mod.ts), when one is kept. */
  audit?: { path: string; maxBytes: number; keep: number; chain: boolean; fsync: boolean };
}

/** A host pattern, checked when the file is read. */
const hostPattern = z.string().min(1).max(1024).check((ctx) => {
  const problem = patternProblem(ctx.value);
  if (problem !== null) ctx.issues.push({ code: "custom", message: problem, input: ctx.value });
});

/** The JSON configuration file's shape (snake_case, every key optional). */
export const ConfigFileSchema = z.strictObject({
  known_hosts: z.array(z.string().min(1)).optional()
    .describe("Extra known_hosts files, read after ~/.ssh/known_hosts"),
  host_key_policy: z.enum(["strict", "accept-new"]).optional(),
  ssh_config_files: z.array(z.string().min(1)).optional()
    .describe("ssh_config files to read instead of ~/.ssh/config, in order; [] reads none"),
  local_roots: z.array(z.string().min(1)).optional()
    .describe(
      "Local directories uploads may read and downloads may write. When set, the MCP client's roots are ignored; " +
        "without it, the client's roots are used, or else the working directory unless it is / or the home " +
        "directory (or above it). [] turns local files off whatever the client sends, and with host_key_policy " +
        "strict the server then gives up its write permission",
    ),
  log_level: z.enum(LOG_LEVELS).optional(),
  toolsets: z.array(z.enum(TOOLSETS)).optional().describe("Toolsets to offer (connect is always on); default all"),
  read_only: z.boolean().optional().describe("Offer only tools that change nothing"),
  max_sessions: z.int().min(1).max(1000).optional(),
  max_channels_per_session: z.int().min(1).max(100).optional(),
  max_output_bytes: z.int().min(1024).max(64 * 1024 * 1024).optional(),
  output_retention_bytes: z.int().min(64 * 1024).max(4 * 1024 * 1024 * 1024).optional()
    .describe("Bytes of cut command output kept for ssh_output_read, oldest dropped first (default 64 MiB)"),
  job_retention_hours: z.number().positive().max(24 * 365).optional()
    .describe("Hours finished detached jobs' files stay on the remote host (default 72)"),
  detached_jobs: z.boolean().optional()
    .describe("Jobs run detached on the remote host and survive disconnects and restarts (default true)"),
  shell_buffer_bytes: z.int().min(4096).max(64 * 1024 * 1024).optional(),
  default_timeout: z.number().positive().max(86400).optional(),
  max_timeout: z.number().positive().max(7 * 86400).optional(),
  connect_timeout: z.number().positive().max(600).optional(),
  keepalive_interval: z.number().min(0).max(3600).optional(),
  keepalive_count_max: z.int().min(1).max(100).optional(),
  forward_bind_addresses: z.array(z.string().min(1).max(255)).optional()
    .describe("Addresses port-forward listeners may bind besides loopback (e.g. 0.0.0.0); default none"),
  max_forwards_per_session: z.int().min(1).max(1000).optional(),
  http_allowed_origins: z.array(z.string().min(1).max(512)).optional()
    .describe("Origins browsers may send to the HTTP transports, e.g. http://localhost:6274; default none"),
  http_max_body_bytes: z.int().min(1024).max(256 * 1024 * 1024).optional(),
  http_idle_timeout: z.number().positive().max(7 * 86400).optional(),
  http_max_sessions: z.int().min(1).max(10_000).optional()
    .describe("HTTP sessions open at once (default 32); an initialize beyond them gets 503"),
  http_init_timeout: z.number().positive().max(60).optional()
    .describe("Seconds a new HTTP session may take to complete initialize before it is dropped (default 60)"),
  http_tls_cert: z.string().min(1).optional().describe("PEM certificate (chain) to serve HTTPS with"),
  http_tls_key: z.string().min(1).optional().describe("PEM private key of http_tls_cert"),
  allowed_hosts: z.array(hostPattern).max(10_000).optional()
    .describe("Hosts (every jump hop too) connections may go to: host, host:port, globs, address blocks, !exclusions"),
  host_policies: z.array(z.strictObject({
    // One pattern or a list; a list either way inside, so a bad pattern is named, not "invalid union".
    match: z.preprocess((v) => typeof v === "string" ? [v] : v, z.array(hostPattern).min(1).max(10_000)),
    read_only: z.boolean().optional().describe("Only tools that change nothing on the host"),
    allow_forwards: z.boolean().optional(),
    allow_sudo: z.boolean().optional(),
    max_timeout: z.number().positive().max(7 * 86400).optional(),
    approval: z.enum(["none", "destructive", "all"]).optional(),
  })).max(10_000).optional().describe(
    "Per-host policy; for each field the first rule that covers the host and sets it wins",
  ),
  audit_log: z.string().min(1).optional().describe("JSON-lines record of every tool call (hash-chained)"),
  audit_log_max_bytes: z.int().min(64 * 1024).max(1024 ** 4).optional().describe(
    "Rotate above this size (default 10 MiB)",
  ),
  audit_log_keep: z.int().min(1).max(1000).optional().describe("Rotated files kept (default 100)"),
  audit_hash_chain: z.boolean().optional().describe("Each line carries the hash of the one before (default true)"),
  audit_log_fsync: z.boolean().optional().describe(
    "Flush each line to the disk (fdatasync) before the result (default false)",
  ),
});

/** The configuration file's parsed contents. */
export type ConfigFile = z.infer<typeof ConfigFileSchema>;

/** Parses a configuration file's text; throws a TypeError naming the bad key. */
export function parseConfigFile(text: string, path: string): ConfigFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new TypeError(`Cannot parse config file ${path}: not valid JSON`, { cause: error });
  }
  const result = ConfigFileSchema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new TypeError(`Invalid config file ${path}: ${issue.path.join(".") || "(root)"}: ${issue.message}`);
  }
  return result.data;
}

/**
 * Reads and parses the configuration file. Only a regular file of at most
 * 1 MiB is read: a FIFO or device named by mistake fails at once instead of
 * hanging start-up or reading without end (./read_bounded.ts).
 */
export async function readConfigFile(path: string): Promise<ConfigFile> {
  let bytes: Uint8Array;
  try {
    bytes = await readBoundedFile(path, { maxBytes: ONE_MIB });
  } catch (error) {
    if (!(error instanceof BoundedReadError)) throw error;
    throw new TypeError(`Cannot read config file ${path}: ${error.message}`, { cause: error });
  }
  return parseConfigFile(new TextDecoder().decode(bytes), path);
}

/** Environment values the configuration depends on. */
export interface ConfigEnv {
  home?: string;
  sshAuthSock?: string;
  localUser?: string;
  localHost?: string;
  localUid?: number;
}

/** Combines defaults, the config file and flags (flags win). Pure. */
export function resolveConfig(flags: CliFlags, file: ConfigFile, env: ConfigEnv): Config {
  const userFile = env.home ? `${env.home}/.ssh/known_hosts` : undefined;
  const extra = [...(file.known_hosts ?? []), ...flags.knownHosts];
  const knownHostsFiles = [...(userFile ? [userFile] : []), ...extra];
  // New keys go where the user pointed us last, like OpenSSH's first UserKnownHostsFile.
  const knownHostsWriteFile = extra.at(-1) ?? userFile;
  if (knownHostsWriteFile === undefined) {
    throw new TypeError("No known_hosts file: HOME is not set and no --known-hosts was given");
  }
  // Flags replace the file's pair as a whole: mixing a flag's certificate
  // with the file's key would pair files nobody paired.
  const flagsTls = flags.tlsCert !== undefined || flags.tlsKey !== undefined;
  const tlsCert = flagsTls ? flags.tlsCert : file.http_tls_cert;
  const tlsKey = flagsTls ? flags.tlsKey : file.http_tls_key;
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    throw new TypeError("http_tls_cert and http_tls_key go together: give both PEM files, or neither");
  }
  const defaultTimeout = file.default_timeout ?? 60;
  const maxTimeout = file.max_timeout ?? 86400;
  if (defaultTimeout > maxTimeout) {
    throw new TypeError(`default_timeout (${defaultTimeout}) exceeds max_timeout (${maxTimeout})`);
  }
  // Like `ssh -F`: a list given replaces ~/.ssh/config, flags replace the file's; "none" reads none.
  const sshConfigs = flags.sshConfigs.length > 0 ? flags.sshConfigs : file.ssh_config_files;
  const userSshConfig = env.home ? [`${env.home}/.ssh/config`] : [];
  const sshConfigFiles = (sshConfigs ?? userSshConfig).filter((f) => f !== "none");
  const auditLog = flags.auditLog ?? file.audit_log;
  for (const pattern of flags.allowHosts) {
    const problem = patternProblem(pattern);
    if (problem !== null) throw new TypeError(`--allow-host ${pattern}: ${problem}`);
  }
  if (sshConfigs?.includes("none") && sshConfigs.length > 1) {
    throw new TypeError("ssh_config: none reads no file and cannot be combined with files");
  }
  return {
    knownHostsFiles,
    knownHostsWriteFile,
    sshConfigFiles,
    hostKeyPolicy: flags.hostKeyPolicy ?? file.host_key_policy ?? "strict",
    logLevel: flags.logLevel ?? file.log_level ?? "warn",
    maxSessions: file.max_sessions ?? 20,
    maxChannelsPerSession: file.max_channels_per_session ?? 10,
    maxOutputBytes: file.max_output_bytes ?? 100_000,
    outputRetentionBytes: file.output_retention_bytes ?? 64 * 1024 * 1024,
    jobRetentionHours: file.job_retention_hours ?? 72,
    detachedJobs: file.detached_jobs ?? true,
    shellBufferBytes: file.shell_buffer_bytes ?? 500_000,
    defaultTimeoutSeconds: defaultTimeout,
    maxTimeoutSeconds: maxTimeout,
    connectTimeoutSeconds: file.connect_timeout ?? 20,
    keepaliveIntervalSeconds: file.keepalive_interval ?? 15,
    keepaliveCountMax: file.keepalive_count_max ?? 3,
    localRoots: [...(file.local_roots ?? []), ...flags.allowLocalDirs],
    localFilesOff: file.local_roots !== undefined && file.local_roots.length === 0 && flags.allowLocalDirs.length === 0,
    workingDir: { refused: "the working directory was not checked" },
    clientRoots: flags.transport === "stdio",
    forwardBindAddresses: file.forward_bind_addresses ?? [],
    maxForwardsPerSession: file.max_forwards_per_session ?? 16,
    httpAllowedOrigins: [...(file.http_allowed_origins ?? []), ...flags.allowOrigins],
    httpMaxBodyBytes: file.http_max_body_bytes ?? 32 * 1024 * 1024,
    httpIdleTimeoutSeconds: file.http_idle_timeout ?? 1800,
    httpMaxSessions: file.http_max_sessions ?? 32,
    httpInitTimeoutSeconds: file.http_init_timeout ?? 60,
    httpTls: tlsCert !== undefined && tlsKey !== undefined ? { certFile: tlsCert, keyFile: tlsKey } : undefined,
    toolsets: flags.toolsets ?? file.toolsets,
    readOnly: flags.readOnly || (file.read_only ?? false),
    agentSocket: env.sshAuthSock || undefined,
    home: env.home || undefined,
    localUser: env.localUser || undefined,
    localHost: env.localHost || undefined,
    localUid: env.localUid ?? undefined,
    allowedHosts: file.allowed_hosts === undefined && flags.allowHosts.length === 0
      ? undefined
      : [...(file.allowed_hosts ?? []), ...flags.allowHosts],
    hostPolicies: (file.host_policies ?? []).map((rule) => ({
      match: rule.match,
      readOnly: rule.read_only,
      allowForwards: rule.allow_forwards,
      allowSudo: rule.allow_sudo,
      maxTimeoutSeconds: rule.max_timeout,
      approval: rule.approval,
    })),
    audit: auditLog === undefined ? undefined : {
      path: auditLog,
      maxBytes: file.audit_log_max_bytes ?? 10 * 1024 * 1024,
      keep: file.audit_log_keep ?? 100,
      chain: file.audit_hash_chain ?? true,
      fsync: file.audit_log_fsync ?? false,
    },
  };
}
