/**
 * ProxyJump values, parsed like OpenSSH's parse_jump: comma-separated hops,
 * each `[user@]host[:port]` (user split at the last `@`, `[v6]` brackets) or
 * `ssh://[user@]host[:port]`; `none` for no jump. Only parsed here: each hop
 * is itself a host the caller resolves through the config, as ssh does.
 *
 * @module
 */

/** One hop of a ProxyJump chain, in connection order. */
export interface JumpHop {
  /** The login user for this hop, when the hop names one. */
  user?: string;
  /** The host or alias (IPv6 without brackets); resolve it through the config again. */
  host: string;
  /** The port, when the hop names one. */
  port?: number;
}

/**
 * Parses a ProxyJump value (the raw rest of the line).
 * @returns "none", the hops, or a string saying what is wrong
 */
export function parseProxyJump(raw: string): "none" | JumpHop[] | string {
  // Like parse_jump: a `#` anywhere ends the value.
  const hash = raw.indexOf("#");
  const value = (hash >= 0 ? raw.slice(0, hash) : raw).replace(/[ \t\r\n]+$/, "");
  if (value.toLowerCase() === "none") return "none";
  const hops: JumpHop[] = [];
  for (const part of value.split(",")) {
    const hop = part.startsWith("ssh://") ? parseUri(part.slice(6)) : parseUserHostPort(part);
    if (typeof hop === "string") return `invalid ProxyJump hop "${part}": ${hop}`;
    hops.push(hop);
  }
  return hops;
}

/** OpenSSH's a2port for numbers: 1..65535, else null. */
export function parsePort(s: string): number | null {
  if (!/^[0-9]{1,5}$/.test(s)) return null;
  const n = Number(s);
  return n >= 1 && n <= 65535 ? n : null;
}

function parseUserHostPort(s: string): JumpHop | string {
  let rest = s;
  let user: string | undefined;
  const at = rest.lastIndexOf("@");
  if (at >= 0) {
    user = rest.slice(0, at);
    if (user === "") return "empty user";
    rest = rest.slice(at + 1);
  }
  return hostPort(rest, user);
}

function parseUri(s: string): JumpHop | string {
  let rest = s;
  let user: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    user = rest.slice(0, at);
    if (user === "" || user.includes(";")) return "bad user";
    rest = rest.slice(at + 1);
  }
  if (rest.endsWith("/")) rest = rest.slice(0, -1);
  if (rest.includes("/")) return "a path is not allowed";
  return hostPort(rest, user);
}

function hostPort(s: string, user: string | undefined): JumpHop | string {
  let host: string;
  let portText: string | undefined;
  if (s.startsWith("[")) {
    const close = s.indexOf("]");
    if (close < 0) return "missing ]";
    host = s.slice(1, close);
    const after = s.slice(close + 1);
    if (after !== "" && !after.startsWith(":")) return "junk after ]";
    if (after !== "") portText = after.slice(1);
  } else {
    const colon = s.indexOf(":");
    host = colon >= 0 ? s.slice(0, colon) : s;
    if (colon >= 0) portText = s.slice(colon + 1);
  }
  if (host === "") return "empty host";
  const hop: JumpHop = { host };
  if (user !== undefined) hop.user = user;
  if (portText !== undefined && portText !== "") {
    const port = parsePort(portText);
    if (port === null) return `bad port "${portText}"`;
    hop.port = port;
  }
  return hop;
}
