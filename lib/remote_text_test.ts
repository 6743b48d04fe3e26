import assert from "node:assert/strict";
import { neutralise, quoteName } from "./remote_text.ts";

Deno.test("neutralise() escapes ESC sequences, OSC 52, OSC 0 and C1 controls, leaving the rest as text", () => {
  assert.equal(neutralise("\x1b[2J\x1b[H"), "\\x1b[2J\\x1b[H");
  assert.equal(neutralise("\x1b]52;c;cm0gLXJmIH4=\x07"), "\\x1b]52;c;cm0gLXJmIH4=\\x07");
  assert.equal(neutralise("\x1b]0;owned\x1b\\"), "\\x1b]0;owned\\x1b\\");
  assert.equal(neutralise("\u009b2J\u009d0;t\u009c\u0085"), "\\x9b2J\\x9d0;t\\x9c\\x85");
  assert.equal(neutralise("\0\x01\x08\x0b\x0c\x1f\x7f"), "\\x00\\x01\\x08\\x0b\\x0c\\x1f\\x7f");
});

Deno.test("neutralise() escapes bidi controls, line separators, tags and invisible characters", () => {
  assert.equal(neutralise("abc\u202Etxt.exe"), "abc\\u202etxt.exe");
  for (const c of [0x202a, 0x202b, 0x202c, 0x202d, 0x2066, 0x2067, 0x2068, 0x2069, 0x200e, 0x200f, 0x061c]) {
    assert.equal(neutralise(String.fromCodePoint(c)), `\\u${c.toString(16).padStart(4, "0")}`);
  }
  assert.equal(neutralise("a\u2028b\u2029c"), "a\\u2028b\\u2029c");
  // "hi" in tag characters: invisible to a person, read by a model.
  assert.equal(neutralise("ok\u{e0068}\u{e0069}"), "ok\\u{e0068}\\u{e0069}");
  assert.equal(neutralise("\ufeffr\u200bm\u00ad\u2060"), "\\ufeffr\\u200bm\\xad\\u2060");
});

Deno.test("neutralise() keeps plain text, newlines, tabs, line-ending CRs, emoji and backslashes as they are", () => {
  const plain = "héllo\tworld\n日本語 ✓ C:\\Users\\x \\x1b 👨‍👩‍👧 ❤️ مرحبا עברית\n";
  assert.equal(neutralise(plain), plain);
  assert.equal(neutralise("a\r\nb\r\r\nc\r\n"), "a\r\nb\r\r\nc\r\n");
  assert.equal(neutralise(""), "");
});

Deno.test("neutralise() escapes a CR that is not part of a line ending, since it overwrites shown text", () => {
  assert.equal(neutralise("echo safe\rrm -rf ~"), "echo safe\\x0drm -rf ~");
  assert.equal(neutralise("10%\r\r50%\r\n"), "10%\\x0d\\x0d50%\r\n");
  assert.equal(neutralise("end\r"), "end\\x0d");
  assert.equal(neutralise("\r\n\r"), "\r\n\\x0d");
});

Deno.test("neutralise() output holds no character it would escape, for every code unit below U+3000", () => {
  let all = "";
  for (let c = 0; c < 0x3000; c++) all += String.fromCharCode(c);
  const once = neutralise(all);
  // Compared as booleans and a short excerpt: a failing diff of 12k characters would bury the report.
  assert.equal(neutralise(once) === once, true, "neutralise() of its own output changed it");
  // deno-lint-ignore no-control-regex
  const raw = once.match(/[\0-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/);
  assert.equal(raw, null, `raw U+${raw?.[0].codePointAt(0)?.toString(16)} left in the output`);
});

Deno.test("quoteName() shows plain names as they are and quotes names that could forge or hide text", () => {
  for (const plain of ["notes.txt", "a b", "日本", "C:\\x", "it's", "-rf", "a->b"]) {
    assert.equal(quoteName(plain), plain);
  }
  assert.equal(quoteName("a\nb"), '"a\\nb"');
  assert.equal(quoteName("evil\n-rw-r--r-- 0 root"), '"evil\\n-rw-r--r-- 0 root"');
  assert.equal(quoteName(" lead"), '" lead"');
  assert.equal(quoteName("trail "), '"trail "');
  assert.equal(quoteName('say "hi"'), '"say \\"hi\\""');
  assert.equal(quoteName('"'), '"\\""');
  assert.equal(quoteName("a\tb\rc"), '"a\\tb\\rc"');
  assert.equal(quoteName("x\x1b[2J\\"), '"x\\x1b[2J\\\\"');
  assert.equal(quoteName("gpj.\u202eexe"), '"gpj.\\u202eexe"');
  assert.equal(quoteName("link -> /etc/shadow"), '"link -> /etc/shadow"');
  assert.equal(quoteName(""), '""');
  assert.equal(quoteName("\u{e0041}"), '"\\u{e0041}"');
});

Deno.test("quoteName() output is one line with no character neutralise() would change", () => {
  for (const name of ["a\nb", "\x1b]52;c;x\x07", "\u202e\u2066", "a\r\nb", "\u0085\u2028"]) {
    const shown = quoteName(name);
    assert.equal(neutralise(shown), shown);
    assert.doesNotMatch(shown, /[\n\r]/);
  }
});
