/**
 * Loading private keys with errors an agent can act on, and finding an
 * identity file's public key without its passphrase (to match it with the
 * keys an ssh-agent holds).
 *
 * ssh2 reports every parse failure as a plain Error; we tell "needs a
 * passphrase" from "wrong passphrase" by looking at the key's own header
 * (is it encrypted?) rather than at ssh2's message text.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { loadSsh2, type ParsedKey, parseKey } from "../ssh2/mod.ts";
import { SshMcpError } from "../errors.ts";
import { BoundedReadError, ONE_MIB, readBoundedFile } from "../read_bounded.ts";

// An RSA 16384-bit key in PEM is under 13 KiB; anything near this is not a key.
const MAX_KEY_FILE_BYTES = ONE_MIB;
// OpenSSH's default is 16 and ssh-keygen(1) suggests 100 for more strength;
// the cost grows linearly and blocks the whole server (see bcryptRounds()).
const MAX_BCRYPT_ROUNDS = 128;

/** A private key ready for ssh2, with nothing secret about it exposed. */
export interface LoadedKey {
  /** The parsed key object ssh2 accepts. */
  parsed: ParsedKey;
  /** Key type such as `ssh-ed25519`. */
  type: string;
}

/**
 * Reads and decrypts a private key file. Never includes key material or the passphrase in errors.
 * Anything but a regular file of at most 1 MiB is refused before it is read
 * (a FIFO would block, `/dev/zero` would never end); `signal` ends the wait.
 */
export async function loadPrivateKey(path: string, passphrase?: string, signal?: AbortSignal): Promise<LoadedKey> {
  await loadSsh2(); // its key parser; loaded at first use
  let data: Uint8Array;
  try {
    data = await readBoundedFile(path, { maxBytes: MAX_KEY_FILE_BYTES, signal });
  } catch (error) {
    if (!(error instanceof BoundedReadError)) throw error;
    throw new SshMcpError("KEY_UNREADABLE", `Cannot read private key ${path}: ${error.message}`, {
      hint: "Check private_key_path; it must be a private key file readable by this server",
      cause: error,
    });
  }
  const text = new TextDecoder().decode(data);
  const encrypted = isEncrypted(text);
  if (encrypted && !passphrase) {
    throw new SshMcpError("KEY_PASSPHRASE_REQUIRED", `Private key ${path} is encrypted`, {
      hint: "Pass its passphrase in `passphrase`, or use an ssh-agent that holds the key",
    });
  }
  const rounds = encrypted ? bcryptRounds(text) : null;
  if (encrypted && opensshBody(text) !== null && rounds === null) {
    // Encrypted as ssh2 reads it, but its bcrypt rounds cannot be read: they could be 2^32.
    throw new SshMcpError("KEY_UNREADABLE", `Private key ${path} is encrypted and its bcrypt header is unreadable`, {
      hint: "Use a key written by ssh-keygen, or load it into ssh-agent",
    });
  }
  if (rounds !== null && rounds > MAX_BCRYPT_ROUNDS) {
    throw new SshMcpError(
      "KEY_UNREADABLE",
      `Private key ${path} is encrypted with ${rounds} bcrypt rounds; at most ${MAX_BCRYPT_ROUNDS} are accepted`,
      {
        hint: "Decrypting it would stop this server for every session while it runs: re-encrypt it with fewer " +
          `rounds (ssh-keygen -p -a ${MAX_BCRYPT_ROUNDS} -f <key>), or load it into ssh-agent`,
      },
    );
  }
  const result = parseKey(data, encrypted ? passphrase : undefined);
  const key = Array.isArray(result) ? result[0] : result;
  if (key instanceof Error || key === undefined) {
    if (encrypted) {
      throw new SshMcpError("KEY_PASSPHRASE_WRONG", `Cannot decrypt private key ${path}: wrong passphrase`, {
        hint: "Check the passphrase; nothing was sent to the server",
      });
    }
    throw new SshMcpError("KEY_UNREADABLE", `Cannot parse private key ${path}: unsupported or corrupt key format`, {
      hint: "Use an OpenSSH, PEM or PuTTY private key file",
    });
  }
  if (!key.isPrivateKey()) {
    throw new SshMcpError("KEY_UNREADABLE", `File ${path} holds a public key, not a private key`, {
      hint: "Point private_key_path at the private half (without .pub)",
    });
  }
  return { parsed: key, type: key.type };
}

/** The public half of an identity file, found without decrypting anything. */
export interface IdentityPublicKey {
  /** The key in SSH wire format, as an ssh-agent lists it. */
  parsed: ParsedKey;
  /** The file it was read from: the identity file itself or its `.pub`. */
  from: string;
}

/**
 * The public key of identity file `path`, found where ssh finds it (sshkey_load_public): the file itself when
 * it is a public key line, else `path.pub`, else the public key an OpenSSH private key file carries in clear
 * (also when encrypted), else the public half of an unencrypted private key. Null when none of these gives it
 * (an encrypted PEM or PuTTY key without a `.pub`). Never decrypts, never needs a passphrase.
 *
 * @param path The identity file.
 * @param signal Ends the reads.
 * @returns The public key, or null when it cannot be known without the passphrase.
 * @throws {SshMcpError} KEY_UNREADABLE when neither `path` nor `path.pub` can be read (a BoundedReadError
 *   with problem "not-found" as cause when neither exists).
 */
export async function loadPublicKey(path: string, signal?: AbortSignal): Promise<IdentityPublicKey | null> {
  await loadSsh2(); // its key parser; loaded at first use
  const own = await readKeyFile(path, signal);
  const ownKey = own instanceof Uint8Array ? onePublic(own) : null;
  if (ownKey !== null) return { parsed: ownKey, from: path };
  const pub = await readKeyFile(`${path}.pub`, signal);
  const pubKey = pub instanceof Uint8Array ? onePublic(pub) : null;
  if (pubKey !== null) return { parsed: pubKey, from: `${path}.pub` };
  if (!(own instanceof Uint8Array)) {
    // Neither file: the identity file's own problem is the one to report.
    throw new SshMcpError("KEY_UNREADABLE", `Cannot read identity file ${path}: ${own.message}`, {
      hint: "Check the IdentityFile path; it must be a key file readable by this server",
      cause: own,
    });
  }
  const text = new TextDecoder().decode(own);
  const clear = opensshPublicBlob(text);
  if (clear !== null) {
    const key = onePublic(clear);
    return key === null ? null : { parsed: key, from: path };
  }
  if (isEncrypted(text)) return null;
  const result = parseKey(own);
  const key = Array.isArray(result) ? result[0] : result;
  if (key instanceof Error || key === undefined) return null;
  // ssh2's parsed private key gives its public half in wire format; reparsed, it is a public key only.
  return { parsed: onePublic(key.getPublicSSH()) ?? key, from: path };
}

/** A key file's bytes, or why they cannot be read (a missing file is not an error here). */
async function readKeyFile(path: string, signal?: AbortSignal): Promise<Uint8Array | BoundedReadError> {
  try {
    return await readBoundedFile(path, { maxBytes: MAX_KEY_FILE_BYTES, signal });
  } catch (error) {
    if (error instanceof BoundedReadError) return error;
    throw error;
  }
}

/** The one public key in `data` (a public key line or an SSH wire-format blob), or null. */
function onePublic(data: Uint8Array): ParsedKey | null {
  const result = parseKey(data);
  const key = Array.isArray(result) ? result[0] : result;
  if (key instanceof Error || key === undefined || key.isPrivateKey()) return null;
  return key;
}

/**
 * The first public key blob of an OpenSSH private key file, which the format keeps unencrypted before the
 * encrypted private part: ssh offers such a key to the server (or matches it with the agent) before asking
 * for its passphrase. Null for other formats or a malformed header.
 */
function opensshPublicBlob(text: string): Uint8Array | null {
  const bin = opensshBody(text);
  if (bin === null) return null;
  const magic = "openssh-key-v1\0";
  if (bin.length < magic.length || bin.toString("latin1", 0, magic.length) !== magic) return null;
  // string ciphername, string kdfname, string kdfoptions, uint32 number of keys, string publickey
  let pos = magic.length;
  for (let i = 0; i < 3; i++) {
    if (pos + 4 > bin.length) return null;
    pos += 4 + bin.readUInt32BE(pos);
  }
  if (pos + 8 > bin.length || bin.readUInt32BE(pos) < 1) return null;
  pos += 4;
  const len = bin.readUInt32BE(pos);
  if (pos + 4 + len > bin.length) return null;
  return new Uint8Array(bin.subarray(pos + 4, pos + 4 + len));
}

/**
 * The bcrypt rounds of an encrypted OpenSSH key, or null for other formats.
 * ssh2 runs bcrypt_pbkdf in JavaScript on the event loop, and the file
 * chooses the rounds (a uint32): measured 1.4 s for OpenSSH's default 16
 * and 16.5 s for 256 on a loaded 2-core machine, during which no other
 * session is served. Keys beyond the cap are refused before decrypting.
 */
export function bcryptRounds(text: string): number | null {
  const bin = opensshBody(text);
  if (bin === null) return null;
  const magic = "openssh-key-v1\0";
  if (bin.length < magic.length || bin.toString("latin1", 0, magic.length) !== magic) return null;
  // string ciphername, string kdfname, string kdfoptions (string salt, uint32 rounds)
  let pos = magic.length;
  const field = (): Buffer | null => {
    if (pos + 4 > bin.length) return null;
    const len = bin.readUInt32BE(pos);
    if (pos + 4 + len > bin.length) return null;
    const value = bin.subarray(pos + 4, pos + 4 + len);
    pos += 4 + len;
    return value;
  };
  const cipher = field();
  const kdf = field();
  const options = field();
  if (cipher === null || kdf === null || options === null || kdf.toString("latin1") !== "bcrypt") return null;
  if (options.length < 4) return null;
  const saltLen = options.readUInt32BE(0);
  if (4 + saltLen + 4 > options.length) return null;
  return options.readUInt32BE(4 + saltLen);
}

// ssh2's own pattern for an OpenSSH key (lib/protocol/keyParser.js), applied as it applies it: to the
// trimmed text, from the first BEGIN line to the last END line, base64 decoded as is. Reading the key
// any other way (e.g. the first BEGIN..END block only) lets a file show us one header and ssh2 another.
const OPENSSH_KEY =
  /^-----BEGIN OPENSSH PRIVATE KEY-----(?:\r\n|\n)([\s\S]+)(?:\r\n|\n)-----END OPENSSH PRIVATE KEY-----$/;

/** The decoded body of an OpenSSH private key exactly as ssh2 will see it, or null if ssh2 will not parse it so. */
export function opensshBody(text: string): Buffer | null {
  const m = OPENSSH_KEY.exec(text.trim());
  return m === null ? null : Buffer.from(m[1], "base64");
}

/** Whether a private key file's text says it is encrypted. */
export function isEncrypted(text: string): boolean {
  if (/^Proc-Type:\s*4,ENCRYPTED/m.test(text)) return true; // legacy PEM
  if (text.includes("-----BEGIN ENCRYPTED PRIVATE KEY-----")) return true; // PKCS#8
  if (/^Encryption:\s*(?!none)\S+/m.test(text)) return true; // PuTTY
  const bin = opensshBody(text);
  if (bin === null) return false;
  const magic = "openssh-key-v1\0";
  if (bin.length < magic.length + 4 || bin.toString("latin1", 0, magic.length) !== magic) {
    return false;
  }
  const len = bin.readUInt32BE(magic.length);
  const cipher = bin.toString("latin1", magic.length + 4, magic.length + 4 + len);
  return cipher !== "none";
}
