/**
 * Keeps a failed SFTP start from costing the connection (ssh2 1.17).
 *
 * A server that starts sftp-server through the account's login shell sends
 * whatever the login files print before the SFTP stream, and ssh2's SFTP
 * parser (`push()` in lib/protocol/SFTP.js) reads that text as a packet
 * header. Two of its defects then hurt far more than the failed open:
 *
 * - it builds the length with `(len << 8) + byte`, a signed 32-bit shift: a
 *   first byte >= 0x80 (UTF-8 letters, an emoji) gives a negative length
 *   that passes the max-length check, and parsing reads `undefined[0]`; the
 *   TypeError escapes into ssh2's protocol handler, which ends the whole
 *   connection with every shell and forward on it;
 * - after "Packet length N exceeds max length" it keeps that length, so the
 *   next data on the channel makes it reserve a buffer of N bytes (~2 GB
 *   for ASCII text) while the channel closes.
 *
 * With this fix, a client SFTP channel whose first packet is not a
 * plausible SSH_FXP_VERSION (length 5..256 KiB read unsigned, type 2) fails
 * with the kind of error ssh2's parser gives (`level: "sftp-protocol"`, which
 * ../ssh/sftp_open.ts maps to SFTP_LOGIN_OUTPUT), keeping the first bytes
 * for the message ({@linkcode sftpFirstBytes}). After any fatal parser error
 * the channel's later bytes are dropped unread, and a negative length later
 * in the stream fails the channel the same way instead of throwing.
 *
 * @module
 */

import "./chacha_fix.ts"; // before any ssh2 module loads
import { Buffer } from "node:buffer";
// ssh2's own SFTP parser, driven without a connection by the self-test.
import sftpModule from "ssh2/lib/protocol/SFTP.js";
import type { SftpInternals } from "./internals.ts";

// deno-lint-ignore no-explicit-any
const { SFTP } = sftpModule as any;

/** Longest packet ssh2 (and OpenSSH's sftp) accepts: a VERSION packet longer than this is not one. */
export const MAX_VERSION_PACKET = 256 * 1024;
/** A VERSION packet holds at least its type byte and a uint32 version. */
const MIN_VERSION_PACKET = 5;
const SSH_FXP_VERSION = 2;
/** Most bytes of a bad first packet kept for the error message (../ssh/sftp_open.ts shows 80 characters). */
export const KEPT_BYTES = 80;

/** Before the first packet's header is complete: its bytes so far (copied, ssh2 may reuse its buffers). */
type Phase = { head: Buffer } | "open" | "dead";
const phases = new WeakMap<object, Phase>();
const firstBytes = new WeakMap<Error, Uint8Array>();
const patched = new WeakSet<object>();

/**
 * The first bytes a server sent on an SFTP channel that this fix failed
 * because they were not a VERSION packet (at most {@linkcode KEPT_BYTES}),
 * or null for any other error.
 */
export function sftpFirstBytes(err: unknown): Uint8Array | null {
  return err instanceof Error ? firstBytes.get(err) ?? null : null;
}

function readUint32(bytes: Uint8Array): number {
  return ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0;
}

/** Why a first packet header (length and type) cannot be SSH_FXP_VERSION, in ssh2's words, or null. */
function notVersion(head: Uint8Array): string | null {
  const length = readUint32(head);
  if (length > MAX_VERSION_PACKET) return `Packet length ${length} exceeds max length of ${MAX_VERSION_PACKET}`;
  if (length < MIN_VERSION_PACKET) return `Invalid packet length ${length} for a VERSION packet`;
  return head[4] === SSH_FXP_VERSION ? null : `Expected VERSION packet, got ${head[4]}`;
}

/**
 * What ssh2's `doFatalSFTPError` does, except that the error is emitted
 * only to a listener (an 'error' without one throws, and would end the
 * connection), and the channel is marked dead so later bytes are dropped.
 */
function failChannel(sftp: SftpInternals, message: string, bytes: Uint8Array | null): false {
  phases.set(sftp, "dead");
  const err = Object.assign(new Error(message), { level: "sftp-protocol" });
  if (bytes !== null) firstBytes.set(err, Uint8Array.from(bytes.subarray(0, KEPT_BYTES)));
  if (sftp.listenerCount("error") > 0) sftp.emit("error", err);
  sftp.destroy();
  const requests = sftp._requests;
  sftp._requests = {};
  for (const request of Object.values(requests)) {
    if (typeof request.cb === "function") request.cb(new Error("No response from server"));
  }
  return false;
}

function guardedPush(original: SftpInternals["push"]): SftpInternals["push"] {
  return function push(this: SftpInternals, data: Uint8Array | null): unknown {
    if (data === null) return original.call(this, data);
    let phase = phases.get(this);
    // false, as ssh2 answers after a fatal error: no window adjust for a channel that is closing.
    if (phase === "dead") return false;
    phase ??= this.server || this._version !== -1 ? "open" : { head: Buffer.alloc(0) };
    if (phase !== "open") {
      const head = Buffer.concat([phase.head, data]);
      if (head.length < 4 + 1) {
        phases.set(this, { head });
        return undefined;
      }
      const problem = notVersion(head);
      if (problem !== null) return failChannel(this, problem, head);
      phases.set(this, "open");
      if (phase.head.length > 0) data = head;
    }
    try {
      const result = original.call(this, data);
      // Only a fatal parser error makes push() return false; ssh2 may have kept a bogus length.
      if (result === false) phases.set(this, "dead");
      return result;
    } catch (error) {
      // ssh2's signed shift made a length >= 2 GiB negative; anything else is not the parser's to hide.
      if (!(this._pktLen < 0)) throw error;
      return failChannel(this, `Packet length ${this._pktLen >>> 0} exceeds max length of ${MAX_VERSION_PACKET}`, null);
    }
  };
}

/** What an SFTP channel of ssh2 did with some received chunks ({@linkcode feedSftp}). */
export interface SftpFeedOutcome {
  /** The errors the channel emitted. */
  errors: Error[];
  /** What push() threw (ssh2 would then drop the connection), or null; feeding stops there. */
  threw: string | null;
  /** Whether the channel reported ready (a VERSION packet was accepted). */
  ready: boolean;
  /** Whether the channel asked ssh2 to close it. */
  closed: boolean;
  /** Bytes ssh2 reserved for a packet it is still reading. */
  held: number;
}

/**
 * Feeds chunks, as a server's channel data, to a client SFTP channel of
 * ssh2's own class over a stand-in connection; exported for tests.
 */
export function feedSftp(chunks: Uint8Array[]): SftpFeedOutcome {
  const outcome: SftpFeedOutcome = { errors: [], threw: null, ready: false, closed: false, held: 0 };
  const client = { _protocol: { _remoteIdentRaw: "SSH-2.0-OpenSSH_9.2p1", channelClose: () => outcome.closed = true } };
  const side = { id: 0, window: 2 * 1024 * 1024, packetSize: 32 * 1024, state: "open" };
  const sftp: SftpInternals = new SFTP(client, { type: "session", incoming: { ...side }, outgoing: { ...side } }, {});
  sftp.on("error", (err: Error) => void outcome.errors.push(err));
  sftp.on("ready", () => void (outcome.ready = true));
  for (const chunk of chunks) {
    try {
      sftp.push(Buffer.from(chunk));
    } catch (error) {
      outcome.threw = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      break;
    }
  }
  outcome.held = sftp._pkt?.length ?? 0;
  return outcome;
}

const encode = (text: string) => new TextEncoder().encode(text);
/** A UTF-8 greeting: its first byte, 0xc3, is where ssh2 1.17 went negative. */
export const UTF8_GREETING: Uint8Array = encode("élan — bienvenue\n");
/** An ASCII greeting: "welc" reads as a length of 2003135587, which ssh2 1.17 later reserved. */
export const ASCII_GREETING: Uint8Array = encode("welcome to the box\n");
/** A header one byte over the limit, so the self-test shows the kept length without reserving 2 GB. */
const JUST_OVER = Uint8Array.of(0x00, 0x04, 0x00, 0x01, 0x02, 0x00);
/** More of the stream: what the server sends after the text (here, anything). */
const MORE = encode("x".repeat(64));
/** SSH_FXP_VERSION 3 without extensions. */
export const VERSION_PACKET: Uint8Array = Uint8Array.of(0, 0, 0, 5, SSH_FXP_VERSION, 0, 0, 0, 3);

function sameBytes(a: Uint8Array | null, b: Uint8Array): boolean {
  return a !== null && a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Why ssh2's SFTP channel, with the fix on, does not behave as promised above, or null. */
function fixedProblem(): string | null {
  const utf8 = feedSftp([UTF8_GREETING, VERSION_PACKET]);
  if (utf8.threw !== null) return `UTF-8 text before SFTP still throws (${utf8.threw})`;
  const [utf8Error] = utf8.errors;
  if (
    utf8.errors.length !== 1 || (utf8Error as { level?: unknown }).level !== "sftp-protocol" ||
    !sameBytes(sftpFirstBytes(utf8Error), UTF8_GREETING) || !utf8.closed || utf8.ready
  ) return "UTF-8 text before SFTP did not fail the channel once, with its bytes";
  const ascii = feedSftp([ASCII_GREETING, MORE, VERSION_PACKET]);
  if (
    ascii.errors.length !== 1 || !/^Packet length 2003135587 exceeds max length/.test(ascii.errors[0].message) ||
    ascii.held !== 0 || ascii.ready
  ) return "ASCII text before SFTP did not fail the channel once and drop what followed";
  const over = feedSftp([JUST_OVER, MORE]);
  if (over.errors.length !== 1 || over.held !== 0) return "data after a too long first packet was still read";
  const wrongType = feedSftp([Uint8Array.of(0, 0, 0, 5, 101, 0, 0, 0, 3)]);
  if (wrongType.errors.length !== 1) return "a first packet other than VERSION was accepted";
  const split = feedSftp([VERSION_PACKET.subarray(0, 2), VERSION_PACKET.subarray(2, 6), VERSION_PACKET.subarray(6)]);
  if (!split.ready || split.errors.length > 0) return "a VERSION packet split across chunks was refused";
  const later = feedSftp([VERSION_PACKET, Uint8Array.of(0x80, 0, 0, 0, 1), MORE]);
  if (later.threw !== null || !later.ready || later.errors.length !== 1 || later.held !== 0) {
    return "a negative length after VERSION still throws or is read";
  }
  return null;
}

/**
 * Applies the fix to ssh2's SFTP class and proves it on ssh2's own parser:
 * before, UTF-8 text throws and a too long first packet leaves its length
 * to be reserved (the defects are still there to fix); after, both fail
 * the channel once and nothing that follows is read, and a VERSION packet,
 * even split, still opens it. On a failure ssh2's push() is put back.
 * Returns why it failed, or null. Run once per process.
 */
export function sftpFixSelfTest(): string | null {
  const proto = SFTP?.prototype as SftpInternals | undefined;
  if (proto === undefined || typeof proto.push !== "function") return "ssh2 has no SFTP class where 1.17 keeps it";
  if (patched.has(proto)) return null;
  const original = proto.push;
  try {
    const utf8 = feedSftp([UTF8_GREETING]);
    const over = feedSftp([JUST_OVER, MORE]);
    if (utf8.threw === null || over.held === 0) return "ssh2's SFTP parser no longer has the defects the fix is for";
    proto.push = guardedPush(original);
    patched.add(proto);
    const problem = fixedProblem();
    if (problem === null) return null;
    proto.push = original;
    patched.delete(proto);
    return problem;
  } catch (error) {
    proto.push = original;
    patched.delete(proto);
    return `ssh2's SFTP parser failed the self-test: ${error instanceof Error ? error.message : String(error)}`;
  }
}
