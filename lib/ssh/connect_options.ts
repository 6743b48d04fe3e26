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
  /**
   * Told each step of this host's connect as it happens (`mcp-remote-ssh doctor`, ../doctor/). Present, it
   * changes three things so that every step can be seen: authentication starts with `none` (the server
   * answers with the methods it accepts; OpenSSH does not count it against MaxAuthTries), the ssh-agent's
   * keys are offered one attempt each (the server sees the same requests), and a failure to prepare any
   * credential is reported and leaves `none` the only attempt instead of ending the connect before TCP.
   * @default undefined
   */
  observer?: ConnectObserver;
}

/** What {@linkcode ConnectObserver} is told, step by step, about one host's connect. It decides nothing. */
export interface ConnectObserver {
  /** The transport is up: TCP (`ms` to connect, name lookup included), or a channel through the hop before. */
  transport?(event: { ms: number; tunnel: boolean }): void;
  /** The software the server names in its identification line; null when none came before the connect ended. */
  serverVersion?(version: string | null): void;
  /** The algorithms the key exchange agreed on (told once the exchange completed). */
  handshake?(algorithms: AgreedAlgorithms): void;
  /** The host key the server presented, before it is checked. */
  hostKey?(key: Uint8Array): void;
  /** The check accepted that key; the exchange goes on (the server's signature is verified after this). */
  hostKeyAccepted?(): void;
  /** An identity file that cannot be used (a missing file is not told: ssh skips those silently). */
  keySkipped?(path: string, error: SshMcpError): void;
  /** No credential could be prepared; the connect goes on to learn the server's methods, then fails. */
  authUnprepared?(error: SshMcpError): void;
  /** The attempts prepared, in the order they will be offered (after `none`). */
  authPlan?(attempts: AuthAttemptName[]): void;
  /** One attempt and what became of it. */
  authAttempt?(report: AuthAttemptReport): void;
  /**
   * The host key was accepted for a look only (`knownHosts.readOnly`, a key accept-new would record): after
   * `none` the prepared credentials were withheld, and the connect fails with HOST_KEY_UNKNOWN.
   */
  authWithheld?(): void;
}

/** The algorithms of a completed key exchange, client to server (`mac` is "" for an AEAD cipher). */
export interface AgreedAlgorithms {
  kex: string;
  hostKey: string;
  cipher: string;
  mac: string;
  compression: string;
}

/** An authentication attempt as a person would name it: the method and, for a key, which key. */
export interface AuthAttemptName {
  method: "none" | "publickey" | "agent" | "password" | "keyboard-interactive";
  /** The key file (`path (in the ssh-agent)` for the agent's copy), or an agent key as `type SHA256:…`. */
  key?: string;
}

/** What became of one attempt. */
export interface AuthAttemptReport extends AuthAttemptName {
  /**
   * accepted: logged in; partial: accepted, another method is needed; refused: the server said no; skipped:
   * not sent, the server does not accept the method; unanswered: the connection ended before the answer.
   */
  result: "accepted" | "partial" | "refused" | "skipped" | "unanswered";
  /** The methods the server said can continue, with a refusal. */
  methodsLeft?: string[];
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
