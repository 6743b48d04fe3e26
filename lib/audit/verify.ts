/**
 * `verify-audit FILE`: checks an audit log's hash chain across FILE and its
 * rotated files (oldest first) and names the first line that breaks it.
 *
 * A line breaks the chain when its hash does not match its bytes (it was
 * changed), when its `prev` is not the hash of the record before it (a record
 * was removed, reordered or inserted), or when it is not a whole record. A
 * torn record that the writer vouched for (the next record carries
 * `torn_before` with the fragment's size, see `log.ts`) is counted, not a
 * break. The first record's `prev` cannot be checked: after rotation has
 * dropped old files it names a record no longer kept, so the summary says
 * whether the chain starts at its beginning. Records cut off the end leave
 * no trace in the chain; see `log.ts` for what the chain does not promise.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import { checkLine, GENESIS } from "./record.ts";

/** A place in the log. */
export interface LinePlace {
  /** The file. */
  file: string;
  /** 1-based line number in it. */
  line: number;
}

/** What {@linkcode verifyAudit} found. */
export type VerifyResult =
  | {
    ok: true;
    /** Whole records checked. */
    records: number;
    /** The files checked, oldest first. */
    files: string[];
    /** Whether the first record is the chain's first (earlier ones may have been rotated away). */
    fromGenesis: boolean;
    /** Torn records the writer vouched for. */
    torn: LinePlace[];
  }
  | {
    ok: false;
    /** Whole records checked before the break. */
    records: number;
    /** The files checked, oldest first. */
    files: string[];
    /** The first line that breaks the chain. */
    at: LinePlace;
    /** Why it breaks it. */
    reason: string;
  };

const READ_CHUNK = 64 * 1024;
// No record comes near this; a longer line is not a record and must not make
// the verifier hold a whole file in memory.
const MAX_LINE_BYTES = 64 * 1024 * 1024;

interface RawLine {
  bytes: Uint8Array;
  /** Whether a "\n" ended it. */
  terminated: boolean;
  /** Whether it was longer than MAX_LINE_BYTES (then `bytes` is empty). */
  tooLong: boolean;
}

/**
 * The files of the log at `path`, oldest first: `path.N` for every N that
 * exists, highest first, then `path`. Every rotated file is listed, not only
 * 1, 2, … up to the first gap, so a lost file shows as a break, not as a
 * shorter log.
 */
export async function auditFiles(path: string): Promise<string[]> {
  const dir = dirname(path);
  const prefix = `${basename(path)}.`;
  const numbered: { n: number; file: string }[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.name.startsWith(prefix)) continue;
    const suffix = entry.name.slice(prefix.length);
    if (/^[1-9][0-9]{0,8}$/.test(suffix)) numbered.push({ n: Number(suffix), file: join(dir, entry.name) });
  }
  numbered.sort((a, b) => b.n - a.n);
  return [...numbered.map((f) => f.file), path];
}

async function* linesOf(path: string): AsyncGenerator<RawLine> {
  using file = await Deno.open(path, { read: true });
  const chunk = new Uint8Array(READ_CHUNK);
  let carry: Uint8Array[] = [];
  let carried = 0;
  let skipping = false; // inside a line already reported too long
  for (;;) {
    const n = await file.read(chunk);
    if (n === null) break;
    let from = 0;
    for (;;) {
      const nl = chunk.subarray(from, n).indexOf(0x0a);
      const end = nl < 0 ? n : from + nl;
      if (!skipping) {
        carry.push(chunk.slice(from, end));
        carried += end - from;
        if (carried > MAX_LINE_BYTES) {
          yield { bytes: new Uint8Array(0), terminated: true, tooLong: true };
          carry = [];
          carried = 0;
          skipping = true;
        }
      }
      if (nl < 0) break;
      if (!skipping) yield { bytes: join_(carry, carried), terminated: true, tooLong: false };
      carry = [];
      carried = 0;
      skipping = false;
      from = end + 1;
    }
  }
  if (carried > 0 && !skipping) yield { bytes: join_(carry, carried), terminated: false, tooLong: false };
}

function join_(parts: Uint8Array[], length: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/**
 * Checks the chain of the log at `path` and its rotated files.
 *
 * @param path The log file as configured (not a rotated one).
 * @returns Ok with counts, or the first line that breaks the chain and why.
 * @throws {Deno.errors.NotFound} and other I/O errors when a file cannot be read.
 */
export async function verifyAudit(path: string): Promise<VerifyResult> {
  const files = await auditFiles(path);
  let records = 0;
  let expected: string | null = null; // hash of the last whole record
  let fromGenesis = false;
  const torn: LinePlace[] = [];
  // A line that is not a record, waiting to see whether the next record vouches for it.
  let pending: (LinePlace & { bytes: number; reason: string }) | null = null;
  const broken = (at: LinePlace, reason: string): VerifyResult => ({ ok: false, records, files, at, reason });

  for (const file of files) {
    let line = 0;
    for await (const raw of linesOf(file)) {
      line++;
      const checked = raw.tooLong
        ? { kind: "bad" as const, reason: `it is longer than ${MAX_LINE_BYTES} bytes, so not a record` }
        : checkLine(raw.bytes);
      if (checked.kind === "bad" || !raw.terminated) {
        if (pending !== null) return broken(pending, pending.reason);
        const reason = checked.kind === "bad"
          ? checked.reason
          : "it does not end with a newline (a write cut short, or one still going on)";
        pending = { file, line, bytes: raw.bytes.length, reason };
        continue;
      }
      if (pending !== null) {
        // Vouched for: the writer ended the fragment and chained on from the record before it.
        if (checked.tornBefore !== pending.bytes || (expected !== null && checked.prev !== expected)) {
          return broken(pending, pending.reason);
        }
        torn.push({ file: pending.file, line: pending.line });
        pending = null;
      } else if (checked.tornBefore !== null) {
        return broken(
          { file, line },
          `it says a torn record of ${checked.tornBefore} bytes comes before it, but the line before is whole`,
        );
      } else if (expected !== null && checked.prev !== expected) {
        return broken(
          { file, line },
          "its prev is not the hash of the record before it (a record was removed, reordered or inserted)",
        );
      }
      if (expected === null) fromGenesis = checked.prev === GENESIS;
      expected = checked.hash;
      records++;
    }
  }
  if (pending !== null) return broken(pending, pending.reason);
  return { ok: true, records, files, fromGenesis, torn };
}

// Why a log cannot be read; anything else thrown is a bug and stays loud.
const READ_ERRORS = [
  Deno.errors.NotFound,
  Deno.errors.PermissionDenied,
  Deno.errors.NotCapable,
  Deno.errors.IsADirectory,
  Deno.errors.NotADirectory,
];

const USAGE = "Usage: mcp-remote-ssh verify-audit FILE\n\n" +
  "Checks the hash chain of the audit log FILE and of its rotated files (FILE.1, FILE.2, …).\n" +
  "Exit status: 0 the chain holds, 1 it is broken (the first broken line is named), 2 the log cannot be read.";

/**
 * The `verify-audit FILE` subcommand: prints the outcome (to stdout; usage
 * and read errors to stderr) and returns the exit code: 0 the chain holds,
 * 1 it is broken, 2 usage error or unreadable log.
 *
 * @param argv The arguments after `verify-audit`.
 */
export async function verifyAuditMain(argv: string[]): Promise<number> {
  if (argv.length === 1 && (argv[0] === "--help" || argv[0] === "-h")) {
    console.log(USAGE);
    return 0;
  }
  if (argv.length !== 1 || argv[0].startsWith("-") || argv[0] === "") {
    console.error(USAGE);
    return 2;
  }
  let result: VerifyResult;
  try {
    result = await verifyAudit(argv[0]);
  } catch (error) {
    if (!READ_ERRORS.some((kind) => error instanceof kind)) throw error;
    console.error(`verify-audit: cannot read the audit log: ${(error as Error).message}`);
    return 2;
  }
  const span = result.files.length === 1 ? result.files[0] : `${result.files[0]} … ${result.files.at(-1)}`;
  if (!result.ok) {
    console.log(`${result.at.file}:${result.at.line}: ${result.reason}`);
    console.log(`broken: ${result.records} records verified before this line (${span})`);
    return 1;
  }
  const files = `${result.files.length} file${result.files.length === 1 ? "" : "s"}`;
  const start = result.records === 0
    ? ""
    : result.fromGenesis
    ? "; it starts at the chain's first record"
    : "; it starts after records these files no longer hold (rotated away, or removed)";
  console.log(`ok: ${result.records} records in ${files} (${span}), chain intact${start}`);
  for (const t of result.torn) {
    console.log(`${t.file}:${t.line}: torn record (a write cut short; the writer noted it in the next record)`);
  }
  return 0;
}
