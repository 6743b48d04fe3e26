/**
 * TLS for the HTTP transports: beyond loopback the bearer token, SSH and sudo
 * passwords and file contents cross a network, so there the server speaks
 * HTTPS or does not start.
 *
 * @module
 */

import { isLoopback } from "../validate.ts";

/** A certificate (chain) and its private key, PEM text, as `Deno.serve` takes them. */
export interface TlsPem {
  cert: string;
  key: string;
}

/**
 * Why the HTTP server must not listen on `host`, or null when it may: any
 * address other than loopback needs TLS.
 *
 * @param host The address to bind, as given (`0.0.0.0`, `::`, a name, an IP).
 * @param tls Whether HTTPS is configured.
 * @returns A sentence naming the flags that fix it, or null.
 * @example
 * ```ts
 * tlsProblem("127.0.0.1", false); // null
 * tlsProblem("0.0.0.0", false); // "refusing to listen on 0.0.0.0 without TLS: …"
 * ```
 */
export function tlsProblem(host: string, tls: boolean): string | null {
  if (tls || isLoopback(host)) return null;
  return `refusing to listen on ${host} without TLS: the bearer token, SSH and sudo passwords and file contents ` +
    `would cross the network in clear. Pass --tls-cert FILE and --tls-key FILE (PEM; or http_tls_cert and ` +
    `http_tls_key in the config), or bind 127.0.0.1`;
}

/**
 * Reads a PEM certificate (chain) and private key for HTTPS. Throws a
 * TypeError naming the file when one cannot be read or holds no PEM block of
 * the expected kind, so a wrong path fails at start-up, not at the first
 * handshake.
 *
 * @param files The certificate and key file paths.
 * @returns Both files' PEM text.
 */
export async function loadTls(files: { certFile: string; keyFile: string }): Promise<TlsPem> {
  const read = async (path: string, what: string, marker: RegExp): Promise<string> => {
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (error) {
      throw new TypeError(`Cannot read the TLS ${what} ${path}: ${error instanceof Error ? error.message : error}`, {
        cause: error,
      });
    }
    if (!marker.test(text)) throw new TypeError(`The TLS ${what} ${path} holds no PEM ${what}`);
    return text;
  };
  return {
    cert: await read(files.certFile, "certificate", /-----BEGIN CERTIFICATE-----/),
    key: await read(files.keyFile, "key", /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/),
  };
}
