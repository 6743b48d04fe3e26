/**
 * Names of keys an agent can press in a terminal, and the bytes a terminal
 * sends for each (xterm conventions, normal cursor mode).
 *
 * @module
 */

const NAMED: Record<string, string> = {
  esc: "\x1b",
  escape: "\x1b",
  tab: "\t",
  enter: "\r",
  return: "\r",
  backspace: "\x7f",
  space: " ",
  up: "\x1b[A",
  down: "\x1b[B",
  right: "\x1b[C",
  left: "\x1b[D",
  home: "\x1b[H",
  end: "\x1b[F",
  insert: "\x1b[2~",
  delete: "\x1b[3~",
  pageup: "\x1b[5~",
  pagedown: "\x1b[6~",
  f1: "\x1bOP",
  f2: "\x1bOQ",
  f3: "\x1bOR",
  f4: "\x1bOS",
  f5: "\x1b[15~",
  f6: "\x1b[17~",
  f7: "\x1b[18~",
  f8: "\x1b[19~",
  f9: "\x1b[20~",
  f10: "\x1b[21~",
  f11: "\x1b[23~",
  f12: "\x1b[24~",
};

/** Key names accepted by {@linkcode controlKeyBytes}, for help texts. */
export const KEY_NAMES: readonly string[] = [
  "ctrl+a … ctrl+z (also ^C, C-c, c)",
  "ctrl+[ ctrl+\\ ctrl+] ctrl+^ ctrl+_ ctrl+@",
  ...Object.keys(NAMED).filter((k) => k !== "escape" && k !== "return"),
];

/**
 * The bytes for a key such as `ctrl+c`, `^C`, `C-c`, `c` (a lone letter means
 * Ctrl+letter, as in the reference server), `esc`, `up`, `pageup` or `f5`.
 * Returns null for a name it does not know.
 */
export function controlKeyBytes(key: string): string | null {
  const k = key.trim().toLowerCase();
  const compact = k.replace(/[\s_-]+/g, "");
  if (Object.hasOwn(NAMED, compact)) return NAMED[compact];
  const m = /^(?:ctrl|control)\s*[+-]?\s*(.)$/.exec(k) ?? /^\^(.)$/.exec(k) ?? /^c-(.)$/.exec(k) ??
    /^([a-z])$/.exec(k);
  if (m === null) return null;
  const char = m[1];
  if (char >= "a" && char <= "z") return String.fromCharCode(char.charCodeAt(0) - 96);
  const punct: Record<string, string> = {
    "@": "\x00",
    "[": "\x1b",
    "\\": "\x1c",
    "]": "\x1d",
    "^": "\x1e",
    "_": "\x1f",
  };
  return Object.hasOwn(punct, char) ? punct[char] : null;
}
