/**
 * The pure half of ssh_execute_many: what a target string means, and how
 * per-host results are grouped and summarised. No I/O here; the tool
 * (tools/fanout.ts) connects and runs.
 *
 * Hosts whose outcome is the same (exit status, error code, and byte-equal
 * output) form one group, so fifty hosts that agree cost one line and one
 * copy of their output in the text, and the few that differ stand out.
 *
 * @module
 */

import { hostProblem, userProblem } from "./validate.ts";

/** A target as given: an open session, or a host to open a temporary connection to. */
export type FanoutTarget =
  | { kind: "session"; sessionId: string }
  | { kind: "host"; host: string; port?: number; username?: string };

// What SessionRegistry hands out: "s-" and 16 hex digits. Such a string is a
// session id, never a host name, whatever a DNS zone might hold.
const SESSION_ID = /^s-[0-9a-f]{16}$/;

/**
 * Reads a target: a session id, or `[user@]host[:port]` (an IPv6 address
 * with a port in brackets, `[::1]:22`), where host may be an ssh_config alias.
 * Throws a RangeError saying what is wrong; {@linkcode targetProblem} returns it.
 *
 * @example
 * ```ts
 * parseTarget("deploy@web1:2222"); // { kind: "host", host: "web1", port: 2222, username: "deploy" }
 * ```
 */
export function parseTarget(target: string): FanoutTarget {
  if (SESSION_ID.test(target)) return { kind: "session", sessionId: target };
  // The last "@", as ssh(1) splits a destination: a user name cannot hold one anyway.
  const at = target.lastIndexOf("@");
  const username = at < 0 ? undefined : target.slice(0, at);
  const rest = at < 0 ? target : target.slice(at + 1);
  if (username !== undefined) {
    const why = userProblem(username);
    if (why !== null) throw new RangeError(`target ${JSON.stringify(target)}: ${why}`);
  }
  const bracketed = /^\[([^\]]*)\](?::(\d{1,5}))?$/.exec(rest);
  const withPort = bracketed === null ? /^([^:]+):(\d{1,5})$/.exec(rest) : null;
  const host = bracketed?.[1] ?? withPort?.[1] ?? rest;
  const portText = bracketed?.[2] ?? withPort?.[2];
  const why = hostProblem(host);
  if (why !== null) throw new RangeError(`target ${JSON.stringify(target)}: ${why}`);
  const port = portText === undefined ? undefined : Number(portText);
  if (port !== undefined && (port < 1 || port > 65535)) {
    throw new RangeError(`target ${JSON.stringify(target)}: port must be 1 to 65535`);
  }
  return {
    kind: "host",
    host,
    ...(port === undefined ? {} : { port }),
    ...(username === undefined ? {} : { username }),
  };
}

/** Why `target` is not a usable target, or null. */
export function targetProblem(target: string): string | null {
  try {
    parseTarget(target);
    return null;
  } catch (error) {
    if (error instanceof RangeError) return error.message;
    throw error;
  }
}

/** `user@host:port`, an IPv6 address in brackets. */
export function hostLabel(username: string, host: string, port: number): string {
  return `${username}@${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** One host's outcome, as the tool's structured result carries it. */
export interface HostResult {
  /** The target as given. */
  target: string;
  /** `user@host:port`. */
  host: string;
  /** The session the command ran on, when it ran on one the caller can still use (a session target or a reused one). */
  session_id?: string;
  /** True when a host target ran on an already open session to the same user@host:port. */
  reused_session?: boolean;
  exit_code: number | null;
  signal: string | null;
  timed_out: boolean;
  stdout: string;
  stderr: string;
  /** Either stream exceeded the cap; head and tail are kept. */
  truncated: boolean;
  stdout_bytes: number;
  stderr_bytes: number;
  /** When truncated on a session that stays open: the whole output, by ssh_output_read. */
  output_id?: string;
  duration_ms: number;
  /** Set when the host failed: the error's code (`COMMAND_TIMEOUT` for a command past its timeout). */
  error_code?: string;
  error?: string;
}

/** Hosts with the same outcome. */
export interface ResultGroup {
  /** Targets in the order they were given. */
  targets: string[];
  exit_code: number | null;
  signal?: string;
  error_code?: string;
  /** Always true: every member printed the same bytes (the text shows them once). */
  same_output: true;
}

/** How many hosts ended how. */
export interface ResultCounts {
  hosts: number;
  /** Exit 0, no error. */
  ok: number;
  /** Ran to the end with a non-zero exit or a signal. */
  nonzero: number;
  /** An error: never connected, never ran, or ran past its timeout. */
  failed: number;
}

// Everything that makes two outcomes different; the byte totals too, since two
// cut outputs can agree on head and tail and differ in between.
function outcomeKey(r: HostResult): string {
  return JSON.stringify([
    r.exit_code,
    r.signal,
    r.error_code ?? null,
    r.stdout,
    r.stderr,
    r.stdout_bytes,
    r.stderr_bytes,
  ]);
}

/**
 * Groups `results` by outcome: largest group first, ties in the order their
 * first member was given; successful runs before failures.
 */
export function groupResults(results: readonly HostResult[]): { group: ResultGroup; first: HostResult }[] {
  const byKey = new Map<string, { group: ResultGroup; first: HostResult; index: number }>();
  results.forEach((r, index) => {
    const key = outcomeKey(r);
    const found = byKey.get(key);
    if (found !== undefined) {
      found.group.targets.push(r.target);
      return;
    }
    const group: ResultGroup = {
      targets: [r.target],
      exit_code: r.exit_code,
      ...(r.signal === null ? {} : { signal: r.signal }),
      ...(r.error_code === undefined ? {} : { error_code: r.error_code }),
      same_output: true,
    };
    byKey.set(key, { group, first: r, index });
  });
  const failed = (g: ResultGroup) => g.error_code !== undefined ? 1 : 0;
  return [...byKey.values()]
    .sort((a, b) =>
      failed(a.group) - failed(b.group) || b.group.targets.length - a.group.targets.length || a.index - b.index
    )
    .map(({ group, first }) => ({ group, first }));
}

/** Counts of `results` by how they ended. */
export function countResults(results: readonly HostResult[]): ResultCounts {
  let ok = 0, nonzero = 0, failed = 0;
  for (const r of results) {
    if (r.error_code !== undefined) failed++;
    else if (r.exit_code === 0) ok++;
    else nonzero++;
  }
  return { hosts: results.length, ok, nonzero, failed };
}

/**
 * The compact text of a fan-out: one line of counts, then each group of
 * successful runs with its output once, then failures by error code.
 *
 * @example
 * ```
 * 20 hosts: 18 ok, 2 failed (1.2 s)
 * 18 hosts, exit 0, same output: web1, web2, …
 * --- stdout (3 bytes) ---
 * ok
 * CONNECT_REFUSED: db3
 * ```
 */
export function summarise(results: readonly HostResult[], durationMs: number): string {
  const c = countResults(results);
  const parts = [`${c.ok} ok`];
  if (c.nonzero > 0) parts.push(`${c.nonzero} non-zero exit`);
  if (c.failed > 0) parts.push(`${c.failed} failed`);
  const lines = [`${plural(c.hosts, "host")}: ${parts.join(", ")} (${(durationMs / 1000).toFixed(1)} s)`];
  for (const { group, first } of groupResults(results)) {
    const names = group.targets.join(", ");
    if (group.error_code !== undefined) {
      lines.push(`${group.error_code}: ${names}`);
      if (first.error) lines.push(`  ${first.error}${group.targets.length > 1 ? " (first of them)" : ""}`);
    } else {
      const status = first.signal !== null
        ? `killed by ${first.signal}`
        : first.exit_code === null
        ? "no exit status"
        : `exit ${first.exit_code}`;
      const same = group.targets.length > 1 ? ", same output" : "";
      lines.push(`${plural(group.targets.length, "host")}, ${status}${same}: ${names}`);
    }
    lines.push(...outputLines(first));
  }
  const reused = results.filter((r) => r.reused_session === true);
  if (reused.length > 0) {
    lines.push(`Ran on open sessions: ${reused.map((r) => `${r.target} (${r.session_id})`).join(", ")}`);
  }
  const kept = results.filter((r) => r.output_id !== undefined);
  if (kept.length > 0) {
    lines.push(
      `Whole output (ssh_output_read): ${kept.map((r) => `${r.target} ${r.session_id} ${r.output_id}`).join(", ")}`,
    );
  }
  return lines.join("\n");
}

function outputLines(r: HostResult): string[] {
  const out: string[] = [];
  const cut = r.truncated ? ", cut: head and tail kept" : "";
  if (r.stdout) out.push(`--- stdout (${r.stdout_bytes} bytes${cut}) ---`, trimNewline(r.stdout));
  if (r.stderr) out.push(`--- stderr (${r.stderr_bytes} bytes${cut}) ---`, trimNewline(r.stderr));
  return out;
}

// The line structure is ours; one final newline of the output would only add a blank line.
function trimNewline(text: string): string {
  return text.endsWith("\n") ? text.slice(0, -1) : text;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}
