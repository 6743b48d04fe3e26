/**
 * The shapes of a connect: its options (a jump chain is options within
 * options), the facts of an established connection, and what connect hands
 * over. Apart from ./connect.ts so that the jump host helpers (./jump.ts)
 * and connect can both name them without importing each other.
 *
 * @module
 */

import type { Logger } from "../log.ts";
import type { Client, ClientChannel, DenoSocket } from "../ssh2/mod.ts";
import type { SshMcpError } from "../errors.ts";
import type { KnownHostsConfig } from "./host_key_check.ts";
import type { ConnectPrompts } from "./prompts.ts";

/** Options of `connect()` (./connect.ts) (and `SshConnection.open`). */
export interface ConnectOptions {
  /** Host name or address (already validated). */
  host: string;
  /** TCP port. */
  port: number;
  /** Remote user. */
  username: string;
  /** Password, if password authentication is wanted. */
  password?: string;
  /** Private key file, if key authentication is wanted. */
  privateKeyPath?: string;
  /** Passphrase for an encrypted private key. */
  passphrase?: string;
  /** ssh-agent socket, used when neither password nor key is given. */
  agentSocket?: string;
  /** Host key verification settings. */
  knownHosts: KnownHostsConfig;
  /**
   * Time allowed for TCP, handshake and authentication together.
   * @default 20000
   */
  connectTimeoutMs?: number;
  /**
   * Interval of SSH keepalive requests; 0 turns them off.
   * @default 15000
   */
  keepaliveIntervalMs?: number;
  /**
   * Unanswered keepalives before the connection is declared dead.
   * @default 3
   */
  keepaliveCountMax?: number;
  /**
   * Channels open at once; more wait in a queue. Keep at or below the
   * server's MaxSessions (OpenSSH default 10).
   * @default 10
   */
  maxChannels?: number;
  /** Logger for connection events. */
  logger: Logger;
  /** Cancels the connect at any step (MCP cancellation); the connect timeout applies as well. */
  signal?: AbortSignal;
  /**
   * The jump host to reach this host through (OpenSSH's ProxyJump), with its
   * own credentials, known_hosts and logger; it may have a `jump` of its own
   * (`A -> B -> target` is `target.jump = B`, `B.jump = A`). Its host key is
   * checked before anything is sent to it, as for a direct connection. Its
   * `connectTimeoutMs` and `signal` are not used: this host's deadline and
   * cancel cover the whole chain.
   * @default undefined (a direct TCP connection)
   */
  jump?: ConnectOptions;
  /**
   * Asks the human about an unknown host key (strict) and keyboard-interactive prompts; the connect
   * deadline stops while a question is open. Absent: nothing is asked.
   */
  ask?: ConnectPrompts;
  /** `SHA256:…` the user gave: any other host key is HOST_KEY_MISMATCH; never trusts an unknown key alone. */
  expectedFingerprint?: string;
  /**
   * The name this host's key is looked up and recorded under in known_hosts instead of host and port
   * (ssh_config HostKeyAlias: as OpenSSH, the alias alone, without a port).
   */
  hostKeyAlias?: string;
  /** Key files tried after `privateKeyPath`, in order (ssh_config IdentityFile); missing ones are skipped. */
  identityFiles?: string[];
  /** True: no ssh-agent (its keys cannot be matched to identity files here). */
  identitiesOnly?: boolean;
  /** Order of "publickey", "password", "keyboard-interactive"; a method not listed is not tried. */
  preferredAuthentications?: string[];
  /** False: the password is never sent. */
  passwordAuthentication?: boolean;
  /** False: keyboard-interactive prompts are never answered. */
  kbdInteractiveAuthentication?: boolean;
}

/** Facts about an established connection. */
export interface ConnectionInfo {
  host: string;
  port: number;
  username: string;
  hostKeyType: string;
  hostKeyFingerprint: string;
  serverVersion: string;
  /** True when accept-new recorded this host key during connect. */
  hostKeyAdded: boolean;
  authMethod: "password" | "publickey" | "agent" | "keyboard-interactive";
  /** The jump hosts the connection goes through, outermost first; [] for a direct connection. */
  jumps: JumpInfo[];
}

/** What a connection's SSH runs over: a TCP socket, or a direct-tcpip channel on a jump host. */
export type Transport = DenoSocket | ClientChannel;

/** An authenticated ssh2 client, ready for channels. */
export interface Connected {
  client: Client;
  /** What the client runs over. */
  socket: Transport;
  info: ConnectionInfo;
  /** Why the host was refused during a later key re-exchange, if it was. */
  rekeyRefused: () => SshMcpError | null;
  /**
   * The jump hosts' connections, outermost first ([] for a direct one). They
   * belong to whoever holds this: close them after the client (./jump.ts `JumpChain`).
   */
  hops: Connected[];
}

/** What {@linkcode ConnectionInfo} says about each jump host. */
export interface JumpInfo {
  host: string;
  port: number;
  username: string;
  hostKeyType: string;
  hostKeyFingerprint: string;
  /** True when accept-new recorded this hop's host key during connect. */
  hostKeyAdded: boolean;
}
