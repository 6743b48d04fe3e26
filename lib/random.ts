/**
 * Random identifiers: session, forward and HTTP session ids, and the names
 * of temporary files, all from the system's CSPRNG.
 *
 * @module
 */

/** `bytes` random bytes as lowercase hex (2 characters per byte). */
export function randomHex(bytes: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The hidden name a file or tree is built under beside its final `name`
 * before being renamed into place: `.name.mcp-<12 hex>.tmp`.
 */
export function tempName(name: string): string {
  return `.${name}.mcp-${randomHex(6)}.tmp`;
}
