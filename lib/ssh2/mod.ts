/**
 * The only room that imports ssh2: client creation, the socket adapter, the
 * repairs of ssh2 1.17 (chacha20 leak, rekey queue, fast cipher and decipher), the
 * version guard, and the few reads of ssh2's private fields the SSH layer
 * needs (server version, signals), and an ssh-agent that offers only chosen
 * keys. Everything outside lib/ssh2/ takes ssh2
 * and its types from here.
 *
 * ssh2 itself loads at the first connection, not at start-up: ssh2 and the
 * repairs (./client.ts) come in with {@linkcode loadSsh2}, which the
 * connect path awaits before it reads a key, asks the agent or opens a
 * client. The functions here that need ssh2's code throw until then; the
 * two that only recognise what that code made ({@linkcode isIntegrityFailure},
 * {@linkcode sftpFirstBytes}) answer "no" before, since nothing can have
 * made it yet. The repairs are still decided, by {@linkcode preparePatches},
 * before any client exists, and SFTP's by {@linkcode prepareSftpPatches}
 * before the first SFTP channel opens.
 *
 * @module
 */

// @ts-types="@types/ssh2"
import type { Client, ClientChannel, ConnectConfig, OpenSSHAgent, ParsedKey } from "ssh2";
import type { Logger } from "../log.ts";
import { remoteVersionOf, sendSignal } from "./internals.ts";
import type { PatchStatus, SftpPatchStatus } from "./patches.ts";
import type { ConnectClientOptions, SelectedAgentOptions } from "./client.ts";
import type { IntegrityFailure } from "./chacha_decipher.ts";

// @ts-types="@types/ssh2"
export type {
  AnyAuthMethod,
  AuthenticationType,
  Client,
  ClientChannel,
  ConnectConfig,
  FileEntryWithStats,
  OpenSSHAgent,
  ParsedKey,
  SFTPWrapper,
  Stats,
} from "ssh2";
export { DenoSocket, type SocketError, toSocketError } from "./socket.ts";
export type { PatchStatus, SftpPatchStatus } from "./patches.ts";
export type { ConnectClientOptions, SelectedAgentOptions } from "./client.ts";
export { installedSsh2Version, PINNED_SSH2_VERSION, pretendSsh2Version } from "./guard.ts";

type Ssh2Code = typeof import("./client.ts");

let code: Ssh2Code | undefined;
let loading: Promise<void> | undefined;

/**
 * Loads ssh2 and the repairs (./client.ts), the first time only; later calls
 * resolve at once. The chacha20 leak fix is evaluated before ssh2's modules
 * (./ssh2.ts imports it first). Await it before any other function here
 * that says it needs ssh2.
 */
export function loadSsh2(): Promise<void> {
  // A string literal: `deno compile`, `deno check` and the -P graph include the module.
  return loading ??= import("./client.ts").then((loaded) => {
    code = loaded;
  }, (error) => {
    loading = undefined; // a later connect may try again
    throw error;
  });
}

function ssh2Code(what: string): Ssh2Code {
  if (code === undefined) throw new Error(`${what} needs ssh2, which is not loaded yet: await loadSsh2() first`);
  return code;
}

/**
 * Loads ssh2, then checks its version and runs the self-test of every repair
 * of a connection, the first time only; later calls get the same answer.
 * Logs at most one warning, naming each repair left off and why. Never
 * rejects once ssh2 is loaded.
 */
export async function preparePatches(logger: Logger): Promise<PatchStatus> {
  await loadSsh2();
  return ssh2Code("preparePatches").preparePatches(logger);
}

/**
 * The same for the repairs of ssh2's SFTP channel (./patches.ts), which only a
 * process that opens SFTP pays for: await it before the first SFTP channel opens.
 */
export async function prepareSftpPatches(logger: Logger): Promise<SftpPatchStatus> {
  await loadSsh2();
  return ssh2Code("prepareSftpPatches").prepareSftpPatches(logger);
}

/** A new, unconnected ssh2 client. Needs ssh2 loaded. */
export function createClient(): Client {
  return ssh2Code("createClient").createClient();
}

/**
 * Starts the SSH handshake of `client` over `options.socket` and installs
 * the repairs that are on. Attach the client's "ready", "error" and "close"
 * listeners before: ssh2 may emit them as soon as data arrives.
 */
export function connectClient(client: Client, config: ConnectConfig, options: ConnectClientOptions): void {
  ssh2Code("connectClient").connectClient(client, config, options);
}

/** ssh2's key parser: one key, an array of keys, or the parse error. Needs ssh2 loaded. */
export function parseKey(data: Uint8Array, passphrase?: string): ParsedKey | ParsedKey[] | Error {
  return ssh2Code("parseKey").parseKey(data, passphrase);
}

/**
 * An ssh-agent at `socket` whose identities are only the keys `options.pick` chooses, for ssh2's `agent`
 * authentication (see ./client.ts). Needs ssh2 loaded.
 *
 * @param socket The agent's unix socket.
 * @param options The choice of keys, and the signal that ends the agent's connections.
 * @returns An agent for ssh2's authHandler, or for listing the agent's keys (`getIdentities`).
 */
export function selectedAgent(socket: string, options: SelectedAgentOptions): OpenSSHAgent {
  return ssh2Code("selectedAgent").selectedAgent(socket, options);
}

/**
 * Whether `error` is a failed MAC check of the fast decipher (a tampered or
 * corrupted packet). False before ssh2 is loaded: no decipher exists yet.
 */
export function isIntegrityFailure(error: unknown): error is IntegrityFailure {
  return code !== undefined && code.isIntegrityFailure(error);
}

/**
 * The first bytes a server sent on an SFTP channel that the SFTP repair
 * failed because they were not a VERSION packet, or null for any other
 * error (always null before ssh2 is loaded: no channel exists yet).
 */
export function sftpFirstBytes(err: unknown): Uint8Array | null {
  return code === undefined ? null : code.sftpFirstBytes(err);
}

/** The server's software version from its banner (e.g. `OpenSSH_9.2p1 Debian-2`), or "unknown". */
export function serverVersion(client: Client): string {
  return remoteVersionOf(client);
}

/**
 * Sends a signal request (e.g. `KILL`) on a session channel, also after its
 * stdin EOF: RFC 4254 allows requests then, but ssh2's Channel.signal()
 * sends nothing once EOF was sent, so a timed-out command's shell was never
 * signalled. Does nothing on a closed channel.
 */
export function signalChannel(channel: ClientChannel, name: string): void {
  sendSignal(channel, name);
}
