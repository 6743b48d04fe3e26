/**
 * From what a caller names (an ssh_config alias or a host, with optional
 * port, user and credentials) to the options of one connect: ssh_config
 * applied with OpenSSH's first-match-wins, explicit arguments over it, the
 * server's configuration under both, and every ProxyJump hop resolved the
 * same way. Which config lines applied travels with the result, so a user
 * can see why a connect went where it went.
 *
 * The server's host-key policy is a floor: `StrictHostKeyChecking yes` or
 * `accept-new` may make one host stricter, `no`/`off` never make it weaker
 * (a warning says the line was not followed).
 *
 * @module
 */

import type { Config } from "./config.ts";
import { SshMcpError } from "./errors.ts";
import { hostProblem, userProblem } from "./validate.ts";
import type { Logger } from "./log.ts";
import type { ConnectOptions } from "./ssh/connection.ts";
import type { HostKeyPolicy } from "./ssh/host_key_check.ts";
import type { ConnectPrompts } from "./ssh/prompts.ts";
import { type JumpHop, type ResolvedHost, type SshConfig, SshConfigError } from "./ssh_config/mod.ts";

/** What a caller names; everything not given comes from ssh_config, then the configuration. */
export interface TargetRequest {
  /** An ssh_config alias, a host name or an address. */
  host: string;
  /** TCP port; overrides ssh_config's Port. */
  port?: number;
  /** Remote user; overrides ssh_config's User. */
  username?: string;
  /** Password for the target (never for jump hosts). */
  password?: string;
  /** Private key file (`~/` is the local home), tried before ssh_config's IdentityFiles. */
  privateKeyPath?: string;
  /** Passphrase of that key. */
  passphrase?: string;
  /** Overrides ssh_config's ConnectTimeout and the configured connect timeout. */
  connectTimeoutSeconds?: number;
  /** Cancels the connect at any step. */
  signal?: AbortSignal;
  /** Asks the human (MCP elicitation) about unknown host keys and keyboard-interactive prompts, for every hop. */
  ask?: ConnectPrompts;
  /** `SHA256:…` the target's host key must have (checked in addition to known_hosts). */
  expectedFingerprint?: string;
}

/** One config line that decided a setting, as `file:line keyword value`. */
export type AppliedLine = string;

/** The options of one connect, and why they are what they are. */
export interface ResolvedTarget {
  options: ConnectOptions;
  /** The alias as given, when ssh_config had anything to say about it. */
  alias: string | null;
  /** Lines of ssh_config that applied to the target, in the order they were read. */
  configLines: AppliedLine[];
  /** Lines that applied to the jump hosts, each prefixed with its hop. */
  jumpConfigLines: AppliedLine[];
  /** Lines read but not followed (recognised keywords we do not act on, a weaker host-key setting). */
  warnings: string[];
}

/**
 * Recognised keywords this server does not act on whose silence a user could mistake for compliance:
 * algorithm choices, certificates, forwarding of agent and X11. The connect result says they were not followed.
 */
const SAID_WHEN_IGNORED: ReadonlySet<string> = new Set([
  "ciphers",
  "macs",
  "kexalgorithms",
  "hostkeyalgorithms",
  "pubkeyacceptedalgorithms",
  "certificatefile",
  "forwardagent",
  "forwardx11",
  "verifyhostkeydns",
  "checkhostip",
]);

/** Hops allowed in one chain, own ProxyJumps of the first hop included: past it is a loop. */
const MAX_HOPS = 8;

/** What {@linkcode resolveTarget} needs besides the request. */
export interface ResolveContext {
  config: Config;
  /** ssh_config as read for this connect, or null when reading it is turned off. */
  sshConfig: SshConfig | null;
  logger: Logger;
}

/**
 * Resolves `request` into connect options: ssh_config for the target and
 * each jump hop, explicit arguments first. Throws SSH_CONFIG_REFUSED for a
 * line that would run a program and SSH_CONFIG_INVALID for an unusable one,
 * both naming file and line.
 */
export function resolveTarget(request: TargetRequest, context: ResolveContext): ResolvedTarget {
  const { config } = context;
  const warnings: string[] = [];
  const resolved = lookUp(context.sshConfig, request.host, request.username);
  const username = request.username ?? checkedUser(resolved?.user, resolved) ?? config.localUser;
  if (username === undefined) {
    throw new SshMcpError("INVALID_ARGUMENT", `No user for ${request.host}: none given and the local user is unknown`, {
      hint: "Pass username, or set User for this host in ~/.ssh/config",
    });
  }
  const timeoutSeconds = request.connectTimeoutSeconds ?? resolved?.connectTimeoutSeconds ??
    config.connectTimeoutSeconds;
  const options: ConnectOptions = {
    ...hostOptions(resolved, config, warnings, context.logger),
    host: checkedHostName(resolved) ?? request.host,
    port: request.port ?? resolved?.port ?? 22,
    username,
    password: request.password,
    privateKeyPath: request.privateKeyPath === undefined ? undefined : expandHome(request.privateKeyPath, config.home),
    passphrase: request.passphrase,
    connectTimeoutMs: timeoutSeconds * 1000,
    signal: request.signal,
    ask: request.ask,
    expectedFingerprint: request.expectedFingerprint,
  };
  // OpenSSH's default keys, when nothing names one (missing files are skipped when keys load).
  if (options.identityFiles!.length === 0 && request.privateKeyPath === undefined && request.password === undefined) {
    options.identityFiles = defaultIdentityFiles(config.home);
  }
  for (const line of resolved?.ignored ?? []) {
    if (!SAID_WHEN_IGNORED.has(line.keyword.toLowerCase())) continue;
    warnings.push(`${line.file}:${line.line} ${line.keyword} ${line.value}: not followed by this server`);
  }
  const jumpConfigLines: AppliedLine[] = [];
  const hops = resolved?.proxyJump ?? [];
  if (hops.length > 0) {
    options.jump = jumpChain(hops, { context, warnings, lines: jumpConfigLines, depth: 0 });
  }
  return {
    options,
    alias: resolved !== null && resolved.applied.length > 0 ? request.host : null,
    configLines: (resolved?.applied ?? []).map(describeLine),
    jumpConfigLines,
    warnings,
  };
}

/** The hops of a ProxyJump list as a chain: the last hop is the target's `jump`, each one's `jump` the one before. */
function jumpChain(
  hops: JumpHop[],
  state: { context: ResolveContext; warnings: string[]; lines: AppliedLine[]; depth: number },
): ConnectOptions {
  let previous: ConnectOptions | undefined;
  hops.forEach((hop, index) => {
    if (state.depth + index + 1 > MAX_HOPS) {
      throw new SshMcpError("SSH_CONFIG_INVALID", `ProxyJump chain longer than ${MAX_HOPS} hops (a loop?)`, {
        hint: "Check the ProxyJump lines of the hosts in the chain",
      });
    }
    const options = hopOptions(hop, state);
    // As with `ssh -J a,b`: only the first hop's own ProxyJump applies; later hops go through the one before.
    if (index === 0) {
      const own = lookUp(state.context.sshConfig, hop.host, hop.user)?.proxyJump ?? [];
      if (own.length > 0) {
        options.jump = jumpChain(own, { ...state, depth: state.depth + hops.length });
      }
    } else {
      options.jump = previous;
    }
    previous = options;
  });
  return previous!;
}

function hopOptions(
  hop: JumpHop,
  state: { context: ResolveContext; warnings: string[]; lines: AppliedLine[] },
): ConnectOptions {
  const { config, sshConfig, logger } = state.context;
  const resolved = lookUp(sshConfig, hop.host, hop.user);
  const username = checkedUser(hop.user ?? resolved?.user, resolved) ?? config.localUser;
  if (username === undefined) {
    throw new SshMcpError("INVALID_ARGUMENT", `No user for jump host ${hop.host}: the local user is unknown`, {
      hint: "Write the jump host as user@host in ProxyJump, or set User for it in ~/.ssh/config",
    });
  }
  const label = `${hop.host}`;
  for (const line of resolved?.applied ?? []) state.lines.push(`${label}: ${describeLine(line)}`);
  const options: ConnectOptions = {
    ...hostOptions(resolved, config, state.warnings, logger),
    host: checkedHostName(resolved) ?? hop.host,
    port: hop.port ?? resolved?.port ?? 22,
    username,
    connectTimeoutMs: (resolved?.connectTimeoutSeconds ?? config.connectTimeoutSeconds) * 1000,
  };
  // A hop authenticates as `ssh hop` would: with ssh's default keys when its config names none.
  if (options.identityFiles!.length === 0) options.identityFiles = defaultIdentityFiles(config.home);
  return options;
}

/** The settings of one host that do not depend on the caller's arguments. */
function hostOptions(
  resolved: ResolvedHost | null,
  config: Config,
  warnings: string[],
  logger: Logger,
): Omit<ConnectOptions, "host" | "port" | "username"> {
  const userFiles = knownHostsPaths(resolved, "UserKnownHostsFile");
  const globalFiles = knownHostsPaths(resolved, "GlobalKnownHostsFile");
  // ssh_config's files are read before ours; new keys go where the server's configuration sends them.
  const knownHostsFiles = [...new Set([...userFiles, ...config.knownHostsFiles, ...globalFiles])];
  const agent = agentOf(resolved, config);
  return {
    identityFiles: resolved?.identityFiles ?? [],
    identitiesOnly: resolved?.identitiesOnly,
    agentSocket: agent,
    preferredAuthentications: resolved?.preferredAuthentications,
    passwordAuthentication: resolved?.passwordAuthentication,
    kbdInteractiveAuthentication: resolved?.kbdInteractiveAuthentication,
    hostKeyAlias: resolved?.hostKeyAlias,
    knownHosts: {
      files: knownHostsFiles,
      writeFile: config.knownHostsWriteFile,
      policy: hostKeyPolicy(config.hostKeyPolicy, resolved, warnings),
    },
    keepaliveIntervalMs: (resolved?.serverAliveIntervalSeconds ?? config.keepaliveIntervalSeconds) * 1000,
    keepaliveCountMax: resolved?.serverAliveCountMax ?? config.keepaliveCountMax,
    maxChannels: config.maxChannelsPerSession,
    logger,
  };
}

/** A user name from ssh_config (User, or `user@` of a ProxyJump hop), held to the rules a `username` meets. */
function checkedUser(user: string | undefined, resolved: ResolvedHost | null): string | undefined {
  if (user === undefined) return undefined;
  const problem = userProblem(user);
  if (problem === null) return user;
  const line = resolved?.applied.find((a) => a.keyword.toLowerCase() === "user");
  throw new SshMcpError(
    "SSH_CONFIG_INVALID",
    `${line ? `${line.file}:${line.line}` : "ssh_config"}: user ${JSON.stringify(user)}: ${problem}`,
    { hint: "Fix the User line or the user@ of the ProxyJump hop" },
  );
}

/** The HostName to connect to, held to the rules a `host` argument meets (it comes from a file, not from us). */
function checkedHostName(resolved: ResolvedHost | null): string | undefined {
  if (resolved === null) return undefined;
  const problem = hostProblem(resolved.hostName);
  if (problem === null) return resolved.hostName;
  const line = resolved.applied.find((a) => a.keyword.toLowerCase() === "hostname");
  throw new SshMcpError(
    "SSH_CONFIG_INVALID",
    `${line ? `${line.file}:${line.line}` : "ssh_config"}: HostName ${JSON.stringify(resolved.hostName)}: ${problem}`,
    { hint: "Fix the HostName line (a name or an address, without user@ or :port)" },
  );
}

/**
 * The known_hosts files a host's ssh_config names: `none` names no file (ssh reads nothing for it), and a
 * relative path is refused: it would be read from wherever the server runs, a directory downloads may write.
 */
function knownHostsPaths(
  resolved: ResolvedHost | null,
  keyword: "UserKnownHostsFile" | "GlobalKnownHostsFile",
): string[] {
  const files = keyword === "UserKnownHostsFile" ? resolved?.userKnownHostsFiles : resolved?.globalKnownHostsFiles;
  const paths = (files ?? []).filter((f) => f !== "none");
  const relative = paths.find((f) => !f.startsWith("/"));
  if (relative !== undefined) {
    const line = resolved!.applied.find((a) => a.keyword.toLowerCase() === keyword.toLowerCase());
    throw new SshMcpError(
      "SSH_CONFIG_INVALID",
      `${line ? `${line.file}:${line.line}` : "ssh_config"}: ${keyword} ${JSON.stringify(relative)} is not an ` +
        "absolute path",
      { hint: `Write ${keyword} as an absolute path or under ~/` },
    );
  }
  return paths;
}

/** The keys ssh tries when no IdentityFile is configured, in its order. */
function defaultIdentityFiles(home: string | undefined): string[] {
  if (home === undefined) return [];
  return ["id_rsa", "id_ecdsa", "id_ecdsa_sk", "id_ed25519", "id_ed25519_sk", "id_xmss", "id_dsa"]
    .map((name) => `${home}/.ssh/${name}`);
}

/** The stricter of the server's policy and the host's StrictHostKeyChecking; never weaker than the server's. */
function hostKeyPolicy(policy: HostKeyPolicy, resolved: ResolvedHost | null, warnings: string[]): HostKeyPolicy {
  const setting = resolved?.strictHostKeyChecking;
  if (setting === undefined) return policy;
  if (setting === "yes" || setting === "ask") return "strict";
  if (setting === "no" || setting === "off") {
    const line = resolved!.applied.find((a) => a.keyword.toLowerCase() === "stricthostkeychecking");
    warnings.push(
      `StrictHostKeyChecking ${setting} (${line ? `${line.file}:${line.line}` : "ssh_config"}) not followed: ` +
        `host keys are checked with the server's policy, ${policy}`,
    );
  }
  return policy;
}

/** IdentityAgent: `none` turns the agent off, `SSH_AUTH_SOCK` is the server's, a path is that socket. */
function agentOf(resolved: ResolvedHost | null, config: Config): string | undefined {
  const agent = resolved?.identityAgent;
  if (agent === undefined || agent === "SSH_AUTH_SOCK") return config.agentSocket;
  if (agent === "none") return undefined;
  return agent;
}

function lookUp(sshConfig: SshConfig | null, host: string, user: string | undefined): ResolvedHost | null {
  if (sshConfig === null) return null;
  try {
    return sshConfig.resolve(host, { user });
  } catch (error) {
    if (error instanceof SshConfigError) throw configError(error);
    throw error;
  }
}

/** An ssh_config error as a coded tool error, naming file and line. */
export function configError(error: SshConfigError): SshMcpError {
  if (error.kind === "refused") {
    return new SshMcpError("SSH_CONFIG_REFUSED", error.message, {
      hint: "This server never runs local programs; use ProxyJump instead of ProxyCommand, or connect with " +
        "explicit arguments and --ssh-config none",
      cause: error,
    });
  }
  return new SshMcpError("SSH_CONFIG_INVALID", error.message, {
    hint: "Fix the named line of the ssh_config file (ssh -G shows how OpenSSH reads it)",
    cause: error,
  });
}

function describeLine(line: { keyword: string; value: string; file: string; line: number }): AppliedLine {
  return `${line.file}:${line.line} ${line.keyword} ${line.value}`;
}

/** `~` and `~/…` in a local path: the home of the user running the server. */
export function expandHome(path: string, home: string | undefined): string {
  if (path !== "~" && !path.startsWith("~/")) return path;
  return home ? home + path.slice(1) : path;
}

/** One host a user can reach by name, as the inventory lists it. */
export interface HostEntry {
  /** The concrete Host alias of ssh_config. */
  alias: string;
  host: string;
  port: number;
  username: string | null;
  /** Jump hosts, outermost first, as `user@host:port`. */
  jumps: string[];
  /** Whether known_hosts has a key for it (under HostKeyAlias when set); null when it could not be resolved. */
  hostKeyKnown: boolean | null;
  /** Why the alias cannot be used as it is (a refused or invalid line), if so. */
  error?: string;
}

/** Hosts listed at most; a bigger config is cut and says so. */
export const MAX_INVENTORY = 500;

/**
 * The concrete aliases of ssh_config with their resolved host, user, port
 * and jump chain, and whether their host key is known.
 *
 * @param knownHostTypes Key types known_hosts lists for a name and port (from the files the host uses).
 */
export async function inventory(
  context: ResolveContext,
  knownHostTypes: (files: string[], host: string, port: number) => Promise<string[]>,
): Promise<{ hosts: HostEntry[]; truncated: boolean }> {
  const aliases = context.sshConfig?.hosts() ?? [];
  const hosts: HostEntry[] = [];
  for (const alias of aliases.slice(0, MAX_INVENTORY)) {
    try {
      const { options } = resolveTarget({ host: alias }, context);
      const jumps: string[] = [];
      for (let hop = options.jump; hop !== undefined; hop = hop.jump) {
        jumps.unshift(`${hop.username}@${hop.host}:${hop.port}`);
      }
      const keyName = options.hostKeyAlias ?? options.host;
      const keyPort = options.hostKeyAlias === undefined ? options.port : 22;
      const types = await knownHostTypes(options.knownHosts.files, keyName, keyPort);
      hosts.push({
        alias,
        host: options.host,
        port: options.port,
        username: options.username,
        jumps,
        hostKeyKnown: types.length > 0,
      });
    } catch (error) {
      hosts.push({
        alias,
        host: alias,
        port: 22,
        username: null,
        jumps: [],
        hostKeyKnown: null,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }
  return { hosts, truncated: aliases.length > MAX_INVENTORY };
}
