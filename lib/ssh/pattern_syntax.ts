/**
 * The syntax side of lib/ssh/pattern.ts: a JavaScript regular expression
 * (flag `m`) parsed to a tree of code-unit sets, concatenations,
 * alternations, repetitions and assertions, with the refusals of what a
 * linear-time engine cannot run and the size the tree compiles to.
 *
 * @module
 */

import { SshMcpError } from "../errors.ts";

/** An `INVALID_ARGUMENT` error for a pattern this server will not run. */
export function refuse(message: string, hint?: string): SshMcpError {
  return new SshMcpError("INVALID_ARGUMENT", message, {
    hint: hint ?? "Rewrite the pattern without it, or pass regex=false to wait for plain text",
  });
}

/** Code-unit ranges, sorted and disjoint: [lo0, hi0, lo1, hi1, …], inclusive. */
export type Ranges = number[];

/** A parsed pattern; groups leave no node of their own (only the match span is reported). */
export type Node =
  | { t: "set"; ranges: Ranges }
  | { t: "cat"; items: Node[] }
  | { t: "alt"; items: Node[] }
  | { t: "rep"; min: number; max: number; greedy: boolean; body: Node }
  | { t: "assert"; kind: Assertion };

/** `^`, `$` (per line, flag m), `\b` and `\B`. */
export type Assertion = "bol" | "eol" | "word" | "notword";

const MAX_CHAR = 0xffff;
const DIGIT: Ranges = [0x30, 0x39];
const WORD: Ranges = [0x30, 0x39, 0x41, 0x5a, 0x5f, 0x5f, 0x61, 0x7a];
const SPACE: Ranges = normalize([
  [0x09, 0x0d],
  [0x20, 0x20],
  [0xa0, 0xa0],
  [0x1680, 0x1680],
  [0x2000, 0x200a],
  [0x2028, 0x2029],
  [0x202f, 0x202f],
  [0x205f, 0x205f],
  [0x3000, 0x3000],
  [0xfeff, 0xfeff],
]);
const LINE_TERMINATORS: Ranges = [0x0a, 0x0a, 0x0d, 0x0d, 0x2028, 0x2029];
const DOT: Ranges = negate(LINE_TERMINATORS);

/** Ranges from pairs in any order, overlapping or adjacent ones merged. */
export function normalize(pairs: [number, number][]): Ranges {
  pairs.sort((a, b) => a[0] - b[0]);
  const out: Ranges = [];
  for (const [lo, hi] of pairs) {
    if (out.length > 0 && lo <= out[out.length - 1] + 1) out[out.length - 1] = Math.max(out[out.length - 1], hi);
    else out.push(lo, hi);
  }
  return out;
}

function negate(r: Ranges): Ranges {
  const out: Ranges = [];
  let next = 0;
  for (let i = 0; i < r.length; i += 2) {
    if (r[i] > next) out.push(next, r[i] - 1);
    next = r[i + 1] + 1;
  }
  if (next <= MAX_CHAR) out.push(next, MAX_CHAR);
  return out;
}

/** The [lo, hi] pairs of `r`. */
export function pairsOf(r: Ranges): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < r.length; i += 2) out.push([r[i], r[i + 1]]);
  return out;
}

/**
 * A recursive-descent parser for the subset. The source already passed
 * `new RegExp(source, "m")`, so only the refusals need their own errors.
 */
export class Parser {
  #s: string;
  #i = 0;

  constructor(source: string) {
    this.#s = source;
  }

  parse(): Node {
    const node = this.#disjunction();
    if (this.#i < this.#s.length) throw this.#unsupported(`"${this.#s[this.#i]}"`); // unreachable for valid syntax
    return node;
  }

  #disjunction(): Node {
    const items = [this.#alternative()];
    while (this.#s[this.#i] === "|") {
      this.#i++;
      items.push(this.#alternative());
    }
    return items.length === 1 ? items[0] : { t: "alt", items };
  }

  #alternative(): Node {
    const items: Node[] = [];
    while (this.#i < this.#s.length && this.#s[this.#i] !== "|" && this.#s[this.#i] !== ")") {
      const atom = this.#atom();
      items.push(this.#quantified(atom));
    }
    return items.length === 1 ? items[0] : { t: "cat", items };
  }

  #quantified(atom: Node): Node {
    const s = this.#s;
    let min: number, max: number;
    const c = s[this.#i];
    if (c === "*") [min, max] = [0, Infinity];
    else if (c === "+") [min, max] = [1, Infinity];
    else if (c === "?") [min, max] = [0, 1];
    else if (c === "{") {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(s.slice(this.#i));
      if (m === null) return atom; // a literal "{" (the atom parser took it)
      min = Number(m[1]);
      max = m[2] === undefined ? min : m[3] === "" ? Infinity : Number(m[3]);
      this.#i += m[0].length - 1;
    } else return atom;
    this.#i++;
    let greedy = true;
    if (s[this.#i] === "?") {
      greedy = false;
      this.#i++;
    }
    if (max > min && nullable(atom)) {
      throw refuse(
        `Regular expression /${s}/ repeats a part that can match empty text (before position ${this.#i})`,
        "Make the repeated part match at least one character: (a*)* is a*, (x|)+ is x*, (a?)+ is a*",
      );
    }
    return { t: "rep", min, max, greedy, body: atom };
  }

  #atom(): Node {
    const s = this.#s;
    const c = s[this.#i++];
    switch (c) {
      case "^":
        return { t: "assert", kind: "bol" };
      case "$":
        return { t: "assert", kind: "eol" };
      case ".":
        return { t: "set", ranges: DOT };
      case "[":
        return this.#class();
      case "(":
        return this.#group();
      case "\\":
        return this.#escape();
      default:
        // "{", "}" and "]" are literals where they cannot be anything else
        // (JavaScript without the u flag).
        return { t: "set", ranges: [c.charCodeAt(0), c.charCodeAt(0)] };
    }
  }

  #group(): Node {
    const s = this.#s;
    if (s[this.#i] === "?") {
      const rest = s.slice(this.#i + 1, this.#i + 3);
      if (rest[0] === ":") {
        this.#i += 2;
      } else if (rest[0] === "=" || rest[0] === "!") {
        throw refuse(
          `Regular expression /${s}/ uses a lookahead "(?${rest[0]}", which cannot be matched in linear time`,
          "Match the following text as part of the pattern instead, or pass regex=false",
        );
      } else if (rest === "<=" || rest === "<!") {
        throw refuse(
          `Regular expression /${s}/ uses a lookbehind "(?${rest}", which cannot be matched in linear time`,
          "Match the preceding text as part of the pattern instead, or pass regex=false",
        );
      } else if (rest[0] === "<") {
        this.#i = s.indexOf(">", this.#i) + 1; // a named group, only grouping here
      } else {
        throw this.#unsupported(`the group "(?${rest[0] ?? ""}"`);
      }
    }
    const body = this.#disjunction();
    this.#i++; // ")"
    return body;
  }

  #escape(): Node {
    const s = this.#s;
    const c = s[this.#i];
    if (c === "b" || c === "B") {
      this.#i++;
      return { t: "assert", kind: c === "b" ? "word" : "notword" };
    }
    if (c >= "1" && c <= "9") {
      throw refuse(
        `Regular expression /${s}/ uses a backreference "\\${c}", which cannot be matched in linear time`,
        "Repeat the text itself, or match any text there (e.g. \\w+), or pass regex=false",
      );
    }
    if (c === "k") {
      throw refuse(
        `Regular expression /${s}/ uses "\\k", a named backreference, which cannot be matched in linear time`,
        "Repeat the text itself, or match any text there (e.g. \\w+), or pass regex=false",
      );
    }
    return { t: "set", ranges: this.#charEscape() };
  }

  // After a backslash: one character (as a one-range set) or a class escape.
  #charEscape(): Ranges {
    const s = this.#s;
    const c = s[this.#i++];
    const one = (code: number): Ranges => [code, code];
    switch (c) {
      case "d":
        return DIGIT;
      case "D":
        return negate(DIGIT);
      case "w":
        return WORD;
      case "W":
        return negate(WORD);
      case "s":
        return SPACE;
      case "S":
        return negate(SPACE);
      case "n":
        return one(0x0a);
      case "r":
        return one(0x0d);
      case "t":
        return one(0x09);
      case "v":
        return one(0x0b);
      case "f":
        return one(0x0c);
      case "b":
        return one(0x08); // only reached inside a class
      case "0":
        if (s[this.#i] >= "0" && s[this.#i] <= "9") throw this.#unsupported('an octal escape like "\\01"');
        return one(0);
      case "x": {
        const hex = /^[0-9a-fA-F]{2}/.exec(s.slice(this.#i));
        if (hex === null) return one(0x78); // "\x" without two hex digits is "x"
        this.#i += 2;
        return one(parseInt(hex[0], 16));
      }
      case "u": {
        if (s[this.#i] === "{") throw this.#unsupported('"\\u{…}" (without the u flag it means "u" repeated)');
        const hex = /^[0-9a-fA-F]{4}/.exec(s.slice(this.#i));
        if (hex === null) return one(0x75);
        this.#i += 4;
        return one(parseInt(hex[0], 16));
      }
      case "c": {
        const letter = s[this.#i];
        if (letter !== undefined && /[A-Za-z]/.test(letter)) {
          this.#i++;
          return one(letter.charCodeAt(0) % 32);
        }
        throw this.#unsupported('"\\c" without a letter after it');
      }
      case "p":
      case "P":
        throw this.#unsupported(`"\\${c}" (Unicode properties need the u flag, which this tool does not use)`);
      default:
        // Outside a class, #escape took the digits (backreferences).
        if (c >= "1" && c <= "9") throw this.#unsupported(`an octal escape like "\\${c}" in a class`);
        return one(c.charCodeAt(0)); // an identity escape: "\." is "."
    }
  }

  #class(): Node {
    const s = this.#s;
    let negated = false;
    if (s[this.#i] === "^") {
      negated = true;
      this.#i++;
    }
    const pairs: [number, number][] = [];
    // One class atom: a single character (a one-range set), or a class escape.
    const atom = (): { ranges: Ranges; single: boolean } => {
      const c = s[this.#i++];
      if (c !== "\\") return { ranges: [c.charCodeAt(0), c.charCodeAt(0)], single: true };
      const ranges = this.#charEscape();
      return { ranges, single: ranges.length === 2 && ranges[0] === ranges[1] && !"dDwWsS".includes(s[this.#i - 1]) };
    };
    while (s[this.#i] !== "]") {
      const first = atom();
      if (s[this.#i] === "-" && s[this.#i + 1] !== "]" && s[this.#i + 1] !== undefined) {
        this.#i++;
        const second = atom();
        if (first.single && second.single) {
          pairs.push([first.ranges[0], second.ranges[0]]);
          continue;
        }
        // "[\d-z]": without the u flag a class escape ends no range; the "-" is literal.
        pairs.push(...pairsOf(first.ranges), [0x2d, 0x2d], ...pairsOf(second.ranges));
        continue;
      }
      pairs.push(...pairsOf(first.ranges));
    }
    this.#i++; // "]"
    const ranges = normalize(pairs);
    return { t: "set", ranges: negated ? negate(ranges) : ranges };
  }

  #unsupported(what: string): SshMcpError {
    return refuse(`Regular expression /${this.#s}/ uses ${what}, which this server does not support`);
  }
}

function nullable(node: Node): boolean {
  switch (node.t) {
    case "set":
      return false;
    case "assert":
      return true;
    case "cat":
      return node.items.every(nullable);
    case "alt":
      return node.items.some(nullable);
    case "rep":
      return node.min === 0 || nullable(node.body);
  }
}

/**
 * Instructions `node` compiles to, computed on the tree so that
 * `(a{99999}){99999}` is counted (possibly to Infinity), never built.
 */
export function programSize(node: Node): number {
  switch (node.t) {
    case "set":
    case "assert":
      return 1;
    case "cat":
      return node.items.reduce((n, item) => n + programSize(item), 0);
    case "alt":
      return node.items.reduce((n, item) => n + programSize(item), 0) + 2 * (node.items.length - 1);
    case "rep": {
      const body = programSize(node.body);
      const optional = node.max === Infinity ? 1 : node.max - node.min;
      return node.min * body + optional * (body + 2);
    }
  }
}
