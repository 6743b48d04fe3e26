/**
 * The one typed view of ssh2's private fields that this project relies on.
 *
 * ssh2 documents none of these; they are the fields of ssh2 1.17.0 (pinned
 * in deno.json, checked by ./guard.ts) that the repairs in this folder read
 * or replace. Every access to an ssh2 object beyond its public API goes
 * through a function here, so a new ssh2 version is checked against one
 * list. Each accessor returns `undefined` (or false) when the shape is not
 * what 1.17 has, and the repair that asked stays off.
 *
 * One field goes the other way: ssh2 reads `_readableState.ended` on the
 * socket it is given, which ./socket.ts provides.
 *
 * @module
 */

import type { Buffer } from "node:buffer";

/** What ssh2 hands each decipher's payload to; a number or false pauses the parser. */
export type OnPayload = (payload: Buffer) => unknown;

/** What every ssh2 decipher has (`lib/protocol/Protocol.js`, `kex.js`). */
export interface Ssh2Decipher {
  /** ssh2 swaps this during a key exchange. */
  _onPayload: OnPayload;
  decrypt(data: Uint8Array, p: number, dataLen: number): number | undefined;
}

/** ssh2's chacha20-poly1305 decipher (`ChaChaPolyDecipherNative` in `lib/protocol/crypto.js`). */
export interface Ssh2ChachaDecipher {
  inSeqno: number;
  _onPayload: OnPayload;
  /** The payload key (K_2 in PROTOCOL.chacha20poly1305). */
  _decKeyMain: Buffer;
  /** The length key (K_1). */
  _decKeyPktLen: Buffer;
  decrypt: unknown;
  free(): void;
}

/** ssh2's PacketWriter (`lib/protocol/zlib.js`), which frames outgoing packets. */
export interface PacketWriterInternals {
  /** Where a message starts in a buffer from `alloc` (5: length and padding length). */
  allocStart: number;
  _protocol: {
    /** Set while a key exchange runs: packets are then queued until NEWKEYS. */
    _kexinit: unknown;
    _cipher: { allocPacket(n: number): Buffer };
  };
  alloc(payloadSize: number, force?: boolean): Buffer;
  finalize(packet: Buffer, force?: boolean): Buffer;
}

/** ssh2's Protocol (`lib/protocol/Protocol.js`), one per connection. */
interface ProtocolInternals {
  /** The inbound decipher; ssh2 assigns a new one at every NEWKEYS. */
  _decipher?: unknown;
  /** The outbound cipher; ssh2 assigns a new one at every NEWKEYS. */
  _cipher?: unknown;
  _packetRW?: { write?: PacketWriterInternals };
  signal?(channelId: number, name: string): void;
}

/** ssh2's Client (`lib/client.js`). */
interface ClientInternals {
  _protocol?: ProtocolInternals;
  /** The server's identification string, without `SSH-2.0-`. */
  _remoteVer?: unknown;
}

/** ssh2's Channel (`lib/Channel.js`). */
interface ChannelInternals {
  outgoing?: { state?: string; id?: number };
  _client?: ClientInternals;
}

function protocolOf(client: unknown): ProtocolInternals | undefined {
  const protocol = (client as ClientInternals | null)?._protocol;
  return typeof protocol === "object" && protocol !== null ? protocol : undefined;
}

/** The packet writer of a connected client, or undefined if ssh2 has none where 1.17 keeps it. */
export function packetWriterOf(client: unknown): PacketWriterInternals | undefined {
  const writer = protocolOf(client)?._packetRW?.write;
  if (typeof writer !== "object" || writer === null) return undefined;
  return writer.allocStart === 5 && typeof writer.alloc === "function" && typeof writer.finalize === "function"
    ? writer
    : undefined;
}

/**
 * The object that holds a connected client's inbound decipher (its
 * Protocol), for code that replaces the decipher at each NEWKEYS; undefined
 * if the field is not where 1.17 keeps it.
 */
export function decipherHolderOf(client: unknown): { _decipher?: unknown } | undefined {
  const protocol = protocolOf(client);
  return protocol !== undefined && "_decipher" in protocol ? protocol : undefined;
}

/**
 * The object that holds a connected client's outbound cipher (its
 * Protocol), for code that replaces the cipher at each NEWKEYS; undefined
 * if the field is not where 1.17 keeps it.
 */
export function cipherHolderOf(client: unknown): { _cipher?: unknown } | undefined {
  const protocol = protocolOf(client);
  return protocol !== undefined && "_cipher" in protocol ? protocol : undefined;
}

/** The server's software version as ssh2 read it from the banner, or "unknown". */
export function remoteVersionOf(client: unknown): string {
  const version = (client as ClientInternals | null)?._remoteVer;
  return typeof version === "string" ? version : "unknown";
}

/**
 * Sends a signal request on a session channel, also after its stdin EOF:
 * RFC 4254 allows requests then, but ssh2's Channel.signal() sends nothing
 * once EOF was sent, so a timed-out command's shell was never signalled.
 * Returns false, sending nothing, when the channel is closed or not the
 * shape ssh2 1.17 has.
 */
export function sendSignal(channel: unknown, name: string): boolean {
  const c = channel as ChannelInternals | null;
  const state = c?.outgoing?.state;
  const id = c?.outgoing?.id;
  const protocol = protocolOf(c?._client);
  if ((state !== "open" && state !== "eof") || typeof id !== "number" || typeof protocol?.signal !== "function") {
    return false;
  }
  protocol.signal(id, name);
  return true;
}

/**
 * ssh2's SFTP channel (`SFTP` in `lib/protocol/SFTP.js`): the parser state
 * that ./sftp_fix.ts reads around `push()`, which ssh2's Client calls with
 * each chunk of channel data (null at EOF).
 */
export interface SftpInternals {
  /** True for the server side of SFTP; the fix checks only what a client receives. */
  server: boolean;
  /** The protocol version from the server's VERSION packet; -1 until it arrives. */
  _version: number;
  /** The length of the packet being read, built from its first four bytes. */
  _pktLen: number;
  /** The packet being read, once ssh2 has reserved room for it. */
  _pkt: Uint8Array | undefined;
  /** Pending requests by id; their callbacks get an error when the channel fails. */
  _requests: Record<string, { cb?: unknown }>;
  push(data: Uint8Array | null): unknown;
  destroy(): void;
  emit(event: string, ...args: unknown[]): boolean;
  on(event: string, listener: (...args: never[]) => void): unknown;
  listenerCount(event: string): number;
}
