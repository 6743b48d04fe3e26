/**
 * Readable views of an interactive PTY's output.
 *
 * An agent reading a shell cannot make sense of raw terminal output: colors,
 * titles and cursor moves bury the text, and progress bars redraw one line a
 * hundred times. `toText` gives the output as a log (every line that scrolled
 * by, as it finally looked); `Screen` gives what a person sees at this moment,
 * which is the only readable view of full-screen programs such as `top` or `vim`
 * (see ./terminal.ts, loaded only when a shell opens).
 *
 * @module
 */

const ESC = 0x1b;
const BEL = 0x07;
const BS = 0x08;
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const CAN = 0x18;
const SUB = 0x1a;
const DEL = 0x7f;
const C1_DCS = 0x90;
const C1_SOS = 0x98;
const C1_CSI = 0x9b;
const C1_ST = 0x9c;
const C1_OSC = 0x9d;
const C1_PM = 0x9e;
const C1_APC = 0x9f;

/**
 * Plain text from terminal output: removes escape sequences (CSI `ESC [ ... final`,
 * OSC `ESC ] ... BEL|ESC \`, DCS/SOS/PM/APC `ESC P|X|^|_ ... ESC \`, two-char `ESC x`,
 * charset `ESC ( B` etc.), other C0 controls except `\n` and `\t` (and C1 controls
 * U+0080..U+009F), and applies backspace and carriage return per line the way a
 * terminal shows them: `"abc\rX"` gives `"Xbc"`, `"progress 10%\rprogress 20%\n"`
 * gives `"progress 20%\n"`, `"\r\n"` gives `"\n"`. Backspace deletes the previous
 * character at the end of a line and moves left inside one. Erase-in-line
 * (`ESC [ K`) is applied too, since progress bars rely on it to clear leftovers.
 * A trailing incomplete escape sequence is dropped. Pure; linear in the input.
 */
export function toText(output: string): string {
  const out: string[] = [];
  // The current line as one string per code point, so that `\r` overwrites
  // and backspaces never split a surrogate pair. `col` may pass the end of
  // `line` after an erase; the gap is filled with spaces only if text follows.
  let line: string[] = [];
  let col = 0;
  const n = output.length;
  let i = 0;
  while (i < n) {
    const c = output.charCodeAt(i);
    if (c === LF) {
      out.push(line.join(""), "\n");
      line = [];
      col = 0;
      i++;
    } else if (c === CR) {
      col = 0;
      i++;
    } else if (c === BS) {
      // A terminal only moves left; deleting at the end of the line keeps
      // `"abc\b"` from showing a character the program meant to erase, while
      // only moving inside the line keeps `"ab\rX\bY"`-style redraws right.
      if (col > 0) {
        col--;
        if (col === line.length - 1) line.pop();
      }
      i++;
    } else if (c === ESC || isC1Introducer(c)) {
      const end = sequenceEnd(output, i);
      const erase = eraseInLine(output, i, end);
      if (erase === 0) line.length = Math.min(line.length, col);
      else if (erase === 2 || (erase === 1 && col + 1 >= line.length)) line = [];
      else if (erase === 1) line.fill(" ", 0, col + 1);
      i = end;
    } else if ((c < 0x20 && c !== TAB) || (c >= DEL && c <= C1_APC)) {
      i++;
    } else {
      const ch = output.codePointAt(i)! > 0xffff ? output.slice(i, i + 2) : output[i];
      i += ch.length;
      while (line.length < col) line.push(" ");
      if (col < line.length) line[col] = ch;
      else line.push(ch);
      col++;
    }
  }
  out.push(line.join(""));
  return out.join("");
}

function isC1Introducer(c: number): boolean {
  return c === C1_CSI || c === C1_OSC || c === C1_DCS || c === C1_SOS || c === C1_PM || c === C1_APC;
}

/**
 * The index just after the escape sequence starting at `i` (an ESC or a C1
 * introducer). An incomplete sequence runs to the end of the input, so it is
 * dropped whole; a control character inside one aborts it and is then handled
 * as itself, as xterm does.
 */
function sequenceEnd(s: string, i: number): number {
  const c = s.charCodeAt(i);
  if (c === C1_CSI) return csiEnd(s, i + 1);
  if (c === C1_OSC) return stringEnd(s, i + 1, true);
  if (c !== ESC) return stringEnd(s, i + 1, false); // C1 DCS, SOS, PM, APC
  i++;
  if (i >= s.length) return i;
  const d = s.charCodeAt(i);
  if (d === 0x5b) return csiEnd(s, i + 1); // [
  if (d === 0x5d) return stringEnd(s, i + 1, true); // ]
  if (d === 0x50 || d === 0x58 || d === 0x5e || d === 0x5f) return stringEnd(s, i + 1, false); // P X ^ _
  // Any other: intermediates (`(`, `#`, `%` …) then one final byte.
  for (; i < s.length; i++) {
    const e = s.charCodeAt(i);
    if (e >= 0x30 && e <= 0x7e || e === CAN || e === SUB) return i + 1;
    if (e < 0x20 || e > 0x2f) return i;
  }
  return i;
}

/** CSI: parameter bytes 0x30-0x3f, intermediates 0x20-0x2f, one final 0x40-0x7e. */
function csiEnd(s: string, i: number): number {
  for (; i < s.length; i++) {
    const d = s.charCodeAt(i);
    if (d >= 0x40 && d <= 0x7e || d === CAN || d === SUB) return i + 1;
    if (d < 0x20 || d > 0x7e) return i;
  }
  return i;
}

/**
 * OSC, DCS, SOS, PM, APC: a string ended by ST (`ESC \` or U+009C); OSC also
 * by BEL, which is how most programs end a title. Another ESC ends the string
 * and starts a sequence of its own.
 */
function stringEnd(s: string, i: number, belEnds: boolean): number {
  for (; i < s.length; i++) {
    const d = s.charCodeAt(i);
    if (d === ESC) return s.charCodeAt(i + 1) === 0x5c ? i + 2 : i;
    if (d === C1_ST || d === CAN || d === SUB || (belEnds && d === BEL)) return i + 1;
  }
  return i;
}

/**
 * The erase-in-line mode (0 to the end, 1 to the start, 2 the whole line) if
 * `s[start, end)` is a complete `CSI Ps K`; progress bars use it to clear the
 * rest of a line they redraw.
 */
function eraseInLine(s: string, start: number, end: number): 0 | 1 | 2 | undefined {
  if (s.charCodeAt(end - 1) !== 0x4b) return undefined; // K
  const params = s.charCodeAt(start) === C1_CSI
    ? s.slice(start + 1, end - 1)
    : s.charCodeAt(start + 1) === 0x5b
    ? s.slice(start + 2, end - 1)
    : undefined;
  if (params === "" || params === "0") return 0;
  if (params === "1") return 1;
  if (params === "2") return 2;
  return undefined;
}
