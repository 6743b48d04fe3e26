/**
 * OpenSSH known_hosts parsing and matching, following sshd(8) "SSH_KNOWN_HOSTS
 * FILE FORMAT" and the behaviour of OpenSSH's hostfile.c and match.c.
 *
 * @module
 */

import { BoundedReadError, ONE_MIB, readBoundedFile } from "../read_bounded.ts";
import { Buffer } from "node:buffer";
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { dirname } from "node:path";
// match.c's match_pattern() (`*` and `?`, one backtrack point): the one ssh_config uses too.
import { matchPattern } from "../ssh_config/pattern.ts";

/** One usable line of a known_hosts file. */
export interface KnownHostsEntry {
  /** Path the line came from, or a label. */
  file: string;
  /** 1-based line number. */
  line: number;
  /** The `@revoked` or `@cert-authority` marker, if any. */
  marker: "revoked" | "cert-authority" | null;
  /** The raw host-pattern field, e.g. `[h]:2222,h2,!bad*` or `|1|salt|hash`. */
  hostPatterns: string;
  /** Key type field, e.g. `ssh-ed25519`. */
  keyType: string;
  /** Base64 of the SSH wire-format public key blob. */
  keyBase64: string;
}

/** Usable entries of one or more known_hosts files plus a warning per skipped line. */
export interface ParseResult {
  /** Entries in file order. */
  entries: KnownHostsEntry[];
  /** One message per malformed line or unreadable file, naming where. */
  warnings: string[];
}

/** Outcome of checking a presented host key against known_hosts entries. */
export type HostKeyVerdict =
  | { kind: "match"; entry: KnownHostsEntry }
  | { kind: "revoked"; entry: KnownHostsEntry }
  | { kind: "mismatch"; expected: KnownHostsEntry[] }
  | { kind: "unknown" };

const MARKERS: Record<string, "revoked" | "cert-authority"> = {
  "@revoked": "revoked",
  "@cert-authority": "cert-authority",
};
// OpenSSH copies each sub-pattern into a 1024-byte buffer and gives up on the
// whole list (no match) when one does not fit.
const MAX_SUBPATTERN = 1023;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const HASHED = /^\|1\|([A-Za-z0-9+/]{27}=)\|([A-Za-z0-9+/]{27}=)$/;

/**
 * Parses known_hosts text. Malformed lines are skipped, each with a warning
 * naming `file:line`, as OpenSSH skips them.
 */
export function parseKnownHosts(text: string, file: string): ParseResult {
  const entries: KnownHostsEntry[] = [];
  const warnings: string[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    let raw = lines[i].endsWith("\r") ? lines[i].slice(0, -1) : lines[i];
    // OpenSSH handles lines as C strings, so anything after a NUL is unseen.
    const nul = raw.indexOf("\0");
    if (nul !== -1) raw = raw.slice(0, nul);
    const fields = splitFields(raw, 4);
    if (fields.length === 0 || fields[0].startsWith("#")) continue;
    const skip = (why: string) => warnings.push(`Skipped ${file}:${i + 1}: ${why}`);
    let marker: KnownHostsEntry["marker"] = null;
    if (fields[0].startsWith("@")) {
      marker = Object.hasOwn(MARKERS, fields[0]) ? MARKERS[fields[0]] : null;
      if (marker === null) {
        skip("unknown marker");
        continue;
      }
      fields.shift();
    }
    if (fields.length < 3) {
      skip("expected host patterns, key type and key");
      continue;
    }
    const [hostPatterns, keyType, keyBase64] = fields;
    if (hostPatterns.startsWith("|") && !HASHED.test(hostPatterns)) {
      skip("hashed host name is malformed");
      continue;
    }
    if (keyBase64.length % 4 !== 0 || !BASE64.test(keyBase64)) {
      skip("key is not valid base64");
      continue;
    }
    let blobType: string;
    try {
      blobType = keyTypeOf(Buffer.from(keyBase64, "base64"));
    } catch {
      // keyTypeOf only throws for a malformed blob, which is what we report.
      skip("key blob is malformed");
      continue;
    }
    if (blobType !== keyType) {
      skip("key type field does not match the type inside the key");
      continue;
    }
    entries.push({
      file,
      line: i + 1,
      marker,
      hostPatterns,
      keyType,
      keyBase64,
    });
  }
  return { entries, warnings };
}

/**
 * OpenSSH's host name for a host and port: "host" for port 22, "[host]:port"
 * otherwise. ASCII-lowercased, as ssh lowercases host names before lookup.
 */
export function knownHostsName(host: string, port: number): string {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(
      `Invalid port ${port}: expected an integer from 1 to 65535`,
    );
  }
  const lower = asciiLower(host);
  return port === 22 ? lower : `[${lower}]:${port}`;
}

/**
 * Does a host-pattern field match this name (OpenSSH semantics: comma list,
 * `*` and `?` wildcards, `!` negation which vetoes the whole line,
 * case-insensitive, `|1|salt|hmac` hashed entries = HMAC-SHA1 keyed by the
 * salt over the name, `[h]:p` bracket form). Pass the name from
 * {@linkcode knownHostsName}: for port 22 OpenSSH looks up the plain host name.
 */
export function hostPatternsMatch(patterns: string, name: string): boolean {
  const lower = asciiLower(name);
  if (patterns.startsWith("|")) {
    const m = HASHED.exec(patterns);
    if (m === null) return false;
    const mac = createHmac("sha1", Buffer.from(m[1], "base64")).update(lower)
      .digest();
    return timingSafeEqual(mac, Buffer.from(m[2], "base64"));
  }
  let positive = false;
  for (const item of patterns.split(",")) {
    const negated = item.startsWith("!");
    const sub = negated ? item.slice(1) : item;
    if (sub.length >= MAX_SUBPATTERN) return false;
    if (matchPattern(lower, asciiLower(sub))) {
      if (negated) return false;
      positive = true;
    }
  }
  return positive;
}

/**
 * Checks a presented host key. A key listed under `@revoked` is refused for
 * any host. `@cert-authority` lines are ignored (fail closed): this program
 * cannot verify host certificates, so a host with only CA lines is "unknown".
 * "mismatch" means the host has plain entries, of any key type, and none
 * holds this key.
 */
export function checkHostKey(
  entries: KnownHostsEntry[],
  opts: { host: string; port: number; keyType: string; key: Uint8Array },
): HostKeyVerdict {
  const name = knownHostsName(opts.host, opts.port);
  const key = Buffer.from(opts.key);
  const holds = (e: KnownHostsEntry) =>
    e.keyType === opts.keyType &&
    key.equals(Buffer.from(e.keyBase64, "base64"));
  const revoked = entries.find((e) => e.marker === "revoked" && holds(e));
  if (revoked) return { kind: "revoked", entry: revoked };
  const expected: KnownHostsEntry[] = [];
  for (const e of entries) {
    if (e.marker !== null || !hostPatternsMatch(e.hostPatterns, name)) continue;
    if (holds(e)) return { kind: "match", entry: e };
    expected.push(e);
  }
  return expected.length > 0 ? { kind: "mismatch", expected } : { kind: "unknown" };
}

/**
 * Key types already known for this host, in file order, deduplicated: used
 * to order the host-key algorithms we offer so the server presents a key we
 * can verify (as OpenSSH does). `ssh-rsa` keys are verified by algorithms
 * rsa-sha2-512, rsa-sha2-256 and ssh-rsa: this returns key types and the
 * caller maps them.
 */
export function knownKeyTypes(
  entries: KnownHostsEntry[],
  host: string,
  port: number,
): string[] {
  const name = knownHostsName(host, port);
  const types = new Set<string>();
  for (const e of entries) {
    if (e.marker === null && hostPatternsMatch(e.hostPatterns, name)) {
      types.add(e.keyType);
    }
  }
  return [...types];
}

/** "SHA256:" + unpadded base64 of sha256(key blob), exactly as `ssh-keygen -lf` prints it. */
export function fingerprintSha256(key: Uint8Array): string {
  return "SHA256:" +
    createHash("sha256").update(key).digest("base64").replace(/=+$/, "");
}

/**
 * The key type string embedded at the start of an SSH wire-format public key
 * blob (uint32 length + bytes). Throws on a malformed blob.
 */
export function keyTypeOf(key: Uint8Array): string {
  if (key.length < 4) {
    throw new Error("Malformed SSH public key: shorter than 4 bytes");
  }
  const len = new DataView(key.buffer, key.byteOffset, key.byteLength)
    .getUint32(0);
  if (len === 0 || len > 256 || 4 + len > key.length) {
    throw new Error(
      `Malformed SSH public key: key type length ${len} does not fit the blob`,
    );
  }
  const bytes = key.subarray(4, 4 + len);
  if (bytes.some((b) => b < 0x21 || b > 0x7e)) {
    throw new Error(
      "Malformed SSH public key: key type is not printable ASCII",
    );
  }
  return new TextDecoder().decode(bytes);
}

/**
 * One known_hosts line (no trailing newline):
 * `${knownHostsName(host, port)} ${keyType} ${base64}`. Throws for a host
 * that could not be read back as a single literal name.
 */
export function formatKnownHostsLine(
  opts: { host: string; port: number; key: Uint8Array },
): string {
  // Anything else (space, comma, `*`, `!`, `|`, newline) would change what the line means.
  if (!/^[A-Za-z0-9._:%-]+$/.test(opts.host)) {
    throw new Error(
      "Cannot format known_hosts line: host contains characters that are not allowed",
    );
  }
  const name = knownHostsName(opts.host, opts.port);
  return `${name} ${keyTypeOf(opts.key)} ${Buffer.from(opts.key).toString("base64")}`;
}

// A key line is under 1 KiB: 16 MiB holds tens of thousands of hosts, more
// than any real file, and keeps a huge or endless one from filling memory.
const MAX_KNOWN_HOSTS_BYTES = 16 * ONE_MIB;

/**
 * Reads and parses each existing file in order; missing files are skipped
 * silently, unreadable ones (permission, not a regular file, larger than
 * 16 MiB) produce a warning. Returns the concatenated entries and warnings.
 * Nothing but a regular file is opened, and never in a way that blocks
 * (../read_bounded.ts); `signal` ends the wait.
 */
export async function loadKnownHosts(paths: string[], signal?: AbortSignal): Promise<ParseResult> {
  const result: ParseResult = { entries: [], warnings: [] };
  for (const path of paths) {
    let text: string;
    try {
      text = new TextDecoder().decode(await readBoundedFile(path, { maxBytes: MAX_KNOWN_HOSTS_BYTES, signal }));
    } catch (err) {
      if (!(err instanceof BoundedReadError)) throw err;
      if (err.problem === "not-found") continue;
      result.warnings.push(`Cannot read ${path}: ${err.message}`);
      continue;
    }
    const parsed = parseKnownHosts(text, path);
    result.entries.push(...parsed.entries);
    result.warnings.push(...parsed.warnings);
  }
  return result;
}

/**
 * Appends one line to the file, creating the parent directory (mode 0700) and
 * the file (mode 0600) if missing; an existing file keeps its mode. Adds a
 * newline first if the file does not end with one. Does nothing if the file
 * already holds exactly this line, so racing first connects write it once.
 */
export async function appendKnownHost(
  path: string,
  line: string,
  options: {
    /**
     * Runs while the file is locked; the line is written only if it
     * resolves true (lets the caller re-check what racing writers added).
     */
    onlyIf?: () => Promise<boolean>;
  } = {},
): Promise<void> {
  if (line.trim() === "" || /[\r\n\0]/.test(line)) {
    throw new Error(
      "Cannot append to known_hosts: line is empty or contains a line break or NUL",
    );
  }
  await Deno.mkdir(dirname(path), { recursive: true, mode: 0o700 });
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, {
      read: true,
      append: true,
      createNew: true,
      mode: 0o600,
    });
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
    file = await Deno.open(path, { read: true, append: true });
  }
  try {
    // A FIFO or device here would make the read below wait forever (opened
    // read-write, a FIFO has a writer: us). fstat, so it is the opened file.
    const opened = await file.stat();
    if (!opened.isFile) throw new Error(`Cannot append to ${path}: it is not a regular file`);
    await file.lock(true);
    if (options.onlyIf && !(await options.onlyIf())) return;
    const existing = await readAll(file);
    const text = new TextDecoder().decode(existing);
    if (text.split("\n").some((l) => l.replace(/\r$/, "") === line)) return;
    const needsNewline = existing.length > 0 &&
      existing[existing.length - 1] !== 0x0a;
    let out = new TextEncoder().encode(`${needsNewline ? "\n" : ""}${line}\n`);
    while (out.length > 0) out = out.subarray(await file.write(out));
  } finally {
    file.close();
  }
}

async function readAll(file: Deno.FsFile): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(64 * 1024);
  for (let n = await file.read(buf); n !== null; n = await file.read(buf)) {
    chunks.push(buf.slice(0, n));
  }
  return Buffer.concat(chunks);
}

// Fields are separated by runs of spaces and tabs; everything after the
// `max`-th field is a comment. A hand loop, because end-anchored regexes go
// quadratic on long runs of whitespace.
function splitFields(line: string, max: number): string[] {
  const fields: string[] = [];
  let i = 0;
  while (fields.length < max) {
    while (i < line.length && (line[i] === " " || line[i] === "\t")) i++;
    if (i >= line.length) break;
    const start = i;
    while (i < line.length && line[i] !== " " && line[i] !== "\t") i++;
    fields.push(line.slice(start, i));
  }
  return fields;
}

// OpenSSH lowercases with tolower() in the C locale: ASCII only, length kept.
function asciiLower(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}
