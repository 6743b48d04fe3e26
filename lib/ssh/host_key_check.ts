/**
 * Deciding whether to trust a server's host key, and recording new ones
 * under accept-new without letting two racing first connects trust two keys.
 * Under strict, an unknown key may be put to the human (see ./prompts.ts);
 * a changed or revoked key never is.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { SshMcpError } from "../errors.ts";
import type { Logger } from "../log.ts";
import {
  appendKnownHost,
  checkHostKey,
  fingerprintSha256,
  formatKnownHostsLine,
  type HostKeyVerdict,
  keyTypeOf,
  type KnownHostsEntry,
  loadKnownHosts,
} from "./known_hosts.ts";
import type { ConnectPrompts } from "./prompts.ts";

/** What to do with a host key that known_hosts does not list. */
export type HostKeyPolicy = "strict" | "accept-new";

/** Where known hosts come from and where new ones go. */
export interface KnownHostsConfig {
  /** Files read in order (OpenSSH format). Missing ones are skipped. */
  files: string[];
  /** File that accept-new (and a user's "record" answer) appends to. */
  writeFile: string;
  /** strict refuses unknown keys; accept-new records them. Changed keys are always refused. */
  policy: HostKeyPolicy;
  /**
   * True: nothing is ever written; a key accept-new would record is accepted without it, marked
   * `unverified` so that no credential follows (the doctor reports it as one that would be recorded).
   * @default false
   */
  readOnly?: boolean;
}

/** A host key that was accepted. */
export interface AcceptedHostKey {
  type: string;
  fingerprint: string;
  /** True when it was recorded just now (accept-new, or the user answered "record"). */
  added: boolean;
  /**
   * True: a key accept-new would record, accepted for a look only (`readOnly`) and neither recorded nor
   * verified. ssh_connect sends a credential only once the key is recorded; so no credential may follow.
   */
  unverified?: boolean;
}

/** The host being checked. */
export interface HostKeyTarget {
  host: string;
  port: number;
  knownHosts: KnownHostsConfig;
  logger: Logger;
  /** Asks the human about an unknown key under strict; absent: refused as HOST_KEY_UNKNOWN. */
  ask?: ConnectPrompts;
  /**
   * The `SHA256:…` fingerprint the user expects: any other key is HOST_KEY_MISMATCH, known or not. It
   * adds a check and never trusts a key by itself.
   */
  expectedFingerprint?: string;
}

const FINGERPRINT = /^SHA256:([A-Za-z0-9+/]{43})=?$/;

/**
 * A `SHA256:…` fingerprint as {@linkcode fingerprintSha256} writes it (base64 without padding), or
 * INVALID_ARGUMENT. A trailing `=` is accepted and dropped.
 *
 * @param value What the user gave.
 * @returns The fingerprint in the form this module compares.
 */
export function parseFingerprint(value: string): string {
  const m = FINGERPRINT.exec(value.trim());
  if (m === null) {
    throw new SshMcpError("INVALID_ARGUMENT", `Invalid host key fingerprint ${JSON.stringify(value.slice(0, 80))}`, {
      hint: "Give it as ssh-keygen -lf prints it: SHA256: followed by 43 base64 characters",
    });
  }
  return `SHA256:${m[1]}`;
}

/**
 * Accepts `key` for the target or throws HOST_KEY_UNKNOWN, HOST_KEY_MISMATCH,
 * HOST_KEY_REVOKED or KNOWN_HOSTS_WRITE_FAILED, each with the fingerprints
 * and what to do.
 */
export async function verifyHostKey(
  target: HostKeyTarget,
  entries: KnownHostsEntry[],
  key: Uint8Array,
): Promise<AcceptedHostKey> {
  const { host, port } = target;
  const type = keyTypeOf(key);
  const fingerprint = fingerprintSha256(key);
  const expected = target.expectedFingerprint === undefined ? undefined : parseFingerprint(target.expectedFingerprint);
  if (expected !== undefined && expected !== fingerprint) {
    throw new SshMcpError(
      "HOST_KEY_MISMATCH",
      `Host key of ${host}:${port} is not the one given: server presented ${type} ${fingerprint}, expected ${expected}`,
      {
        hint: "This may be an attack (man in the middle), a reinstalled server or a mistyped fingerprint. " +
          "Verify the fingerprint out of band before connecting again",
      },
    );
  }
  const verdict = checkHostKey(entries, { host, port, keyType: type, key });
  if (verdict.kind !== "unknown") return judge(target, verdict, type, fingerprint);
  const line = formatKnownHostsLine({ host, port, key });
  if (target.knownHosts.policy === "strict") {
    const given = expected === undefined ? "" : " (it matches the fingerprint given)";
    if (target.ask === undefined) {
      throw new SshMcpError(
        "HOST_KEY_UNKNOWN",
        `Host ${host}:${port} is not in known_hosts; it presented ${type} ${fingerprint}${given}`,
        {
          hint: `Verify this fingerprint with the host's administrator (ssh-keygen -lf on the server's host key), ` +
            `then trust it by appending this line to ${target.knownHosts.writeFile}: ${line} ` +
            `(or start the server with --host-key-policy accept-new)`,
        },
      );
    }
    const canRecord = canWrite(target.knownHosts.writeFile);
    const answer = await target.ask.unknownHostKey({
      host,
      port,
      keyType: type,
      fingerprint,
      canRecord,
      matchesExpected: expected !== undefined,
    }).catch((cause: unknown) => {
      if (cause instanceof SshMcpError) throw cause;
      throw new SshMcpError(
        "HOST_KEY_UNKNOWN",
        `Host ${host}:${port} is not in known_hosts (it presented ${type} ${fingerprint}) and the user could not be asked`,
        { hint: "The question to the MCP client failed; try again, or trust the key in known_hosts", cause },
      );
    });
    if (answer === "refuse") {
      throw new SshMcpError(
        "HOST_KEY_UNKNOWN",
        `Host ${host}:${port} is not in known_hosts and the user refused its key ${type} ${fingerprint}${given}`,
        {
          hint: "The user did not trust this host key; do not retry unless the user asks to. " +
            `To trust it for good, append this line to ${target.knownHosts.writeFile}: ${line}`,
        },
      );
    }
    if (answer === "once" || !canRecord) {
      target.logger.info(`Trusted ${hostLabel(host, port)} ${type} ${fingerprint} for this connection (user's answer)`);
      return { type, fingerprint, added: false };
    }
  }
  if (target.knownHosts.readOnly === true) return { type, fingerprint, added: false, unverified: true };
  // Another connect may have recorded a key for this host since we read the
  // files: look again under the file lock and write only if still unknown.
  let raced: HostKeyVerdict | null = null;
  try {
    await appendKnownHost(target.knownHosts.writeFile, line, {
      onlyIf: async () => {
        const fresh = await loadKnownHosts(target.knownHosts.files);
        const now = checkHostKey(fresh.entries, { host, port, keyType: type, key });
        if (now.kind === "unknown") return true;
        raced = now;
        return false;
      },
    });
  } catch (error) {
    throw new SshMcpError(
      "KNOWN_HOSTS_WRITE_FAILED",
      `Cannot record host key of ${host}:${port} in ${target.knownHosts.writeFile}`,
      { hint: "Check that the file and its directory are writable", cause: error },
    );
  }
  if (raced !== null) return judge(target, raced, type, fingerprint);
  target.logger.info(`Added ${hostLabel(host, port)} ${type} ${fingerprint} to ${target.knownHosts.writeFile}`);
  return { type, fingerprint, added: true };
}

function judge(target: HostKeyTarget, verdict: HostKeyVerdict, type: string, fingerprint: string): AcceptedHostKey {
  const { host, port } = target;
  switch (verdict.kind) {
    case "match":
      return { type, fingerprint, added: false };
    case "revoked":
      throw new SshMcpError(
        "HOST_KEY_REVOKED",
        `Host key ${type} ${fingerprint} of ${host}:${port} is marked @revoked in ${verdict.entry.file} line ${verdict.entry.line}`,
        { hint: "Do not connect; the key was revoked on purpose. Ask the host's administrator" },
      );
    case "mismatch": {
      const expected = verdict.expected
        .map((e) => `${e.keyType} ${fingerprintOfBase64(e.keyBase64)} (${e.file} line ${e.line})`)
        .join("; ");
      throw new SshMcpError(
        "HOST_KEY_MISMATCH",
        `Host key of ${host}:${port} does not match known_hosts: server presented ${type} ${fingerprint}, expected ${expected}`,
        {
          hint:
            "This may be an attack (man in the middle) or a reinstalled server. Verify the new fingerprint out of band; " +
            `only then remove the old line (ssh-keygen -R '${hostLabel(host, port)}') and connect again`,
        },
      );
    }
    case "unknown":
      throw new SshMcpError("INTERNAL", "Host key verdict was unknown after the check");
  }
}

/** Whether this process may write `path` (main.ts drops the permission when nothing needs it). */
function canWrite(path: string): boolean {
  return Deno.permissions.querySync({ name: "write", path }).state === "granted";
}

/** OpenSSH's name for a host in messages: `host`, or `[host]:port` off port 22. */
export function hostLabel(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function fingerprintOfBase64(b64: string): string {
  return fingerprintSha256(new Uint8Array(Buffer.from(b64, "base64")));
}
