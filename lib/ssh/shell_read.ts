/**
 * Where a read of a shell's output may end: never inside a UTF-8 character
 * or an escape sequence. Output arrives in SSH packets cut at any byte, so a
 * character's last bytes may still be on their way when the agent reads; the
 * incomplete tail waits for them (handing it out would show U+FFFD and make
 * the next read drop the continuation bytes as if they were lost).
 *
 * @module
 */

import { utf8SafeEnd } from "./utf8.ts";

/**
 * Where a read of `window[start, limit)` may end: not inside a UTF-8
 * character, not inside an escape sequence (text mode would show it as
 * garbage), but always past at least one whole character or sequence (looking
 * beyond `limit` if need be) so a small byte limit still makes progress.
 * `window` must hold every byte received so far past `start` unless `more`
 * says it was cut short; a character or sequence still arriving is left for
 * the next read, unless `final` (the stream has ended: nothing will complete
 * it, so it is handed out as it is).
 *
 * @param window Bytes of the stream from the read position on.
 * @param range `start` (first byte to read), `limit` (byte limit), `final` (no more bytes will come).
 * @returns The end offset in `window`; `start` when nothing whole is readable yet.
 */
export function readableEnd(
  window: Uint8Array,
  range: { start: number; limit: number; final?: boolean },
): number {
  const { start, limit, final = false } = range;
  if (final && limit >= window.length) return window.length;
  let end = utf8SafeEnd(window, limit);
  const esc = window.lastIndexOf(0x1b, end - 1);
  if (esc >= start && esc >= end - 256 && !escapeComplete(window.subarray(esc, end))) end = esc;
  if (end > start || start >= window.length) return Math.max(end, start);
  // Nothing whole fits under the limit: hand out the first unit alone.
  if (window[start] === 0x1b) {
    for (let e = start + 2; e <= window.length; e++) {
      if (escapeComplete(window.subarray(start, e))) return e;
    }
    return final ? window.length : start; // the sequence is still arriving
  }
  const need = utf8Length(window[start]);
  let have = 1;
  while (have < need && start + have < window.length && (window[start + have] & 0xc0) === 0x80) have++;
  if (have === need) return start + need;
  // Cut short by the end of what arrived: the rest is on its way. Cut short
  // by a byte that cannot continue it: invalid input, handed out as it is.
  if (start + have >= window.length && !final) return start;
  return start + have;
}

function utf8Length(lead: number): number {
  return lead >= 0xf0 && lead <= 0xf7 ? 4 : lead >= 0xe0 && lead <= 0xef ? 3 : lead >= 0xc2 && lead <= 0xdf ? 2 : 1;
}

/** Whether bytes starting with ESC hold a whole escape sequence. */
export function escapeComplete(seq: Uint8Array): boolean {
  if (seq.length < 2) return false;
  const kind = seq[1];
  if (kind === 0x5b) { // CSI: ESC [ params final(0x40-0x7e)
    for (let i = 2; i < seq.length; i++) if (seq[i] >= 0x40 && seq[i] <= 0x7e) return true;
    return false;
  }
  if (kind === 0x5d || kind === 0x50 || kind === 0x58 || kind === 0x5e || kind === 0x5f) { // OSC, DCS, SOS, PM, APC
    for (let i = 2; i < seq.length; i++) {
      if (seq[i] === 0x07 || (seq[i] === 0x1b && seq[i + 1] === 0x5c)) return true;
    }
    return false;
  }
  if (kind >= 0x20 && kind <= 0x2f) return seq.length >= 3; // ESC ( B and friends
  return true; // two-byte escape
}
