/**
 * One audit line: what a tool call's entry becomes on disk, and how a line is
 * checked again.
 *
 * A line is one JSON object with keys in a fixed order, ending in `"\n"`.
 * When chained, its last two keys are `prev` (the previous record's hash) and
 * `hash`, the sha256 of the line's own bytes up to `prev` inclusive, written as
 * the JSON object without `hash`:
 *
 * ```
 * body = {"time":…,…,"prev":"<hex>"}
 * line = {"time":…,…,"prev":"<hex>","hash":"<sha256(body)>"}\n
 * ```
 *
 * Since every line hashes its own content, a change to any byte of line k is
 * found at line k, not at the line after it; since it hashes `prev` too, a
 * line removed, reordered or inserted is found at the first line whose `prev`
 * is not the hash of the record before it. The hash is over raw bytes, so a
 * verifier needs no canonical JSON: it cuts the hash off and hashes the rest.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { redactArguments } from "./redact.ts";

/** The `prev` of the first record of a chain. */
export const GENESIS: string = "0".repeat(64);

/** One tool call, as the dispatcher hands it to the audit log. */
export interface AuditEntry {
  /** When the call started. */
  startedAt: Date;
  /** How long it took, in milliseconds. */
  durationMs: number;
  /** `"stdio"` or the HTTP session id. */
  transportSession: string;
  /** The SSH session the call used, if any. */
  sshSession?: string;
  /** The remote host, if any. */
  host?: string;
  /** The remote port, if any. */
  port?: number;
  /** The remote user, if any. */
  user?: string;
  /** The tool called. */
  tool: string;
  /** The arguments as the client sent them; the log redacts them, never the caller. */
  arguments: unknown;
  /** Whether the call succeeded. */
  outcome: "ok" | "error";
  /** The error code (e.g. `"AUTH_FAILED"`) when `outcome` is `"error"`. */
  code?: string;
  /** What the server knows of an outcome it could not wait for (a call still running at shutdown). */
  note?: string;
  /** The remote command's exit code; null when it ended without one. */
  exitCode?: number | null;
  /** The signal that ended the remote command; null when none did. */
  signal?: string | null;
  /** Bytes sent to the remote side. */
  bytesIn?: number;
  /** Bytes received from the remote side. */
  bytesOut?: number;
  /** What the approval step decided. */
  approval?: "not_required" | "accepted" | "remembered" | "declined" | "cancelled" | "unavailable";
}

const encoder = new TextEncoder();

/** sha256 of `bytes`, lowercase hex. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * The JSON object of an entry, keys in their fixed order, absent ones left
 * out, arguments redacted.
 */
export function recordOf(entry: AuditEntry): Record<string, unknown> {
  const time = Number.isNaN(entry.startedAt?.getTime?.()) ? null : entry.startedAt.toISOString();
  const record: Record<string, unknown> = {
    time,
    duration_ms: entry.durationMs,
    transport_session: entry.transportSession,
    ssh_session: entry.sshSession,
    host: entry.host,
    port: entry.port,
    user: entry.user,
    tool: entry.tool,
    arguments: redactArguments(entry.tool, entry.arguments),
    outcome: entry.outcome,
    code: entry.code,
    note: entry.note,
    exit_code: entry.exitCode,
    signal: entry.signal,
    bytes_in: entry.bytesIn,
    bytes_out: entry.bytesOut,
    approval: entry.approval,
  };
  // JSON.stringify leaves undefined members out: "omit absent ones".
  return record;
}

/** Chain facts a line carries besides its entry. */
export interface ChainFields {
  /** Hash of the previous record, or {@linkcode GENESIS}; absent when not chained. */
  prev?: string;
  /**
   * Bytes of a torn record (a write cut short) just before this line, which
   * this line's leading newline ended. Hashed with the line, so only the
   * writer can vouch for a torn line; see `log.ts`.
   */
  tornBefore?: number;
}

/** A serialised line and, when chained, its hash. */
export interface Line {
  /** The line's bytes, ending in `"\n"`. */
  bytes: Uint8Array;
  /** The line's hash; null when not chained. */
  hash: string | null;
}

/**
 * Serialises a record ({@linkcode recordOf}) to one line; chained when
 * `chain.prev` is given. The record is not changed.
 */
export function lineOf(entry: Readonly<Record<string, unknown>>, chain: ChainFields): Line {
  const record = { ...entry };
  if (chain.tornBefore !== undefined) record.torn_before = chain.tornBefore;
  if (chain.prev === undefined) return { bytes: encoder.encode(JSON.stringify(record) + "\n"), hash: null };
  record.prev = chain.prev;
  const body = encoder.encode(JSON.stringify(record));
  const hash = sha256Hex(body);
  // The body ends in "}": the hash goes in before it.
  const tail = encoder.encode(`,"hash":"${hash}"}\n`);
  const bytes = new Uint8Array(body.length - 1 + tail.length);
  bytes.set(body.subarray(0, body.length - 1));
  bytes.set(tail, body.length - 1);
  return { bytes, hash };
}

/** What a line (without its `"\n"`) turned out to be. */
export type Checked =
  | { kind: "record"; hash: string; prev: string; tornBefore: number | null }
  | { kind: "bad"; reason: string };

// `,"hash":"` + 64 hex + `"}`
const SUFFIX_HEAD = encoder.encode(`,"hash":"`);
const SUFFIX_LENGTH = SUFFIX_HEAD.length + 64 + 2;
const HEX64 = /^[0-9a-f]{64}$/;
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Checks one line on its own: its hash against its bytes, and its shape.
 * Whether its `prev` is right is the caller's question (it knows the
 * record before).
 *
 * @param line The line's bytes without its `"\n"`.
 */
export function checkLine(line: Uint8Array): Checked {
  const cut = line.length - SUFFIX_LENGTH;
  const tail = cut > 0 ? line.subarray(cut) : null;
  if (tail === null || !startsWith(tail, SUFFIX_HEAD) || tail[tail.length - 2] !== 0x22 || tail.at(-1) !== 0x7d) {
    return { kind: "bad", reason: unchainedReason(line) };
  }
  const hash = latin1(tail.subarray(SUFFIX_HEAD.length, SUFFIX_HEAD.length + 64));
  if (!HEX64.test(hash)) return { kind: "bad", reason: "its hash is not 64 hex digits" };
  const body = new Uint8Array(cut + 1);
  body.set(line.subarray(0, cut));
  body[cut] = 0x7d; // "}"
  if (sha256Hex(body) !== hash) {
    return { kind: "bad", reason: "its hash does not match its content (the line was changed)" };
  }
  // The hash matched, so the writer wrote this; a shape error now means a
  // writer other than this module.
  let record: unknown;
  try {
    record = JSON.parse(strictUtf8.decode(body));
  } catch (error) {
    if (!(error instanceof SyntaxError || error instanceof TypeError)) throw error;
    return { kind: "bad", reason: "it is not a JSON object" };
  }
  if (typeof record !== "object" || record === null || Array.isArray(record)) {
    return { kind: "bad", reason: "it is not a JSON object" };
  }
  const { prev, torn_before: torn } = record as { prev?: unknown; torn_before?: unknown };
  if (typeof prev !== "string" || !HEX64.test(prev)) return { kind: "bad", reason: "its prev is missing or malformed" };
  if (torn !== undefined && !(Number.isSafeInteger(torn) && (torn as number) > 0)) {
    return { kind: "bad", reason: "its torn_before is malformed" };
  }
  return { kind: "record", hash, prev, tornBefore: (torn as number | undefined) ?? null };
}

function unchainedReason(line: Uint8Array): string {
  try {
    const value = JSON.parse(strictUtf8.decode(line));
    if (typeof value === "object" && value !== null && !Array.isArray(value)) {
      return "it has no hash (written with the chain off)";
    }
  } catch (error) {
    if (!(error instanceof SyntaxError || error instanceof TypeError)) throw error;
  }
  return "it is not a complete record";
}

function startsWith(bytes: Uint8Array, head: Uint8Array): boolean {
  for (let i = 0; i < head.length; i++) if (bytes[i] !== head[i]) return false;
  return true;
}

function latin1(bytes: Uint8Array): string {
  return String.fromCharCode(...bytes);
}

/**
 * The `hash` of a line as written, without checking it: where a reopened log
 * continues its chain from. Null when the line carries none.
 */
export function hashOfLine(line: Uint8Array): string | null {
  const cut = line.length - SUFFIX_LENGTH;
  if (cut <= 0 || !startsWith(line.subarray(cut), SUFFIX_HEAD)) return null;
  const hash = latin1(line.subarray(cut + SUFFIX_HEAD.length, cut + SUFFIX_HEAD.length + 64));
  return HEX64.test(hash) ? hash : null;
}
