/**
 * Mapping ssh2's connection failures to stable error codes, by their fields
 * (`level`, `code`), never by message text.
 *
 * @module
 */

import type { AuthenticationType } from "../ssh2/mod.ts";
import { SshMcpError } from "../errors.ts";
import { isIntegrityFailure } from "../ssh2/mod.ts";

/** What the connect attempt knew when it failed. */
export interface ConnectErrorContext {
  options: { host: string; port: number; username: string; privateKeyPath?: string };
  lastAuth: AuthenticationType | null;
  authStarted: boolean;
  hostKeyChecked: boolean;
}

/**
 * DNS_FAILED for `host`: the resolver's answer, retryable when it may answer later (nothing was sent to
 * the host).
 */
export function dnsFailed(host: string, lookup: { reason: string; temporary: boolean }, cause: unknown): SshMcpError {
  return new SshMcpError("DNS_FAILED", `Cannot resolve host name ${host}: ${lookup.reason}`, {
    hint: lookup.temporary
      ? "The resolver did not answer: check the network and DNS settings, retry, or give the IP address"
      : "Check the spelling of the host name (and HostName in ssh_config), or give its IP address",
    retryable: lookup.temporary,
    cause,
  });
}

/** HOST_NOT_ALLOWED: Deno's own wall (a narrowed --allow-net) refused `host:port`, before any packet. */
export function hostNotAllowed(host: string, port: number, cause: unknown): SshMcpError {
  return new SshMcpError(
    "HOST_NOT_ALLOWED",
    `${host}:${port} is outside the network access this server was started with (Deno --allow-net)`,
    {
      hint: "Nothing was sent to it. Use a host the server may reach, or ask the operator to add it to --allow-net",
      cause,
    },
  );
}

/** Maps a failure during connect, handshake or authentication. */
export function mapConnectError(err: Error & { level?: string; code?: string }, ctx: ConnectErrorContext): SshMcpError {
  const { host, port, username } = ctx.options;
  const where = `${host}:${port}`;
  // First: altered data during authentication is not an authentication failure.
  if (isIntegrityFailure(err)) return integrityFailed(where, err);
  if (err.level === "client-authentication") {
    const what = ctx.lastAuth === "password"
      ? "the password"
      : ctx.lastAuth === "publickey"
      ? `the key ${ctx.options.privateKeyPath}`
      : ctx.lastAuth === "agent"
      ? "every key in the ssh-agent"
      : "every offered method";
    return new SshMcpError("AUTH_FAILED", `Server ${where} rejected ${what} for user ${username}`, {
      hint: ctx.lastAuth === "password"
        ? "Check username and password, and that the server allows password authentication"
        : "Check username, that the public key is in the user's authorized_keys, or try another method",
      cause: err,
    });
  }
  if (err.level === "client-socket") {
    if (err.code === "ECONNREFUSED") {
      return new SshMcpError("CONNECT_REFUSED", `Cannot connect to ${where}: connection refused`, {
        hint: "Check the port and that sshd is running",
        cause: err,
      });
    }
    const lookup = lookupFailure(err);
    if (lookup !== null) return dnsFailed(host, lookup, err);
    return new SshMcpError("CONNECTION_LOST", `Connection to ${where} failed (${err.code ?? "socket error"})`, {
      hint: "Check that the host is reachable",
      cause: err,
    });
  }
  if (err.level === "client-timeout") {
    return new SshMcpError("CONNECT_TIMEOUT", `Connection to ${where} timed out`, {
      hint: "Check host and port, or raise connect_timeout",
      cause: err,
    });
  }
  if (ctx.authStarted) {
    // OpenSSH disconnects after MaxAuthTries failures instead of answering.
    return new SshMcpError("AUTH_FAILED", `Server ${where} closed the connection during authentication`, {
      hint: "Too many authentication attempts (MaxAuthTries), or the account is not allowed to log in",
      cause: err,
    });
  }
  return new SshMcpError("HANDSHAKE_FAILED", `SSH handshake with ${where} failed`, {
    hint: "The server may not speak SSH on this port, or offers no algorithm in common",
    cause: err,
  });
}

/**
 * Whether a connect failed looking up the host name, and if so why and whether for now only.
 * Node-style errors carry `ENOTFOUND` / `EAI_AGAIN`. Deno's `connect` throws a plain `Error`
 * with no code or class for a failed getaddrinfo(), only its fixed message (Deno's own English
 * text followed by the C library's reason, in the C locale Deno's runtime keeps), so that text is
 * the one thing to go by; tests/error_codes_test.ts fails if a Deno upgrade changes it.
 */
export function lookupFailure(err: Error & { code?: string }): { reason: string; temporary: boolean } | null {
  if (err.code === "ENOTFOUND") return { reason: "no such name", temporary: false };
  if (err.code === "EAI_AGAIN") return { reason: "temporary failure in name resolution", temporary: true };
  if (err.code !== undefined) return null;
  const deno = /^failed to lookup address information: (.*)$/s.exec(err.message);
  if (deno === null) return null;
  const reason = deno[1].trim();
  return { reason: reason.charAt(0).toLowerCase() + reason.slice(1), temporary: /temporary/i.test(reason) };
}

/** Maps a failure of an established connection; `where` is `host:port`. */
export function mapRuntimeError(err: Error & { level?: string }, where?: string): SshMcpError {
  if (isIntegrityFailure(err)) return integrityFailed(where, err);
  if (err.level === "client-timeout") {
    return new SshMcpError("CONNECTION_LOST", "Server not responding (keepalive timeout)", {
      hint: "The connection is dead; call ssh_connect again",
      cause: err,
    });
  }
  return new SshMcpError("CONNECTION_LOST", "Connection lost", {
    hint: "Call ssh_connect again to open a new session",
    cause: err,
  });
}

/**
 * A packet failed its MAC, tag, length or padding check (the decipher marks
 * the error). Not retryable: a retry over the same path may be altered
 * again, and whatever was in flight is unknown.
 */
function integrityFailed(where: string | undefined, err: Error): SshMcpError {
  return new SshMcpError(
    "INTEGRITY_FAILED",
    `Connection${
      where ? ` to ${where}` : ""
    } closed: a packet from the server failed its integrity check (${err.message})`,
    {
      hint: "The data was altered in transit or the keys disagree; do not retry blindly, check the network path " +
        "(proxies, middleboxes) first",
      retryable: false,
      cause: err,
    },
  );
}
