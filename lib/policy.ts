/**
 * Where the agent may go and what it may do there: the host allowlist and the
 * per-host policies of the configuration, as pure functions over a host name
 * (or address) and port. Enforced elsewhere: the allowlist by the session
 * registry before any connection is made (../sessions.ts), the policies by the
 * tools' guard (./tools/guard.ts).
 *
 * A pattern is `HOST` or `HOST:PORT`, `[IPV6]:PORT`, or an address block
 * `10.0.0.0/8` / `fd00::/8` (with an optional `:PORT` after a `[…]`-less IPv4
 * block). HOST is a glob (`*` any run, `?` one character), matched without
 * regard to case against the name the connection goes to: an ssh_config alias
 * is resolved to its HostName first, so an alias cannot carry a host past a
 * pattern, and a trailing dot is dropped (`db.example.com.` is
 * `db.example.com`). PORT is a number or `*`; without one, any port. A
 * pattern starting with `!` excludes what it matches, whatever else matches
 * (as in ssh_config lists).
 *
 * Names are matched as written, never resolved here: looking a name up would
 * be network traffic before the check. So a name pattern says nothing about
 * the address the name resolves to, and an address block matches only hosts
 * given as addresses. IPv4 addresses are first brought to their dotted-quad
 * form, as the resolver would read them (`167772161`, `10.1` and `0x0a.0.0.1`
 * all reach 10.0.0.1, as does the IPv4-mapped `::ffff:10.0.0.1`), so another
 * spelling of an address cannot slip past an exclusion such as `!10.0.0.0/8`.
 * IPv6 addresses are brought to one text (RFC 5952: `FD00:0::0005` is
 * `fd00::5`) on both sides, so an address pattern matches every spelling; a
 * glob with `*` over IPv6 text sees only that canonical text, so write IPv6
 * ranges as blocks (`2001:db8::/32`). The unspecified addresses (0.0.0.0/8,
 * `::`), which connect to this machine, are matched by no list at all.
 *
 * @module
 */

import { asciiLower, matchPattern } from "./ssh_config/pattern.ts";

/** How a tool call on a host needs a person's yes (MCP elicitation). */
export type ApprovalMode = "none" | "destructive" | "all";

/** What a host's policy allows, every field settled. */
export interface HostPolicy {
  /** Only tools that change nothing on the host (reads, listings, downloads). */
  readOnly: boolean;
  /** ssh_forward_port may open forwards through the host. */
  allowForwards: boolean;
  /** ssh_sudo_execute may run on the host. */
  allowSudo: boolean;
  /** Largest command timeout on the host, in seconds; undefined: the server's max_timeout. */
  maxTimeoutSeconds?: number;
  /** Which calls need a person's approval. */
  approval: ApprovalMode;
}

/** One entry of `host_policies`: the hosts it covers and the fields it sets. */
export interface HostPolicyRule {
  /** Patterns of the hosts covered (see the module doc). */
  match: string[];
  readOnly?: boolean;
  allowForwards?: boolean;
  allowSudo?: boolean;
  maxTimeoutSeconds?: number;
  approval?: ApprovalMode;
}

/** A policy that restricts nothing, as for a host no rule covers. */
export const OPEN_POLICY: Readonly<HostPolicy> = Object.freeze({
  readOnly: false,
  allowForwards: true,
  allowSudo: true,
  approval: "none",
});

/** A parsed pattern. */
interface Parsed {
  negated: boolean;
  /** Glob over the normalised name, or an address block. */
  host: { glob: string } | { block: Block };
  /** undefined: any port. */
  port?: number;
}

interface Block {
  v6: boolean;
  /** The network address as a bigint, and the prefix length. */
  base: bigint;
  bits: number;
}

/**
 * Checks a pattern and explains what is wrong with it.
 *
 * @param pattern A pattern as written in the configuration.
 * @returns null when valid, else why not (for the config error).
 *
 * @example
 * ```ts
 * patternProblem("db-*.example.com:22"); // null
 * patternProblem("10.0.0.0/33"); // "prefix length 33 is out of range for IPv4"
 * ```
 */
export function patternProblem(pattern: string): string | null {
  try {
    parse(pattern);
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

/**
 * Whether `host:port` is matched by `patterns`: some pattern without `!`
 * matches and none with `!` does.
 *
 * @param patterns Patterns as in the configuration (checked at start-up with {@linkcode patternProblem}).
 * @param host The host name or address the connection goes to (after ssh_config).
 * @param port Its port.
 * @returns True when the list covers the host.
 *
 * @example
 * ```ts
 * hostMatches(["*.staging.example.com", "!db.staging.example.com"], "web.staging.example.com", 22); // true
 * hostMatches(["10.0.0.0/8"], "167772161", 22); // true: the same address as 10.0.0.1
 * ```
 */
export function hostMatches(patterns: readonly string[], host: string, port: number): boolean {
  const name = normalHost(host);
  const address = addressOf(name);
  // 0.0.0.0 and :: connect to this machine: never allowed by a list, whatever it says (name 127.0.0.1 instead).
  if (unspecified(address)) return false;
  let matched = false;
  for (const text of patterns) {
    const p = parsedPattern(text);
    if (!covers(p, name, address, port)) continue;
    if (p.negated) return false;
    matched = true;
  }
  return matched;
}

/**
 * The policy of `host:port`: each field from the first rule that covers the
 * host and sets it (as ssh_config takes the first value obtained), the rest
 * from {@linkcode OPEN_POLICY}.
 *
 * @param rules The `host_policies` of the configuration, in order.
 * @param host The host name or address the session is connected to.
 * @param port Its port.
 * @returns The settled policy.
 */
export function policyFor(rules: readonly HostPolicyRule[], host: string, port: number): HostPolicy {
  const policy: HostPolicy = { ...OPEN_POLICY };
  const set = new Set<keyof HostPolicy>();
  for (const rule of rules) {
    if (!hostMatches(rule.match, host, port)) continue;
    for (const key of ["readOnly", "allowForwards", "allowSudo", "maxTimeoutSeconds", "approval"] as const) {
      if (rule[key] === undefined || set.has(key)) continue;
      set.add(key);
      (policy as unknown as Record<string, unknown>)[key] = rule[key];
    }
  }
  return policy;
}

/**
 * `host` as patterns see it: lowercase, without one trailing dot, without
 * IPv6 brackets, and an IPv4 address in any spelling the resolver accepts as
 * its dotted quad.
 *
 * @param host A host name or address.
 * @returns Its normal form.
 */
export function normalHost(host: string): string {
  let h = asciiLower(host.trim());
  if (h.startsWith("[") && h.endsWith("]")) h = h.slice(1, -1);
  if (h.endsWith(".") && !h.endsWith("..")) h = h.slice(0, -1);
  const v6 = ipv6Value(h);
  const v4 = inetAton(h) ?? mappedV4(v6);
  if (v4 !== null) return dottedQuad(v4);
  return v6 === null ? h : canonicalV6(v6);
}

/** RFC 5952's text of an IPv6 address: lowercase, no leading zeros, the longest run of zero groups as `::`. */
function canonicalV6(value: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt(16 * (7 - i))) & 0xffffn));
  let best = -1;
  let bestLength = 1; // a single zero group stays "0"
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [best, bestLength] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLength).join(":")}`;
}

/**
 * Whether `host` is an unspecified address (0.0.0.0/8, `::`): a connection to
 * one reaches this machine itself, whatever a pattern would say of its text.
 */
function unspecified(address: { v6: boolean; value: bigint } | null): boolean {
  if (address === null) return false;
  return address.v6 ? address.value === 0n : address.value >> 24n === 0n;
}

/** The IPv4 address inside an IPv4-mapped IPv6 one (::ffff:a.b.c.d), which reaches that IPv4 host. */
function mappedV4(v6: bigint | null): number | null {
  return v6 !== null && v6 >> 32n === 0xffffn ? Number(v6 & 0xffffffffn) : null;
}

// Patterns come from the configuration (a fixed set) and are matched on every connect and every
// tool call on a host with policies: each is parsed once.
const parsed = new Map<string, Parsed>();

function parsedPattern(text: string): Parsed {
  let p = parsed.get(text);
  if (p === undefined) parsed.set(text, p = parse(text));
  return p;
}

function covers(p: Parsed, name: string, address: { v6: boolean; value: bigint } | null, port: number): boolean {
  if (p.port !== undefined && p.port !== port) return false;
  if ("glob" in p.host) return matchPattern(name, p.host.glob);
  const { block } = p.host;
  if (address === null || address.v6 !== block.v6) return false;
  const width = block.v6 ? 128n : 32n;
  const shift = width - BigInt(block.bits);
  return (address.value >> shift) === (block.base >> shift);
}

function parse(text: string): Parsed {
  if (typeof text !== "string" || text.trim() === "") throw new Error("empty pattern");
  let rest = text.trim();
  const negated = rest.startsWith("!");
  if (negated) rest = rest.slice(1);
  if (rest === "") throw new Error(`"${text}" has nothing after "!"`);
  let port: number | undefined;
  let hostPart = rest;
  if (rest.startsWith("[")) {
    const close = rest.indexOf("]");
    if (close < 0) throw new Error(`"${text}" opens "[" without closing it`);
    hostPart = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after !== "") {
      if (!after.startsWith(":")) throw new Error(`"${text}": expected ":PORT" after "]"`);
      port = parsePort(after.slice(1), text);
    }
  } else if ((rest.match(/:/g) ?? []).length === 1) {
    const colon = rest.indexOf(":");
    hostPart = rest.slice(0, colon);
    port = parsePort(rest.slice(colon + 1), text);
  }
  // Several colons and no brackets: an IPv6 address or block, any port.
  if (hostPart === "") throw new Error(`"${text}" has no host`);
  if (/\s|,/.test(hostPart)) throw new Error(`"${text}": one host per pattern (no spaces or commas)`);
  const slash = hostPart.indexOf("/");
  if (slash >= 0) return { negated, port, host: { block: parseBlock(hostPart, slash, text) } };
  const glob = normalHost(hostPart);
  return { negated, port, host: { glob } };
}

function parsePort(text: string, pattern: string): number | undefined {
  if (text === "*") return undefined;
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) {
    throw new Error(`"${pattern}": port must be 1-65535 or *`);
  }
  return Number(text);
}

function parseBlock(text: string, slash: number, pattern: string): Block {
  const addr = text.slice(0, slash);
  const bitsText = text.slice(slash + 1);
  const address = addressOf(asciiLower(addr));
  if (address === null || !/^\d{1,3}$/.test(bitsText)) {
    throw new Error(`"${pattern}": an address block is ADDRESS/BITS, e.g. 10.0.0.0/8 or fd00::/8`);
  }
  const bits = Number(bitsText);
  const max = address.v6 ? 128 : 32;
  if (bits > max) throw new Error(`prefix length ${bits} is out of range for IPv${address.v6 ? 6 : 4}`);
  return { v6: address.v6, base: address.value, bits };
}

/** An address literal as a number, or null for a name. */
function addressOf(host: string): { v6: boolean; value: bigint } | null {
  const v4 = inetAton(host) ?? mappedV4(ipv6Value(host));
  if (v4 !== null) return { v6: false, value: BigInt(v4) };
  const v6 = ipv6Value(host);
  return v6 === null ? null : { v6: true, value: v6 };
}

/**
 * inet_aton's reading of an IPv4 address: one to four parts, each decimal,
 * octal (leading 0) or hex (0x), the last part filling the remaining bytes.
 * null when `text` is not one.
 */
function inetAton(text: string): number | null {
  if (!/^[0-9a-fx.]+$/.test(text) || text.startsWith(".") || text.endsWith(".")) return null;
  const parts = text.split(".");
  if (parts.length > 4) return null;
  const values: number[] = [];
  for (const part of parts) {
    let value: number;
    if (/^0x[0-9a-f]*$/.test(part)) value = part.length === 2 ? 0 : parseInt(part.slice(2), 16);
    else if (/^0[0-7]*$/.test(part)) value = part.length === 1 ? 0 : parseInt(part.slice(1), 8);
    else if (/^[1-9][0-9]*$/.test(part)) value = Number(part);
    else return null;
    if (!Number.isSafeInteger(value)) return null;
    values.push(value);
  }
  const last = values.pop()!;
  for (const v of values) if (v > 255) return null;
  if (last >= 2 ** (8 * (4 - values.length))) return null;
  let result = 0;
  values.forEach((v, i) => result += v * 2 ** (8 * (3 - i)));
  return result + last;
}

function dottedQuad(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join(".");
}

/** An IPv6 literal (an embedded IPv4 tail and a zone index allowed) as a 128-bit number, or null. */
function ipv6Value(text: string): bigint | null {
  let t = text;
  const zone = t.indexOf("%");
  if (zone >= 0) t = t.slice(0, zone);
  if (!t.includes(":") || !/^[0-9a-f:.]+$/.test(t)) return null;
  let tail: number[] = [];
  const lastColon = t.lastIndexOf(":");
  if (t.slice(lastColon + 1).includes(".")) {
    const v4 = /^\d{1,3}(\.\d{1,3}){3}$/.test(t.slice(lastColon + 1)) ? inetAton(t.slice(lastColon + 1)) : null;
    if (v4 === null) return null;
    tail = [Math.floor(v4 / 65536), v4 % 65536];
    t = t.slice(0, lastColon + 1) + "0:0";
  }
  const halves = t.split("::");
  if (halves.length > 2) return null;
  const groups = (s: string) => s === "" ? [] : s.split(":");
  const head = groups(halves[0]);
  const back = halves.length === 2 ? groups(halves[1]) : [];
  const fill = 8 - head.length - back.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return null;
  const all = [...head, ...Array(halves.length === 2 ? fill : 0).fill("0"), ...back];
  let value = 0n;
  for (const g of all) {
    if (!/^[0-9a-f]{1,4}$/.test(g)) return null;
    value = (value << 16n) | BigInt(parseInt(g, 16));
  }
  if (tail.length === 2) value = (value >> 32n << 32n) | (BigInt(tail[0]) << 16n) | BigInt(tail[1]);
  return value;
}
