/**
 * Remote text made safe to read: what a remote command printed, a remote
 * file held or a remote name was, shown so that it cannot act on the reader.
 *
 * Text from a remote machine reaches a model, and often a person watching
 * the transcript in a terminal or a web view. Raw, it can clear that screen
 * (`ESC[2J`), write the watcher's clipboard (OSC 52), set a window title
 * (OSC 0), reorder what is shown (bidi overrides: the "Trojan Source"
 * trick), carry invisible ASCII that models read but people do not (Unicode
 * tag characters, "ASCII smuggling"), or forge a line in a listing. Here each
 * such character is written as an escape (`\x1b`, `\u202e`), so the text
 * shows what arrived and does nothing. The exact data stays where it belongs:
 * `structuredContent`, a shell's raw mode, downloaded files.
 *
 * What is escaped, and why the rest is not:
 * - C0 controls except tab and newline, DEL, and C1 (U+0080–U+009F, which
 *   some terminals take as CSI, OSC, ...): the escape sequences start here,
 *   and escaping ESC leaves the rest of a sequence as inert text.
 * - CR only where it is not part of a line ending: a run of CRs followed by
 *   LF (CRLF from Windows files, `\r\r\n` from a PTY) is kept, since it hides
 *   nothing and escaping it would clutter every line of shell output; a CR
 *   followed by anything else moves the cursor back over text already shown,
 *   so `safe\rrm -rf ~` reads as one thing to the model and another to a
 *   person. Escaping it costs progress bars their looks, which is honest.
 * - Bidi controls: embeddings, overrides and isolates (U+202A–U+202E,
 *   U+2066–U+2069) and the invisible marks (U+200E, U+200F, U+061C), which
 *   also move neutral characters such as `/`, `.` and `-`.
 * - U+2028 and U+2029: line breaks in some viewers that are not `\n` to a
 *   line count, so they forge lines.
 * - Tag characters (U+E0000–U+E007F): invisible, yet models read them as
 *   ASCII; and the interlinear annotation marks (U+FFF9–U+FFFB), which some
 *   renderers use to hide the text between them.
 * - Invisible characters with no place inside a word of command output:
 *   soft hyphen (U+00AD), Mongolian vowel separator (U+180E), zero width
 *   space (U+200B), word joiner and invisible operators (U+2060–U+2064), and
 *   U+FEFF (also a byte order mark: a file that starts with one shows it).
 * - Not escaped: zero width joiner and non-joiner (U+200C, U+200D) and the
 *   variation selectors, which emoji and several scripts need to render;
 *   they change how a character looks, not which text is shown or in what
 *   order. Nor the backslash: escaping it as `\\` would double every one in
 *   Windows paths, regular expressions and source code in every output. So
 *   the text `\x1b` typed by the remote side reads the same as an escaped
 *   ESC; both are inert, and `structuredContent` tells them apart.
 *
 * @module
 */

/**
 * One regular-expression class (`u` mode, for the tag characters above U+FFFF) of every character
 * {@linkcode neutralise} escapes but CR: what a terminal would act on or a reader could not see.
 */
export const ESCAPED_CLASS: string =
  "[\\0-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f\\xad\\u061c\\u180e\\u200b\\u200e\\u200f" +
  "\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff\\ufff9-\\ufffb\\u{e0000}-\\u{e007f}]";

// Whether anything needs escaping: one scan, so clean text (the usual case)
// costs no more. A CR is flagged when the run it ends is not followed by LF.
const NEEDS_ESCAPE = new RegExp(`${ESCAPED_CLASS}|\\r(?![\\r\\n])`, "u");
// What to rewrite: each character of the class, and each run of CRs, kept
// or escaped as a whole by what follows it (a lookahead per CR would scan a
// long run once per CR).
const TO_ESCAPE = new RegExp(`${ESCAPED_CLASS}|\\r+`, "gu");

/**
 * `text` with every control, bidi and invisible character that can act on a
 * reader written as an escape: `\x1b` below U+0100, `\u202e` in the BMP,
 * `\u{e0041}` above. Newline, tab and the CRs of a line ending are kept; see
 * the module documentation for the full list.
 *
 * @param text Text that came from a remote machine (or quotes it).
 * @returns The same text when nothing needed escaping, else the escaped text.
 *
 * @example
 * ```ts
 * neutralise("\x1b[2Jhi\u202e"); // "\\x1b[2Jhi\\u202e"
 * neutralise("a\r\nb\rc"); // "a\r\nb\\x0dc"
 * ```
 */
export function neutralise(text: string): string {
  if (!NEEDS_ESCAPE.test(text)) return text;
  return text.replace(TO_ESCAPE, (match: string, offset: number) => {
    if (match[0] !== "\r") return escapeChar(match);
    return text[offset + match.length] === "\n" ? match : "\\x0d".repeat(match.length);
  });
}

// Names that can be shown as they are: nothing neutralise() would escape, no
// line break, tab or double quote, no space at either end (which a reader
// cannot see), not empty, and no " -> " (which a listing uses before a
// symlink's target).
const PLAIN_NAME = new RegExp(`^(?!\\s)(?!.*\\s$)(?!.*${ESCAPED_CLASS})(?!.* -> )[^\\r\\n\\t"]+$`, "su");

/**
 * A remote file name as a listing shows it: plain names as they are, any
 * other quoted C-style, with `\n`, `\t`, `\r`, `\"` and `\\` for those and
 * the escapes of {@linkcode neutralise} for the rest. A shown name that
 * starts with `"` is always quoted (a name holding `"` is quoted), so a
 * reader can tell the two apart, and a name can never forge a line.
 *
 * @param name A file name (or symlink target) as the remote side sent it.
 * @returns The name, quoted when it has to be.
 *
 * @example
 * ```ts
 * quoteName("notes.txt"); // notes.txt
 * quoteName("a\nb"); // "a\nb" (with the quotes)
 * quoteName(" lead"); // " lead" (with the quotes)
 * ```
 */
export function quoteName(name: string): string {
  if (PLAIN_NAME.test(name)) return name;
  return `"${name.replace(QUOTED_ESCAPE, quotedChar)}"`;
}

const QUOTED_ESCAPE = new RegExp(`${ESCAPED_CLASS}|[\\r\\n\\t"\\\\]`, "gu");
const QUOTED_SHORT: Readonly<Record<string, string>> = {
  "\r": "\\r",
  "\n": "\\n",
  "\t": "\\t",
  '"': '\\"',
  "\\": "\\\\",
};

function quotedChar(c: string): string {
  return Object.hasOwn(QUOTED_SHORT, c) ? QUOTED_SHORT[c] : escapeChar(c);
}

// The escapes below U+0100, made once: output of nothing but ESC bytes is
// the worst case, and a lookup halves its cost.
const LOW = Array.from({ length: 0x100 }, (_, code) => `\\x${code.toString(16).padStart(2, "0")}`);

function escapeChar(c: string): string {
  const code = c.codePointAt(0)!;
  if (code < 0x100) return LOW[code];
  if (code < 0x10000) return `\\u${code.toString(16).padStart(4, "0")}`;
  return `\\u{${code.toString(16)}}`;
}
