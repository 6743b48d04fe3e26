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

/** The longest file name Linux, the BSDs and macOS take (NAME_MAX), in bytes. */
export const NAME_MAX = 255;

/**
 * The hidden name a file or tree is built under beside its final `name`
 * before being renamed into place: `.name.mcp-<12 hex>.tmp`. The name part
 * is cut (at a character boundary) so the whole stays within
 * {@linkcode NAME_MAX} UTF-8 bytes: a final name of 234-255 bytes must not
 * fail because its temporary name is longer than itself.
 */
export function tempName(name: string): string {
  const suffix = `.mcp-${randomHex(6)}.tmp`;
  return `.${truncateUtf8(name, NAME_MAX - 1 - suffix.length)}${suffix}`;
}

/** The longest start of `text` that fits in `max` UTF-8 bytes, never splitting a character. */
export function truncateUtf8(text: string, max: number): string {
  let bytes = 0;
  let end = 0;
  for (const char of text) {
    const cp = char.codePointAt(0)!;
    // A lone surrogate is encoded as U+FFFD: 3 bytes.
    const size = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (bytes + size > max) break;
    bytes += size;
    end += char.length;
  }
  return text.slice(0, end);
}
