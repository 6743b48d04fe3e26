/**
 * Validators for values that reach ssh2 or a remote shell, as strict as
 * OpenSSH's own checks (`valid_hostname`, `valid_ruser` in ssh.c) or stricter.
 *
 * @module
 */

import { isIP } from "node:net";

// OpenSSH refuses these in a user name because they mean something to a shell.
const USER_FORBIDDEN = /[\s'`";&<>|(){}\\$*?[\]!#~]/;
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;
const HOST_NAME = /^[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,252})$/;
const IPV6 = /^[0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.-]+)?$/;

/** Loopback addresses: 127.0.0.0/8, ::1 and the name localhost. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || (isIP(host) === 4 && host.startsWith("127."));
}

/** Returns why `host` is not a usable SSH host name or address, or null if it is. */
export function hostProblem(host: string): string | null {
  if (host.length === 0) return "host is empty";
  if (host.length > 253) return "host is longer than 253 characters";
  if (CONTROL.test(host)) return "host contains control characters";
  if (host.startsWith("-")) return "host must not start with '-' (it would read as an option)";
  // The port has its own field: "[::1]" or "[h]:2222" would be taken apart
  // differently by different layers (and known_hosts writes "[h]:port"
  // itself), so one spelling per address: brackets are refused, with the fix.
  if (host.includes("[") || host.includes("]")) {
    return "host must not be bracketed: write an IPv6 address bare (e.g. ::1) and the port in `port`";
  }
  // No IPv6 address has exactly one colon: this is host:port.
  if (hostWithPort(host) !== null) return "host must not include a port (host:port): give the port in `port`";
  if (host.includes(":")) {
    // The characters alone let "127.0.0.1:2222:1" or ":::::" through, which then
    // failed as a lost connection; only an address that parses is one.
    return IPV6.test(host) && isIP(host) === 6 ? null : "host is not a valid IPv6 address";
  }
  if (!HOST_NAME.test(host)) {
    return "host may contain only letters, digits, '.', '-' and '_'";
  }
  return null;
}

/**
 * The host and port of a `host:port` value (one colon, digits after it), or
 * null: what an agent writes when it puts the port in the wrong field.
 *
 * @param value A value given as a host.
 * @returns The two parts, or null when `value` is not host:port.
 *
 * @example
 * ```ts
 * hostWithPort("127.0.0.1:2222"); // { host: "127.0.0.1", port: 2222 }
 * hostWithPort("::1"); // null
 * ```
 */
export function hostWithPort(value: string): { host: string; port: number } | null {
  const m = /^([^:]+):(\d{1,5})$/.exec(value);
  return m === null ? null : { host: m[1], port: Number(m[2]) };
}

/** What to do about a host value `hostProblem` refused, when there is more to say than the problem. */
export function hostHint(value: string): string | undefined {
  const bracketed = /^\[([^\]]*)\](?::(\d{1,5}))?$/.exec(value);
  const split = bracketed === null ? hostWithPort(value) : { host: bracketed[1], port: bracketed[2] };
  if (split === null) return undefined;
  return `Call again with host ${JSON.stringify(split.host)}` +
    (split.port === undefined ? "" : ` and port ${split.port}`);
}

/** Returns why `user` is not a usable remote user name, or null if it is. */
export function userProblem(user: string): string | null {
  if (user.length === 0) return "username is empty";
  if (user.length > 256) return "username is longer than 256 characters";
  if (CONTROL.test(user)) return "username contains control characters";
  if (user.startsWith("-")) return "username must not start with '-'";
  if (USER_FORBIDDEN.test(user)) return "username contains whitespace or shell metacharacters";
  return null;
}

/** Returns why `name` is not a POSIX environment variable name, or null. */
export function envNameProblem(name: string): string | null {
  // Valid in POSIX, but as an object key it would set a prototype instead.
  if (name === "__proto__") return "environment variable name __proto__ is not allowed";
  // The exec wrapper's own variables (lib/ssh/wrapper.ts): one set by the caller would steer it.
  if (name.startsWith("__mcp_")) return "environment variable names starting with __mcp_ are reserved";
  return /^[A-Za-z_][A-Za-z0-9_]{0,255}$/.test(name)
    ? null
    : `environment variable name ${JSON.stringify(name)} must match [A-Za-z_][A-Za-z0-9_]*`;
}

/**
 * Quotes one argument for a POSIX shell so the remote sees it literally.
 *
 * Single quotes stop every expansion; an embedded quote closes, escapes and
 * reopens. NUL cannot travel in a C string, so it is refused.
 */
export function shellQuote(value: string): string {
  if (value.includes("\0")) throw new RangeError("Cannot quote a value containing NUL");
  return `'${value.replaceAll("'", `'\\''`)}'`;
}
