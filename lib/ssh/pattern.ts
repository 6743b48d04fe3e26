/**
 * Agent-supplied regular expressions, matched in linear time.
 *
 * V8's own engine backtracks: `(A+)+B` against a few thousand `A`s runs for
 * longer than the universe and blocks the event loop, so every other session
 * and even `ping` stop answering. V8's linear engine needs a flag at process
 * start, which a compiled binary or a `deno run jsr:` user does not give us.
 * So shell waits use this engine instead: a Pike VM (Thompson NFA simulation,
 * as in RE2), time O(program × input), memory O(program), with the
 * leftmost-first match that JavaScript gives (same start and end as
 * `new RegExp(source, "m").exec`).
 *
 * Supported: the JavaScript syntax without flags other than `m` — literals and
 * escapes, `.`, classes, `\d \w \s \D \W \S`, `\b \B`, `^ $` (per line),
 * groups (capturing, `(?:)` and named, all only grouping), alternation, and
 * greedy and lazy `* + ? {n} {n,} {n,m}`. Refused up front with
 * `[INVALID_ARGUMENT]`: what a linear engine cannot run (backreferences,
 * lookahead, lookbehind), a few escapes whose JavaScript meaning without the
 * `u` flag is a trap (`\p{…}`, `\u{…}`, octal), and repeating something that
 * can match empty text with a variable count (`(a*)*`), where JavaScript's
 * empty-iteration rule gives matches a Pike VM does not.
 *
 * @module
 */

import { SshMcpError } from "../errors.ts";
import {
  type Assertion,
  type Node,
  normalize,
  pairsOf,
  Parser,
  programSize,
  type Ranges,
  refuse,
} from "./pattern_syntax.ts";

/** Longest pattern accepted, in UTF-16 code units. */
export const MAX_PATTERN_LENGTH = 1000;
/** Most instructions a pattern may compile to (counted repetitions multiply). */
export const MAX_PROGRAM_SIZE = 10_000;

/** A match: where it starts in the text and the matched text. */
export interface PatternMatch {
  index: number;
  text: string;
}

/**
 * A search in progress, run a slice at a time so that a long input never
 * holds the event loop for long.
 */
export interface PatternSearch {
  /**
   * Advances by about `steps` thread steps (at least one input position).
   * @returns true once the search is over; then {@linkcode PatternSearch.result} holds its answer
   */
  run(steps: number): boolean;
  /** The match, once {@linkcode PatternSearch.run} returned true; null if there is none. */
  readonly result: PatternMatch | null;
}

/** A compiled pattern. */
export interface Pattern {
  readonly source: string;
  /** Instructions in the program (what one input position costs at most). */
  readonly size: number;
  /** The leftmost-first match in `text`, as `RegExp.prototype.exec` with flag `m` finds it. */
  exec(text: string): PatternMatch | null;
  /** The same search, to be run in slices. */
  search(text: string): PatternSearch;
}

/** What a wait searches with: a compiled pattern, or plain text. */
export type Matcher = Pick<Pattern, "search">;

/** A matcher for `pattern`: compiled when it is a regex (see {@linkcode compilePattern}), else plain text. */
export function compileMatcher(pattern: string, regex: boolean): Matcher {
  if (regex) return compilePattern(pattern);
  return {
    search: (text) => {
      const index = text.indexOf(pattern);
      const result = index < 0 ? null : { index, text: pattern };
      return { run: () => true, result };
    },
  };
}

/** Runs a search in slices of `steps`, letting other work run between them; the matched text or null. */
export async function findMatch(matcher: Matcher, text: string, steps = 100_000): Promise<string | null> {
  const search = matcher.search(text);
  while (!search.run(steps)) await new Promise((r) => setTimeout(r, 0));
  return search.result?.text ?? null;
}

/**
 * Compiles a JavaScript regular expression (flag `m`) for linear-time matching.
 *
 * @param source The pattern, as an agent wrote it.
 * @returns The compiled pattern.
 * @throws {SshMcpError} `INVALID_ARGUMENT` for a syntax error, a construct that
 *   cannot run in linear time, or a pattern over the size caps.
 * @example
 * ```ts
 * compilePattern("(A+)+B").exec("A".repeat(3000)); // null, at once
 * ```
 */
export function compilePattern(source: string): Pattern {
  if (source.length > MAX_PATTERN_LENGTH) {
    throw refuse(`Regular expression is ${source.length} characters long (limit ${MAX_PATTERN_LENGTH})`);
  }
  try {
    // Syntax only: constructing a RegExp parses it but runs nothing.
    new RegExp(source, "m");
  } catch (error) {
    const reason = (error as Error).message.replace(/^Invalid regular expression: /, "");
    throw new SshMcpError("INVALID_ARGUMENT", `Invalid regular expression: ${reason}`, {
      hint: "Fix the pattern, or pass regex=false to match it as plain text",
      cause: error,
    });
  }
  const ast = new Parser(source).parse();
  const size = programSize(ast);
  if (size > MAX_PROGRAM_SIZE) {
    throw refuse(
      `Regular expression /${source}/ expands to ${size} instructions (limit ${MAX_PROGRAM_SIZE})`,
      "Counted repetitions multiply: write {1000} as + or *, or match a shorter distinctive part of the output",
    );
  }
  const program = new Compiler(size).compile(ast);
  return {
    source,
    size: program.size,
    exec: (text) => {
      const s = new Search(program, text);
      s.run(Infinity);
      return s.result;
    },
    search: (text) => new Search(program, text),
  };
}

// ---------------------------------------------------------------------------
// Program

const OP_SET = 0; // a = set index; consumes one code unit in the set
const OP_SPLIT = 1; // try a, then b
const OP_JMP = 2; // go to a
const OP_ASSERT = 3; // a = assertion
const OP_MATCH = 4;

const ASSERTIONS: Record<Assertion, number> = { bol: 0, eol: 1, word: 2, notword: 3 };

interface Program {
  size: number;
  op: Uint8Array;
  a: Int32Array;
  b: Int32Array;
  sets: CharSet[];
  /** What a match can begin with, or null if it can be empty. */
  first: CharSet | null;
}

/** A set of code units, with a table for Latin-1, where nearly all terminal text is. */
class CharSet {
  #low = new Uint8Array(256);
  #high: Ranges;

  constructor(ranges: Ranges) {
    for (let i = 0; i < ranges.length; i += 2) {
      for (let c = ranges[i]; c <= Math.min(ranges[i + 1], 255); c++) this.#low[c] = 1;
    }
    this.#high = ranges.filter((_, i) => ranges[i - (i % 2) + 1] > 255);
  }

  has(c: number): boolean {
    if (c < 256) return this.#low[c] === 1;
    const r = this.#high;
    for (let i = 0; i < r.length; i += 2) if (c >= r[i] && c <= r[i + 1]) return true;
    return false;
  }
}

class Compiler {
  #op: Uint8Array;
  #a: Int32Array;
  #b: Int32Array;
  #n = 0;
  #sets: CharSet[] = [];
  #setRanges: Ranges[] = [];
  #setIndex = new Map<string, number>();

  constructor(size: number) {
    this.#op = new Uint8Array(size + 1);
    this.#a = new Int32Array(size + 1);
    this.#b = new Int32Array(size + 1);
  }

  compile(node: Node): Program {
    this.#emit(node);
    this.#push(OP_MATCH, 0, 0);
    return { size: this.#n, op: this.#op, a: this.#a, b: this.#b, sets: this.#sets, first: this.#first() };
  }

  // The code units a match can begin with (assertions taken as passing, so
  // a superset): where none of them is, no match starts, and the search
  // skips ahead without running threads. Null if a match can be empty.
  #first(): CharSet | null {
    const pairs: [number, number][] = [];
    const seen = new Uint8Array(this.#n);
    const stack = [0];
    while (stack.length > 0) {
      const pc = stack.pop()!;
      if (seen[pc]) continue;
      seen[pc] = 1;
      switch (this.#op[pc]) {
        case OP_MATCH:
          return null;
        case OP_SET:
          pairs.push(...pairsOf(this.#setRanges[this.#a[pc]]));
          break;
        case OP_JMP:
          stack.push(this.#a[pc]);
          break;
        case OP_SPLIT:
          stack.push(this.#a[pc], this.#b[pc]);
          break;
        case OP_ASSERT:
          stack.push(pc + 1);
      }
    }
    return new CharSet(normalize(pairs));
  }

  #push(op: number, a: number, b: number): number {
    const pc = this.#n++;
    this.#op[pc] = op;
    this.#a[pc] = a;
    this.#b[pc] = b;
    return pc;
  }

  #emit(node: Node): void {
    switch (node.t) {
      case "set": {
        const key = node.ranges.join(",");
        let index = this.#setIndex.get(key);
        if (index === undefined) {
          index = this.#sets.push(new CharSet(node.ranges)) - 1;
          this.#setRanges.push(node.ranges);
          this.#setIndex.set(key, index);
        }
        this.#push(OP_SET, index, 0);
        return;
      }
      case "assert":
        this.#push(OP_ASSERT, ASSERTIONS[node.kind], 0);
        return;
      case "cat":
        for (const item of node.items) this.#emit(item);
        return;
      case "alt": {
        // split L1, next; L1: item; jmp end; next: split L2, … ; last item
        const jumps: number[] = [];
        for (let k = 0; k < node.items.length; k++) {
          if (k === node.items.length - 1) {
            this.#emit(node.items[k]);
            break;
          }
          const split = this.#push(OP_SPLIT, 0, 0);
          this.#a[split] = this.#n;
          this.#emit(node.items[k]);
          jumps.push(this.#push(OP_JMP, 0, 0));
          this.#b[split] = this.#n;
        }
        for (const j of jumps) this.#a[j] = this.#n;
        return;
      }
      case "rep":
        return this.#repeat(node);
    }
  }

  #repeat(node: Extract<Node, { t: "rep" }>): void {
    for (let k = 0; k < node.min; k++) this.#emit(node.body);
    const split = (preferBody: number, skip: number) =>
      node.greedy ? this.#push(OP_SPLIT, preferBody, skip) : this.#push(OP_SPLIT, skip, preferBody);
    if (node.max === Infinity) {
      // L: split body, end; body; jmp L; end:
      const loop = split(0, 0);
      this.#emit(node.body);
      this.#push(OP_JMP, loop, 0);
      this.#setTargets(loop, loop + 1, this.#n, node.greedy);
      return;
    }
    // (body (body (…)?)?)? — each optional copy may skip to the very end.
    const splits: number[] = [];
    for (let k = node.min; k < node.max; k++) {
      splits.push(split(0, 0));
      this.#emit(node.body);
    }
    for (const s of splits) this.#setTargets(s, s + 1, this.#n, node.greedy);
  }

  #setTargets(split: number, body: number, skip: number, greedy: boolean): void {
    this.#a[split] = greedy ? body : skip;
    this.#b[split] = greedy ? skip : body;
  }
}

// ---------------------------------------------------------------------------
// Pike VM

function isWordChar(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || c === 0x5f || (c >= 0x61 && c <= 0x7a);
}

function isLineTerminator(c: number): boolean {
  return c === 0x0a || c === 0x0d || c === 0x2028 || c === 0x2029;
}

/**
 * One leftmost-first search. Threads are kept in priority order (the order
 * a backtracking engine would try them); a thread reaching a pc that a
 * higher-priority thread already holds at this position is dropped, as its
 * future is the same and its start is not earlier. That bounds the threads
 * to the program size, whatever the input.
 */
class Search implements PatternSearch {
  #p: Program;
  #text: string;
  #pos = 0;
  // Current and next thread lists: pcs in priority order and each one's start.
  #cur: Int32Array;
  #curStart: Int32Array;
  #curLen = 0;
  #next: Int32Array;
  #nextStart: Int32Array;
  #nextLen = 0;
  // Generation stamp per pc: visited while building the list of the
  // current generation. The current list keeps its stamps until the next
  // list is begun, so that a new start thread skips pcs already held.
  #mark: Uint32Array;
  #generation = 1;
  #stack: Int32Array;
  /** Instructions `#add` has visited since the budget last counted them. */
  #visited = 0;
  #matchStart = -1;
  #matchEnd = -1;
  #done = false;

  constructor(program: Program, text: string) {
    this.#p = program;
    this.#text = text;
    const n = program.size;
    this.#cur = new Int32Array(n);
    this.#curStart = new Int32Array(n);
    this.#next = new Int32Array(n);
    this.#nextStart = new Int32Array(n);
    this.#mark = new Uint32Array(n);
    this.#stack = new Int32Array(2 * n + 2);
  }

  get result(): PatternMatch | null {
    if (this.#matchStart < 0) return null;
    return { index: this.#matchStart, text: this.#text.slice(this.#matchStart, this.#matchEnd) };
  }

  run(steps: number): boolean {
    if (this.#done) return true;
    const { op, a, sets, first } = this.#p;
    const text = this.#text;
    const len = text.length;
    let budget = steps;
    while (true) {
      if (this.#curLen === 0 && this.#matchStart < 0 && first !== null) {
        // No thread alive: on to where a match can begin.
        let skip = this.#pos;
        while (skip < len && !first.has(text.charCodeAt(skip))) skip++;
        if (skip > this.#pos) {
          budget -= (skip - this.#pos) >> 4;
          this.#pos = skip;
          this.#generation++; // marks of the last position say nothing about this one
        }
      }
      const pos = this.#pos;
      // A thread starting here has the lowest priority, and none starts
      // once a match is known: it could only be further right.
      if (this.#matchStart < 0) this.#curLen = this.#add(this.#cur, this.#curStart, this.#curLen, 0, pos, pos);
      if (this.#curLen === 0 && this.#matchStart >= 0) break;
      const c = pos < len ? text.charCodeAt(pos) : -1;
      this.#generation++;
      let nextLen = 0;
      const cur = this.#cur;
      const curStart = this.#curStart;
      const count = this.#curLen;
      for (let k = 0; k < count; k++) {
        const pc = cur[k];
        if (op[pc] === OP_MATCH) {
          // Everything after this thread has lower priority: cut it.
          this.#matchStart = curStart[k];
          this.#matchEnd = pos;
          break;
        }
        if (c >= 0 && sets[a[pc]].has(c)) {
          nextLen = this.#add(this.#next, this.#nextStart, nextLen, pc + 1, pos + 1, curStart[k]);
        }
      }
      // The walk through jumps, splits and assertions is work too: a pattern
      // like (?:\B){9990} adds 10,000 of them per position with one thread.
      budget -= count + 1 + this.#visited;
      this.#visited = 0;
      [this.#cur, this.#next] = [this.#next, this.#cur];
      [this.#curStart, this.#nextStart] = [this.#nextStart, this.#curStart];
      this.#curLen = nextLen;
      if (pos >= len) break;
      this.#pos = pos + 1;
      if (budget <= 0) return false;
    }
    this.#done = true;
    return true;
  }

  // Appends the thread at `pc0` and everything it reaches at `pos` without
  // consuming input to `list`, depth first so that the list keeps priority
  // order; returns the new length.
  #add(list: Int32Array, listStart: Int32Array, len: number, pc0: number, pos: number, start: number): number {
    const { op, a, b } = this.#p;
    const mark = this.#mark;
    const gen = this.#generation;
    const stack = this.#stack;
    let top = 0;
    stack[top++] = pc0;
    while (top > 0) {
      const pc = stack[--top];
      if (mark[pc] === gen) continue;
      mark[pc] = gen;
      this.#visited++;
      switch (op[pc]) {
        case OP_JMP:
          stack[top++] = a[pc];
          break;
        case OP_SPLIT:
          stack[top++] = b[pc];
          stack[top++] = a[pc];
          break;
        case OP_ASSERT:
          if (this.#holds(a[pc], pos)) stack[top++] = pc + 1;
          break;
        default:
          list[len] = pc;
          listStart[len] = start;
          len++;
      }
    }
    return len;
  }

  #holds(kind: number, pos: number): boolean {
    const text = this.#text;
    const before = pos > 0 ? text.charCodeAt(pos - 1) : -1;
    const after = pos < text.length ? text.charCodeAt(pos) : -1;
    switch (kind) {
      case 0:
        return before < 0 || isLineTerminator(before);
      case 1:
        return after < 0 || isLineTerminator(after);
      default: {
        const boundary = (before >= 0 && isWordChar(before)) !== (after >= 0 && isWordChar(after));
        return kind === 2 ? boundary : !boundary;
      }
    }
  }
}
