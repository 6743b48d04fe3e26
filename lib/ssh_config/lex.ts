/**
 * Splits one ssh_config line into keyword and arguments the way OpenSSH's
 * readconf.c does: the keyword ends at whitespace or one `=`
 * (`strdelim`), the rest is split by `argv_split` with `"` and `'` quotes,
 * backslash escapes and `#` starting a comment only at the start of a word.
 * Keeping to that exactly matters: `IdentityFile "My Keys/id"` and
 * `Host=a#b` mean what `ssh -G` says they mean, not what a regex guesses.
 *
 * @module
 */

/** A lexed line: lowercased keyword, its arguments, and the raw rest (for ProxyCommand-like keywords). */
export interface LexedLine {
  keyword: string;
  args: string[];
  /** The text after the keyword and its delimiter, unsplit, as OpenSSH hands it to command keywords. */
  rest: string;
}

const WS = " \t\r\n";

/**
 * Lexes one line.
 * @returns null for blank and comment lines; a string for a syntax error (the reason)
 */
export function lexLine(raw: string): LexedLine | null | string {
  // Trailing whitespace (and form feed) is stripped first, as readconf does.
  let line = raw.replace(/[ \t\r\n\f]+$/, "");
  let i = 0;
  while (i < line.length && WS.includes(line[i])) i++;
  line = line.slice(i);
  if (line === "" || line[0] === "#") return null;
  // Keyword: up to whitespace, a quote or `=`; one `=` may sit between whitespace.
  let end = 0;
  while (end < line.length && !(WS + '"=').includes(line[end])) end++;
  if (end < line.length && line[end] === '"') return "invalid quotes in keyword";
  const keyword = line.slice(0, end).toLowerCase();
  let j = end;
  let sawEquals = line[j] === "=";
  if (j < line.length) j++;
  while (j < line.length && WS.includes(line[j])) j++;
  if (!sawEquals && line[j] === "=") {
    sawEquals = true;
    j++;
    while (j < line.length && WS.includes(line[j])) j++;
  }
  const rest = line.slice(j);
  if (rest === "") return `no argument after keyword "${keyword}"`;
  const args = argvSplit(rest);
  if (args === null) return "invalid quotes";
  return { keyword, args, rest };
}

/** OpenSSH's argv_split(s, ..., terminate_on_comment=1). Returns null on an unclosed quote. */
export function argvSplit(s: string): string[] | null {
  const out: string[] = [];
  let i = 0;
  while (i < s.length) {
    if (s[i] === " " || s[i] === "\t") {
      i++;
      continue;
    }
    if (s[i] === "#") break;
    let quote = "";
    let arg = "";
    for (; i < s.length; i++) {
      const c = s[i];
      if (c === "\\") {
        const n = s[i + 1];
        if (n === "'" || n === '"' || n === "\\" || (quote === "" && n === " ")) {
          i++;
          arg += n;
        } else {
          arg += c;
        }
      } else if (quote === "" && (c === " " || c === "\t")) {
        break;
      } else if (quote === "" && (c === '"' || c === "'")) {
        quote = c;
      } else if (quote !== "" && c === quote) {
        quote = "";
      } else {
        arg += c;
      }
    }
    if (quote !== "") return null;
    out.push(arg);
  }
  return out;
}
