/**
 * The audit log: one JSON line per tool call, secrets redacted, hash-chained,
 * rotated by size, failing closed; and the `verify-audit FILE` subcommand
 * that checks its chain.
 *
 * ```ts
 * await using log = await AuditLog.open({ path: "/var/log/mcp-remote-ssh/audit.jsonl" });
 * await log.append({ startedAt, durationMs, transportSession: "stdio", tool, arguments: args, outcome: "ok" });
 * ```
 *
 * The chain finds a changed byte at its own line and a removed, reordered or
 * inserted record at the next one; it does not stop someone who can write the
 * file from rewriting it and recomputing every hash, nor show records cut off
 * its end. See `log.ts` for writing, failure, rotation and those limits; `record.ts` for the line format; `redact.ts` for what is kept of
 * arguments; `verify.ts` for the check.
 *
 * @module
 */

export { AuditLog, type AuditOptions } from "./log.ts";
export { type AuditEntry, GENESIS } from "./record.ts";
export {
  type ArgumentsDigest,
  type DataDigest,
  MAX_ARGUMENTS_BYTES,
  MAX_KEPT_STRING_BYTES,
  redactArguments,
  REDACTED,
} from "./redact.ts";
export { auditFiles, type LinePlace, verifyAudit, verifyAuditMain, type VerifyResult } from "./verify.ts";
