import assert from "node:assert/strict";
import { SshMcpError } from "../errors.ts";
import { compilePattern, MAX_PATTERN_LENGTH, type PatternMatch } from "./pattern.ts";

function native(source: string, text: string): PatternMatch | null {
  const m = new RegExp(source, "m").exec(text);
  return m === null ? null : { index: m.index, text: m[0] };
}

function agrees(source: string, text: string): void {
  assert.deepEqual(
    compilePattern(source).exec(text),
    native(source, text),
    `/${source}/m on ${JSON.stringify(text)}`,
  );
}

// Patterns an agent writes while waiting on a shell, and the corners of the syntax.
const CORPUS = [
  "abc",
  "\\$ $",
  "^\\$ ",
  "[#$>] $",
  "^>>> ",
  "\\[mcp\\]\\$ ",
  "^42",
  "done|failed",
  "(done|failed): (\\d+)",
  "exit (?:status|code) \\d+",
  "(?<word>\\w+)=(?<value>[^\\s]*)",
  "^\\s*$",
  "^$",
  "$",
  "^",
  "\\b\\w+\\b",
  "\\Bb\\B",
  "\\bfoo\\b",
  "a|ab",
  "ab|a",
  "(a|ab)(c|bcd)(d*)",
  "a*",
  "a*?",
  "a+?b",
  "a*?b",
  "a??b",
  "a{2}",
  "a{2,}",
  "a{2,3}",
  "a{2,3}?",
  "a{0,2}b",
  "(ab){1,2}?c",
  "(?:a|b)*c",
  "(a|b)+?c",
  "[abc]+",
  "[^abc]+",
  "[a-c]{2}",
  "[\\d-z]+",
  "[-a]+",
  "[a-]+",
  "[]",
  "[^]",
  "[\\b]",
  "[\\]]",
  "\\d+\\.\\d+",
  "\\D+",
  "\\W+",
  "\\S+",
  "\\s+",
  ".+",
  ".*",
  ".*?$",
  "x{",
  "x{1",
  "x{a}",
  "}",
  "]",
  "\\x41\\u0042",
  "\\x4",
  "\\cJ",
  "\\0",
  "\\t|\\n",
  "\\/\\*",
  "(A+)+B",
  "(a|a)*b",
  "(a|aa)*c",
  "(x+x+)+y",
  "(.*a){3}",
  "^(a+)+$",
  "(\\w+\\s?)+$",
  "(a|b|ab)*c",
  "((a)|b)+",
  "(?:(a)|(b))*?c",
  "a(?:b|c)*d",
  "^[^\\n]*error",
  "[\\s\\S]*?end",
  "(?:\\r?\\n){2}",
  "é+",
  "\\u00e9|\\u2028",
  "(a{2}){2}",
  "(a?){2}",
  "(a*){3}",
  "(a*b)*",
  "(a+|b)*",
  "(^a|b)+",
  "(a$|b)+",
  "(\\ba|b)+",
];

const INPUTS = [
  "",
  "a",
  "aa",
  "aaab",
  "abcd",
  "ab\ncd",
  "xxabcxx",
  "foo\n$ ",
  "[mcp]$ ls\nfile\n[mcp]$ ",
  ">>> print(6*7)\n42\n>>> ",
  "build done: 3 ok\nexit status 0\n",
  "FAILED: 12 tests\r\nexit code 1",
  "key=value other=thing",
  "a foo b foobar",
  "abba cab",
  "1-z 9.75 x{1 x{a} ]}",
  "AAAAAAAAAAAAB",
  "xxxxxxxxy",
  "aaaaaaaaac",
  "a\n\nb\r\n\r\nc",
  "café éé \u2028 line",
  "\t\u000b\f\u00a0\ufeff ",
  "/* comment */",
  "some error here\nerror at start",
  "abaabbbaaac",
  "\b\u0000A\u0042",
  "😀 emoji a😀b",
];

Deno.test("compilePattern() matches what RegExp matches on a corpus of patterns and inputs", () => {
  let compared = 0;
  for (const source of CORPUS) {
    for (const text of INPUTS) {
      agrees(source, text);
      compared++;
    }
  }
  assert.ok(compared > 2000);
});

// Mulberry32: small, seedable, good enough to pick test inputs.
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEED = Number(Deno.env.get("PATTERN_TEST_SEED") ?? Date.now() % 1_000_000);

Deno.test(`compilePattern() matches RegExp on random patterns and inputs (seed ${SEED}, PATTERN_TEST_SEED replays)`, () => {
  console.log(`pattern differential seed: ${SEED}`);
  const random = prng(SEED);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
  const atoms = ["a", "b", "c", ".", "[ab]", "[^a]", "\\w", "\\s", "\\d", "\\n", " ", "x"];
  const quantifiers = ["", "", "", "*", "+", "?", "*?", "+?", "??", "{2}", "{1,2}", "{0,3}?", "{2,}"];
  const assertions = ["^", "$", "\\b", "\\B"];
  function term(depth: number): string {
    const r = random();
    if (r < 0.1) return pick(assertions);
    if (r < 0.3 && depth > 0) return `(${pick(["", "?:"])}${alternation(depth - 1)})${pick(quantifiers)}`;
    return pick(atoms) + pick(quantifiers);
  }
  function sequence(depth: number): string {
    let s = "";
    for (let n = Math.floor(random() * 4); n >= 0; n--) s += term(depth);
    return s;
  }
  function alternation(depth: number): string {
    return random() < 0.3 ? `${sequence(depth)}|${sequence(depth)}` : sequence(depth);
  }
  const alphabet = "aabbcx 1\n";
  let compared = 0;
  let refused = 0;
  for (let p = 0; p < 1500; p++) {
    const source = alternation(2);
    try {
      compilePattern(source);
    } catch (error) {
      // Only the one refusal random patterns can hit: a nullable part repeated.
      assert.ok(error instanceof SshMcpError && /can match empty text/.test(error.message), String(error));
      refused++;
      continue;
    }
    for (let k = 0; k < 8; k++) {
      let text = "";
      for (let n = Math.floor(random() * 14); n > 0; n--) text += pick([...alphabet]);
      agrees(source, text);
      compared++;
    }
  }
  console.log(`compared ${compared} matches, ${refused} patterns refused`);
  assert.ok(compared > 5000);
});

function refusal(source: string): SshMcpError {
  try {
    compilePattern(source);
  } catch (error) {
    assert.ok(error instanceof SshMcpError);
    assert.equal(error.code, "INVALID_ARGUMENT");
    return error;
  }
  throw new Error(`/${source}/ was accepted`);
}

Deno.test("compilePattern() refuses what cannot run in linear time, naming the construct", () => {
  assert.match(refusal("(a)\\1").message, /backreference "\\1"/);
  assert.match(refusal("(?<n>a)\\k<n>").message, /named backreference/);
  assert.match(refusal("a(?=b)").message, /lookahead "\(\?="/);
  assert.match(refusal("a(?!b)").message, /lookahead "\(\?!"/);
  assert.match(refusal("(?<=a)b").message, /lookbehind "\(\?<="/);
  assert.match(refusal("(?<!a)b").message, /lookbehind "\(\?<!"/);
  assert.match(refusal("(a*)*").message, /can match empty text/);
  assert.match(refusal("(|x)+").message, /can match empty text/);
  assert.match(refusal("(a?){2,3}").message, /can match empty text/);
  assert.match(refusal("\\p{L}").message, /"\\p"/);
  assert.match(refusal("\\u{41}").message, /"\\u\{…\}"/);
  assert.match(refusal("[\\1]").message, /octal/);
  for (const source of ["(a)\\1", "a(?=b)", "(a*)*"]) {
    assert.match(refusal(source).hint ?? "", /regex=false|Rewrite|Make the repeated part/);
  }
});

Deno.test("compilePattern() reports a syntax error as INVALID_ARGUMENT", () => {
  assert.match(refusal("(ab").message, /^Invalid regular expression: .*Unterminated group/);
  assert.match(refusal("a**").message, /Nothing to repeat/);
  assert.match(refusal("[b-a]").message, /Range out of order/);
});

Deno.test("compilePattern() caps the pattern and the program it expands to", () => {
  assert.match(refusal("a".repeat(MAX_PATTERN_LENGTH + 1)).message, /1001 characters long \(limit 1000\)/);
  compilePattern("a".repeat(MAX_PATTERN_LENGTH));
  assert.match(refusal("(a{1000}){1000}").message, /expands to 1000000 instructions/);
  assert.match(refusal("((a{100}){100}){100}").message, /expands to 1000000 instructions/);
  assert.match(refusal("a{0,4294967295}").message, /instructions \(limit/);
  // {n} with n past 2^53 must not loop or allocate either.
  assert.match(refusal("a{99999999999999999999}").message, /instructions \(limit/);
  assert.ok(compilePattern("\\w{1,100} \\d{2,50}").size < 1000);
});

Deno.test("pathological patterns answer on 3000 characters and on 1 MB", () => {
  const cases: [string, string][] = [
    ["(A+)+B", "A"],
    ["(a|a)*b", "a"],
    ["(a|aa)*c", "a"],
    ["(x+x+)+y", "x"],
    ["(.*a){20}", "a"],
    ["^(\\w+\\s?)+$", "a"],
  ];
  for (const [source, unit] of cases) {
    const pattern = compilePattern(source);
    for (const size of [3000, 1 << 20]) {
      const text = unit.repeat(size - 1) + "!";
      const started = performance.now();
      const found = pattern.exec(text);
      const ms = performance.now() - started;
      // Timings are printed, not asserted; finishing at all is the property.
      console.log(`/${source}/ (${pattern.size} instructions) on ${size} chars: ${ms.toFixed(1)} ms`);
      const expected = source === "(.*a){20}" ? { index: 0, text: text.slice(0, -1) } : null;
      assert.deepEqual(found, expected, source);
    }
  }
});

Deno.test("PatternSearch runs in slices and ends with the same match as exec", () => {
  // Every line starts like the prompt, so threads stay alive all the way.
  const text = "[mcp]$ x\n".repeat(20_000) + "[mcp]$ ";
  const pattern = compilePattern("^\\[mcp\\]\\$ $");
  const search = pattern.search(text);
  let slices = 1;
  while (!search.run(10_000)) slices++;
  assert.ok(slices > 5, `${slices} slices`);
  assert.deepEqual(search.result, { index: 180_000, text: "[mcp]$ " });
  assert.deepEqual(pattern.exec(text), search.result);
  assert.equal(search.run(10_000), true); // done stays done
});

Deno.test("a slice's step budget counts the jumps, splits and assertions walked, not only live threads", () => {
  // 15 characters that compile to ~10,000 assertions, with one thread alive: each position walks them all.
  // Counting live threads only, 4096 positions fit in one slice of 100,000 steps, which took seconds on 64 KiB.
  const search = compilePattern("(?:\\B){9990}-x").search("-".repeat(4096));
  let slices = 1;
  while (!search.run(100_000)) slices++;
  assert.equal(search.result, null);
  assert.ok(slices > 100, `${slices} slices: the walk through the program was not counted`);
});
