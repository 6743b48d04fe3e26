/**
 * Everything of lib/ssh2/ that needs ssh2's own code: client creation, the
 * repairs and their self-tests, the key parser and the selected agent.
 * Loaded by ./mod.ts's {@linkcode loadSsh2} at the first connection, not at
 * start-up: ssh2 is ~70 modules of CommonJS that a server answering
 * `initialize` and `tools/list` does not need. Only ./mod.ts imports it.
 *
 * @module
 */

import ssh2 from "./ssh2.ts"; // first: the chacha20 leak fix wraps node:crypto before ssh2 loads
// @ts-types="@types/ssh2"
import type { Client, ClientChannel, ConnectConfig, OpenSSHAgent, ParsedKey } from "ssh2";
import { Buffer } from "node:buffer";
import type { Logger } from "../log.ts";
import { ownsNoInput, useFastDecipher } from "./chacha_decipher.ts";
import { useFastCipher } from "./chacha_cipher.ts";
import { decipherHolderOf } from "./internals.ts";
import type { PatchStatus } from "./patches.ts";
import { rekeyQueueFixed } from "./rekey_fix.ts";
import { DenoSocket } from "./socket.ts";

export { isIntegrityFailure } from "./chacha_decipher.ts";
export { preparePatches, prepareSftpPatches } from "./patches.ts";
export { sftpFirstBytes } from "./sftp_fix.ts";

/** A new, unconnected ssh2 client (the leak fix is loaded before ssh2 is). */
export function createClient(): Client {
  return new ssh2.Client();
}

/** What {@linkcode connectClient} needs besides the ssh2 settings. */
export interface ConnectClientOptions {
  /**
   * What ssh2 runs over: a connected TCP socket, or a channel of another
   * connection (a direct-tcpip channel on a jump host). The repairs apply to
   * both; lending the read buffer is the TCP socket's alone.
   */
  socket: DenoSocket | ClientChannel;
  /** Which repairs are on in this process, from {@linkcode preparePatches}. */
  patches: PatchStatus;
  /** Where a repair that does not fit this connection says so (once per process). */
  logger: Logger;
}

const warned = new Set<string>();

function warnOnce(logger: Logger, what: string): void {
  if (warned.has(what)) return;
  warned.add(what);
  logger.warn(`ssh2 internals differ from 1.17.0: ${what} not applied, using ssh2's own code`);
}

/**
 * Starts the SSH handshake of `client` over `options.socket` and installs
 * the repairs that are on. Attach the client's "ready", "error" and "close"
 * listeners before: ssh2 may emit them as soon as data arrives.
 */
export function connectClient(client: Client, config: ConnectConfig, options: ConnectClientOptions): void {
  const { socket, patches, logger } = options;
  if (!(socket instanceof DenoSocket)) deferWrites(socket);
  // ssh2 uses only the net.Socket surface DenoSocket provides, and takes any Duplex (a channel) as it is.
  client.connect({ ...config, sock: socket as unknown as ConnectConfig["sock"] });
  if (patches.rekeyFix && !rekeyQueueFixed(client)) warnOnce(logger, "the rekey queue fix");
  if (patches.fastCipher && !useFastCipher(client)) warnOnce(logger, "the fast chacha20-poly1305 cipher");
  if (!patches.fastDecipher) return;
  if (!useFastDecipher(client)) return warnOnce(logger, "the fast chacha20-poly1305 decipher");
  // A channel's chunks come from the outer connection's decipher; only our socket has a buffer to lend.
  if (!patches.socketLending || !(socket instanceof DenoSocket)) return;
  // Lent only while ssh2's packet parser is the one reader and its decipher keeps nothing.
  const holder = decipherHolderOf(client);
  socket.keepsNoChunk = () => socket.listenerCount("data") === 1 && ownsNoInput(holder?._decipher);
}

/**
 * Makes a channel that carries another SSH connection (ProxyJump) take that
 * connection's writes one turn later, gathered into one write.
 *
 * ssh2's chacha20-poly1305 cipher keeps its nonce in a module-wide buffer
 * and writes a packet in three pieces (length, payload, MAC), computing the
 * next piece after each write returns. Written straight into a channel, the
 * outer connection encrypts that piece at once, with the same module-wide
 * buffer: the inner packet's payload was then encrypted under the outer
 * connection's sequence number, and sshd read garbage ("incomplete
 * message"). Deferred, each encrypt runs to its end first; gathered, one
 * inner packet is one channel message instead of three.
 */
function deferWrites(channel: ClientChannel): void {
  const write = channel.write.bind(channel);
  const end = channel.end.bind(channel);
  let queued: Buffer[] = [];
  const flush = () => {
    if (queued.length === 0) return;
    const chunks = queued;
    queued = [];
    write(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
  };
  channel.write = ((chunk: Buffer) => {
    if (queued.push(chunk) === 1) queueMicrotask(flush);
    return true; // ssh2 does not wait for drain on its socket; the channel's own window still applies
  }) as ClientChannel["write"];
  // What ssh2 writes last (its disconnect) goes out before the end.
  channel.end = ((...args: Parameters<ClientChannel["end"]>) => {
    flush();
    return end(...args);
  }) as ClientChannel["end"];
}

/** ssh2's key parser: one key, an array of keys, or the parse error. */
export function parseKey(data: Uint8Array, passphrase?: string): ParsedKey | ParsedKey[] | Error {
  return ssh2.utils.parseKey(Buffer.from(data), passphrase);
}

/** What {@linkcode selectedAgent} offers of the agent's keys. */
export interface SelectedAgentOptions {
  /**
   * Chooses and orders the keys to offer from the agent's list (given in the agent's order); may choose none.
   * Called each time ssh2 asks the agent for its keys, so a key removed from the agent meanwhile is not offered.
   */
  pick: (keys: ParsedKey[]) => ParsedKey[];
  /** Destroys the agent connections still open (a pending list or signature fails). */
  signal?: AbortSignal;
}

/**
 * An ssh-agent at `socket` whose identities are only the keys `options.pick` chooses, for ssh2's `agent`
 * authentication (`{ type: "agent", username, agent }`): ssh2 offers every key an agent lists, in its order,
 * while ssh offers the agent's copies of the identity files first and, with IdentitiesOnly, no others.
 * Signing goes to the agent as it is.
 *
 * @param socket The agent's unix socket.
 * @param options The choice of keys, and the signal that ends the agent's connections.
 * @returns An agent for ssh2's authHandler, or for listing the agent's keys (`getIdentities`).
 */
export function selectedAgent(socket: string, options: SelectedAgentOptions): OpenSSHAgent {
  return new SelectedAgent(socket, options);
}

class SelectedAgent extends ssh2.OpenSSHAgent {
  #options: SelectedAgentOptions;

  constructor(socket: string, options: SelectedAgentOptions) {
    super(socket);
    this.#options = options;
  }

  override getStream(cb: Parameters<OpenSSHAgent["getStream"]>[0]): void {
    const { signal } = this.#options;
    if (signal?.aborted) return cb(new Error("Agent request cancelled"));
    super.getStream((err, stream) => {
      if (err !== undefined && err !== null || stream === undefined || signal === undefined) return cb(err, stream);
      // A hung agent (waiting on its user to approve a signature) must not outlive the connect that asked.
      const onAbort = () => stream.destroy();
      signal.addEventListener("abort", onAbort, { once: true });
      stream.once("close", () => signal.removeEventListener("abort", onAbort));
      cb(err, stream);
    });
  }

  override getIdentities(cb: Parameters<OpenSSHAgent["getIdentities"]>[0]): void {
    super.getIdentities((err, keys) => {
      if (err !== undefined && err !== null) return cb(err);
      let picked: ParsedKey[];
      try {
        // OpenSSHAgent lists parsed keys only; the type also allows `{ pubKey }` entries.
        picked = this.#options.pick((keys ?? []).filter((k): k is ParsedKey => !("pubKey" in k)));
      } catch (error) {
        return cb(error instanceof Error ? error : new Error(String(error)));
      }
      cb(undefined, picked);
    });
  }
}
