/**
 * UTF-8 boundaries: output is cut (by caps, reads and drops) at byte
 * positions, and a cut must never leave half a character behind.
 *
 * @module
 */

/** Moves `end` back so that `bytes[0, end)` does not end inside a UTF-8 character. */
export function utf8SafeEnd(bytes: Uint8Array, end = bytes.length): number {
  for (let i = end - 1, back = 0; i >= 0 && back < 4; i--, back++) {
    const b = bytes[i];
    if ((b & 0xc0) === 0x80) continue;
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return i + need <= end ? end : i;
  }
  return end;
}

/** How many leading bytes are continuation bytes of a character cut off before them. */
export function utf8LeadingContinuations(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length && i < 3 && (bytes[i] & 0xc0) === 0x80) i++;
  return i;
}
