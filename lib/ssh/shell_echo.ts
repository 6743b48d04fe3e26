/**
 * Finding the echo of a line sent to a shell, so a wait never matches it.
 *
 * A PTY echoes what is typed: the kernel's line discipline in cooked mode
 * (`read -p`, `cat`), readline in bash and Python. Either way the echo is the
 * sent characters in order, with terminal noise mixed in: escape sequences
 * (bracketed paste on and off, colors), a carriage return where readline
 * wraps a long line at the terminal's width, and `\r\n` for Enter. So the
 * echo is found by walking the output after the send and comparing it with
 * the sent text, ignoring that noise. This is chosen over "skip to the first
 * line break after the send", which would also skip the first line a program
 * prints when echo is off (a password prompt answered): here such output
 * stops the walk at its first character that differs from the sent text,
 * and nothing is skipped. Where the walk stops inside a line, only the lines
 * before it count as echo, so a partly matching line is never hidden.
 *
 * @module
 */

const ESC = 0x1b;
const LF = 0x0a;
const NEWLINE = -1; // a sent \r or \n: the echo shows a line break

/**
 * The expected echo of `text` as typed: its bytes, with each `\r` or `\n` a
 * line break. Stops at the first other control character (Tab completes,
 * Ctrl keys and arrows are echoed as redraws or `^C`): nothing after it can
 * be predicted.
 */
export function expectedEcho(text: string): number[] {
  const out: number[] = [];
  const bytes = new TextEncoder().encode(text);
  for (const b of bytes) {
    if (b === 0x0d || b === 0x0a) out.push(NEWLINE);
    else if (b < 0x20 || b === 0x7f) break;
    else out.push(b);
  }
  return out;
}

/**
 * Where the echo of `expected` ends in `output` (the bytes that arrived after
 * the send): the offset just past it, 0 when the output is not an echo of
 * the text (echo off, or another program's output first), or `null` while
 * every byte so far agrees with the echo and more is needed to tell.
 *
 * @param expected From {@linkcode expectedEcho}.
 * @param output Output from the send on; `final` when no more will come.
 */
export function echoEnd(expected: readonly number[], output: Uint8Array, final = false): number | null {
  if (expected.length === 0) return 0;
  let lineEnd = 0; // just past the last whole line of echo
  let j = 0;
  let i = 0;
  while (i < output.length) {
    const b = output[i];
    if (b === ESC) {
      const end = sequenceEnd(output, i);
      if (end === null) return final ? lineEnd : null;
      i = end;
      continue;
    }
    if (b < 0x20 && b !== LF) { // CR (Enter, wrapping), BEL and other controls
      i++;
      continue;
    }
    const want = expected[j];
    if (want === NEWLINE ? b !== LF : b !== want) return lineEnd;
    i++;
    j++;
    if (want === NEWLINE) lineEnd = i;
    if (j === expected.length) return i;
  }
  return final ? lineEnd : null;
}

// The end of the escape sequence at `i`, or null if it is still arriving.
function sequenceEnd(bytes: Uint8Array, i: number): number | null {
  if (i + 1 >= bytes.length) return null;
  const kind = bytes[i + 1];
  if (kind === 0x5b) { // CSI
    for (let k = i + 2; k < bytes.length; k++) if (bytes[k] >= 0x40 && bytes[k] <= 0x7e) return k + 1;
    return null;
  }
  if (kind === 0x5d || kind === 0x50 || kind === 0x58 || kind === 0x5e || kind === 0x5f) { // OSC, DCS, SOS, PM, APC
    for (let k = i + 2; k < bytes.length; k++) {
      if (bytes[k] === 0x07) return k + 1;
      if (bytes[k] === ESC) return k + 1 < bytes.length ? (bytes[k + 1] === 0x5c ? k + 2 : k) : null;
    }
    return null;
  }
  if (kind >= 0x20 && kind <= 0x2f) return i + 2 < bytes.length ? i + 3 : null; // ESC ( B
  return i + 2;
}
