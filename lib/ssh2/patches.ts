/**
 * Decides, once per process, which repairs of ssh2 run.
 *
 * Each repair relies on private fields and behaviour of one ssh2 version.
 * Every one of them checks that the installed ssh2 is the pinned version
 * (./guard.ts) and passes a behavioural self-test on ssh2's own code; one
 * that does not stays off, and a warning says which are off and why. The
 * connection's repairs (ciphers, rekey queue) are decided before the first
 * connection ({@linkcode preparePatches}); SFTP's before the first SFTP
 * channel opens ({@linkcode prepareSftpPatches}): their self-tests are most
 * of the CPU the decision costs (~0.15 s), and a process that only runs
 * commands never needs them. A version mismatch is known at once and turns
 * all of them off, in the one warning of the first decision. With all of
 * them off, ssh2 runs as published: slower, leaking memory per
 * chacha20-poly1305 packet under Deno, and losing the whole connection when
 * login output that starts with a non-ASCII byte precedes SFTP; otherwise
 * correct.
 *
 * @module
 */

import "./chacha_fix.ts"; // before any ssh2 module loads
import { Buffer } from "node:buffer";
// @ts-types="./ssh2_crypto.d.ts"
import ssh2Crypto from "ssh2/lib/protocol/crypto.js";
import type { Logger } from "../log.ts";
import { enableLeakFix, leakFixSelfTest } from "./chacha_fix.ts";
import { fastDecipherSelfTest, isSsh2Chacha, prepareFastDecipher } from "./chacha_decipher.ts";
import { fastCipherSelfTest } from "./chacha_cipher.ts";
import { rekeyFixSelfTest } from "./rekey_fix.ts";
import { sftpFixSelfTest } from "./sftp_fix.ts";
import { sftpReadSelfTest, sftpWriteSelfTest } from "./sftp_alloc.ts";
import { ssh2VersionProblem } from "./guard.ts";

/** Which repairs of a connection (its ciphers and rekey queue) are on in this process. */
export interface PatchStatus {
  /** chacha20 ciphers are finished after their one update (./chacha_fix.ts). */
  leakFix: boolean;
  /** Packets queued during a rekey keep their payload (./rekey_fix.ts). */
  rekeyFix: boolean;
  /** Inbound chacha20-poly1305 uses ./chacha_decipher.ts, and MAC failures are marked. */
  fastDecipher: boolean;
  /** The socket lends its read buffer to a decipher that keeps nothing (needs `fastDecipher`). */
  socketLending: boolean;
  /** Outbound chacha20-poly1305 uses ./chacha_cipher.ts: one allocation and one write per packet. */
  fastCipher: boolean;
}

/** Which repairs of ssh2's SFTP channel are on in this process. */
export interface SftpPatchStatus {
  /** An SFTP channel whose first packet is not VERSION fails alone, not the connection (./sftp_fix.ts). */
  sftpFix: boolean;
  /** SFTP writes send the caller's data without copying it into a request buffer (./sftp_alloc.ts). */
  sftpWrite: boolean;
  /** SFTP read answers are copied straight into the read's buffer as they arrive (./sftp_alloc.ts). */
  sftpRead: boolean;
}

const NAMES: Record<keyof PatchStatus | keyof SftpPatchStatus, string> = {
  leakFix: "chacha20 leak fix",
  rekeyFix: "rekey queue fix",
  fastDecipher: "fast chacha20-poly1305 decipher",
  socketLending: "socket buffer lending",
  fastCipher: "fast chacha20-poly1305 cipher",
  sftpFix: "SFTP first-packet check",
  sftpWrite: "copy-free SFTP write",
  sftpRead: "streaming SFTP read answers",
};

/** What one decision found: the status, and each repair left off with why. */
interface Decision<T> {
  status: T;
  off: string[];
}

let decided: Promise<PatchStatus> | null = null;
let sftpDecided: Promise<SftpPatchStatus> | null = null;

/**
 * Checks the ssh2 version and runs the self-test of every repair of a
 * connection, the first time only; later calls get the same answer. Logs at
 * most one warning, naming each repair left off and why (with a version
 * mismatch: every repair, SFTP's included). Never rejects.
 */
export function preparePatches(logger: Logger): Promise<PatchStatus> {
  return decided ??= decide().then((decision) => told(decision, logger));
}

/**
 * The same for SFTP's repairs, once the connection's are decided; call it
 * before the first SFTP channel opens. Logs its own warning only for a
 * self-test that failed: a version mismatch was told by
 * {@linkcode preparePatches}. Never rejects.
 */
export function prepareSftpPatches(logger: Logger): Promise<SftpPatchStatus> {
  return sftpDecided ??= preparePatches(logger).then(() => told(decideSftp(), logger));
}

function told<T>({ status, off }: Decision<T>, logger: Logger): T {
  if (off.length > 0) {
    logger.warn(
      `ssh2 repairs off, using ssh2's own code instead: ${off.join("; ")}. ` +
        "Connections work, but may be slower, leak memory per chacha20-poly1305 packet under Deno, " +
        "and be lost when an account's login files print text before SFTP starts",
    );
  }
  return status;
}

async function decide(): Promise<Decision<PatchStatus>> {
  const status: PatchStatus = {
    leakFix: false,
    rekeyFix: false,
    fastDecipher: false,
    socketLending: false,
    fastCipher: false,
  };
  const version = ssh2VersionProblem();
  if (version !== null) {
    return { status, off: [`${Object.values(NAMES).join(", ")}: ${version}`] };
  }
  const off: string[] = [];
  const failed = (name: keyof PatchStatus, why: string) => off.push(`${NAMES[name]}: ${why}`);

  enableLeakFix(true);
  const leak = leakFixSelfTest() ?? await ssh2ChachaRoundTrip().then((r) => r.problem);
  if (leak === null) status.leakFix = true;
  else {
    enableLeakFix(false);
    failed("leakFix", leak);
  }

  const rekey = rekeyFixSelfTest();
  if (rekey === null) status.rekeyFix = true;
  else failed("rekeyFix", rekey);

  await prepareFastDecipher();
  const { decipher } = await ssh2ChachaRoundTrip();
  const fast = fastDecipherSelfTest() ??
    (isSsh2Chacha(decipher) ? null : "ssh2's chacha20-poly1305 decipher is not the shape it replaces");
  if (fast === null) status.fastDecipher = status.socketLending = true;
  else {
    failed("fastDecipher", fast);
    failed("socketLending", `needs the ${NAMES.fastDecipher}`);
  }

  // After the decipher's known-answer test: both use its wasm Poly1305 and block function.
  const seal = fast === null ? await fastCipherSelfTest() : `needs the ${NAMES.fastDecipher}`;
  if (seal === null) status.fastCipher = true;
  else failed("fastCipher", seal);
  return { status, off };
}

/** SFTP's repairs: all off without a word when the version differs (already told). */
function decideSftp(): Decision<SftpPatchStatus> {
  const status: SftpPatchStatus = { sftpFix: false, sftpWrite: false, sftpRead: false };
  if (ssh2VersionProblem() !== null) return { status, off: [] };
  const off: string[] = [];
  const failed = (name: keyof SftpPatchStatus, why: string) => off.push(`${NAMES[name]}: ${why}`);

  const sftp = sftpFixSelfTest();
  if (sftp === null) status.sftpFix = true;
  else failed("sftpFix", sftp);

  const write = sftpWriteSelfTest();
  if (write === null) status.sftpWrite = true;
  else failed("sftpWrite", write);

  // After the SFTP first-packet check: this wraps the push() that one repaired.
  const read = sftpReadSelfTest();
  if (read === null) status.sftpRead = true;
  else failed("sftpRead", read);
  return { status, off };
}

/**
 * Seals two packets with ssh2's own chacha20-poly1305 cipher and opens them
 * with its own decipher, as the two ends of a connection would: with the
 * leak fix on, this fails if ssh2 updates one chacha20 cipher twice.
 * Returns the decipher, for its shape, and why it failed, or null.
 */
async function ssh2ChachaRoundTrip(): Promise<{ problem: string | null; decipher: unknown }> {
  let decipher: unknown = undefined;
  try {
    await ssh2Crypto.init;
    const info = ssh2Crypto.CIPHER_INFO["chacha20-poly1305@openssh.com"];
    const key = Buffer.from(Uint8Array.from({ length: 64 }, (_, i) => i));
    const sealed: Buffer[] = [];
    const opened: string[] = [];
    const cipher = ssh2Crypto.createCipher({
      outbound: { onWrite: (b: Buffer) => sealed.push(Buffer.from(b)), cipherInfo: info, cipherKey: key, seqno: 0 },
    });
    decipher = ssh2Crypto.createDecipher({
      inbound: {
        onPayload: (p: Buffer) => void opened.push(p.toString()),
        decipherInfo: info,
        decipherKey: key,
        seqno: 0,
      },
    });
    const payloads = ["mcp-remote-ssh self-test one", "and two"];
    for (const text of payloads) {
      const packet = cipher.allocPacket(text.length);
      packet.write(text, 5);
      cipher.encrypt(packet);
    }
    const wire = Buffer.concat(sealed);
    (decipher as { decrypt(d: Buffer, p: number, l: number): unknown }).decrypt(wire, 0, wire.length);
    const same = opened.length === payloads.length && opened.every((t, i) => t === payloads[i]);
    return { problem: same ? null : "ssh2's chacha20-poly1305 did not round-trip two packets", decipher };
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    return { problem: `ssh2's chacha20-poly1305 failed a round trip: ${why}`, decipher };
  }
}
