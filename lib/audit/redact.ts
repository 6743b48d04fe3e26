/**
 * What of a tool call's arguments may go into the audit log.
 *
 * Secrets (passwords, passphrases, tokens, at any depth) become the string
 * `"[redacted]"`: never a hash or a length, since the sha256 of a short
 * password is a guessing oracle and its length narrows the guess. Data (file
 * contents, stdin, edits) becomes `{ bytes, sha256 }`, enough to prove later
 * what was sent without keeping it; up to 64 bytes only `{ bytes }`, since a
 * value that short (a password piped to a command's stdin) would be guessable
 * from its hash. Any other string over 1024 bytes becomes `{ bytes, sha256 }`.
 * Everything else is kept as given: commands, and keystrokes sent to a shell
 * (`ssh_shell_send` `data`), which are what an agent did there, except that
 * the password of a URL's `scheme://user:password@` becomes `[redacted]` in
 * every string kept. A command line that carries a secret any other way
 * (`PGPASSWORD=… psql`), or a password typed into a shell's prompt, is kept
 * with it: secrets belong in the password fields.
 *
 * The whole is capped: arguments whose redacted JSON is over 16 KiB are
 * recorded as `{ bytes, sha256, keys }` (that JSON's size and digest, and the
 * top-level field names, at most 32, each cut to 64 characters), so one call
 * cannot write a line big enough to rotate the other records away.
 *
 * Rules go by field name, not by tool, so a new tool's `password` or
 * `content` field is covered without a change here.
 *
 * @module
 */

import { createHash } from "node:crypto";

/** The value a secret is replaced with. */
export const REDACTED = "[redacted]";

/** Strings longer than this (in UTF-8 bytes) are kept as their size and digest. */
export const MAX_KEPT_STRING_BYTES = 1024;

// Field names whose value is a secret, whatever the tool and the depth. The
// brief's rule (/token|secret|passw/) plus the forms it misses: "passphrase"
// has no "passw", and environment variables name their secrets DB_PASS,
// MYSQL_PWD, API_KEY, SSHPASS, REDISCLI_AUTH, SIGNING_KEY. `private_key_path`
// is a path, kept; a `private_key` would be key material. A bare `key` is not
// a secret: ssh_shell_send_control's `key` is a keystroke name ("ctrl+c").
const SECRET_KEY =
  /passw|passphrase|pass$|(?:^|_)pass_|pwd|token|secret|credential|api_?key|private_?key(?!_path)|_key$|_auth$|cookie/i;

// The password in a URL's userinfo (`scheme://user:password@host`). RFC 3986
// allows no "/", "?" or "#" in userinfo, so a path's "@" is not taken for one;
// the password may hold "@" (written unescaped, it runs to the authority's last "@").
const URL_PASSWORD = /([a-z][a-z0-9+.-]*:\/\/[^\s:/?#@]*):[^\s/?#]+@/gi;

/** Redacted arguments whose JSON is larger than this (bytes) are recorded as {@linkcode ArgumentsDigest}. */
export const MAX_ARGUMENTS_BYTES = 16 * 1024;

// What of the top-level field names an ArgumentsDigest keeps.
const MAX_DIGEST_KEYS = 32;
const MAX_DIGEST_KEY_CHARS = 64;

// Fields that carry data rather than describe the call: their strings are
// digested whatever their size (a short one only counted).
const DATA_FIELDS: ReadonlySet<string> = new Set(["stdin", "content", "old_text", "new_text"]);

/** Data up to this size (bytes) is recorded by its size alone: its hash would give a short secret away. */
export const SHORT_DATA_BYTES = 64;

// Deeper than any tool's schema goes; a deeper value is not from a schema
// the server accepted, and recursing on it would risk the stack.
const MAX_DEPTH = 32;

const encoder = new TextEncoder();

/** The stand-in for data: its size and sha256, never the bytes. */
export interface DataDigest {
  /** Size in bytes (UTF-8 for strings). */
  bytes: number;
  /** sha256 of the bytes, lowercase hex. */
  sha256: string;
}

function digest(bytes: Uint8Array): DataDigest {
  return { bytes: bytes.length, sha256: createHash("sha256").update(bytes).digest("hex") };
}

/** The stand-in for arguments too large to keep: their redacted JSON's size and sha256, and their field names. */
export interface ArgumentsDigest extends DataDigest {
  /** The top-level field names (none when the arguments are not an object), at most 32, each cut to 64 characters. */
  keys: string[];
}

/**
 * The arguments of one tool call as the audit log may keep them: secrets
 * replaced by `"[redacted]"`, data by its size and sha256, the rest as given.
 * The result is plain JSON (no prototype tricks, no cycles, no BigInt);
 * the input is never changed.
 *
 * @param tool The tool called. Every rule applies to every tool today (rules go by field name, so a new tool is
 *   covered without a change here); the name is taken so a rule for one tool needs no new signature.
 * @param args The arguments as the client sent them.
 * @returns A JSON value safe to write to the log.
 *
 * @example
 * ```ts
 * redactArguments("ssh_connect", { host: "h", password: "hunter2" }); // { host: "h", password: "[redacted]" }
 * redactArguments("ssh_execute", { stdin: "x" }); // { stdin: { bytes: 1 } }
 * ```
 */
export function redactArguments(tool: string, args: unknown): unknown {
  void tool;
  const redacted = redact(args, "", 0, new Set());
  // Measured whole, so neither long keys nor long arrays of short strings get past it.
  const json = JSON.stringify(redacted);
  if (json === undefined || json.length <= MAX_ARGUMENTS_BYTES / 3) return redacted;
  const bytes = encoder.encode(json);
  if (bytes.length <= MAX_ARGUMENTS_BYTES) return redacted;
  const keys = redacted !== null && typeof redacted === "object" && !Array.isArray(redacted)
    ? Object.keys(redacted).slice(0, MAX_DIGEST_KEYS).map((k) => Array.from(k).slice(0, MAX_DIGEST_KEY_CHARS).join(""))
    : [];
  return { ...digest(bytes), keys } satisfies ArgumentsDigest;
}

function redact(value: unknown, key: string, depth: number, seen: Set<object>): unknown {
  if (SECRET_KEY.test(key)) return REDACTED;
  switch (typeof value) {
    case "string": {
      // Length first in UTF-16 units: no encoding for the short common case.
      if (!DATA_FIELDS.has(key) && value.length <= MAX_KEPT_STRING_BYTES / 3) return withoutUrlPasswords(value);
      const bytes = encoder.encode(value);
      if (DATA_FIELDS.has(key) && bytes.length <= SHORT_DATA_BYTES) return { bytes: bytes.length };
      return DATA_FIELDS.has(key) || bytes.length > MAX_KEPT_STRING_BYTES ? digest(bytes) : withoutUrlPasswords(value);
    }
    case "number":
      // JSON would write NaN and Infinity as null, which says less than the value.
      return Number.isFinite(value) ? value : String(value);
    case "boolean":
      return value;
    case "bigint":
      return value.toString();
    case "undefined":
      return undefined;
    case "object":
      break;
    default: // symbol, function: nothing a JSON client can send
      return "[unserialisable]";
  }
  if (value === null) return null;
  if (ArrayBuffer.isView(value)) {
    return digest(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
  }
  if (value instanceof ArrayBuffer) return digest(new Uint8Array(value));
  if (depth >= MAX_DEPTH) return "[too deep]";
  if (seen.has(value)) return "[circular]";
  seen.add(value);
  try {
    if (Array.isArray(value)) {
      // Items inherit their array's field name: a list under `data` is data.
      return value.map((item) => redact(item, key, depth + 1, seen) ?? null);
    }
    const out: [string, unknown][] = [];
    for (const name of Object.keys(value)) {
      const item = redact(readProperty(value, name), name, depth + 1, seen);
      if (item !== undefined) out.push([name, item]);
    }
    // fromEntries defines own properties, so a `__proto__` key stays a key
    // instead of setting the result's prototype.
    return Object.fromEntries(out);
  } finally {
    seen.delete(value);
  }
}

// A getter may throw on an exotic object; a record of the call matters more
// than that one value.
function readProperty(value: object, name: string): unknown {
  try {
    return (value as Record<string, unknown>)[name];
  } catch {
    return "[unreadable]";
  }
}

// "://" first: most strings hold no URL, and a miss costs one scan.
function withoutUrlPasswords(text: string): string {
  return text.includes("://") ? text.replace(URL_PASSWORD, `$1:${REDACTED}@`) : text;
}
