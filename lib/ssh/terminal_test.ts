import assert from "node:assert/strict";
import { Screen } from "./terminal.ts";
import { toText } from "./terminal_text.ts";

const utf8 = new TextEncoder();

Deno.test("toText() strips color sequences", () => {
  assert.equal(toText("\x1b[1;31mred\x1b[0m and \x1b[38;5;208morange\x1b[m"), "red and orange");
});

Deno.test("toText() strips OSC titles ended by BEL or ST", () => {
  assert.equal(toText("\x1b]0;title\x07prompt$ "), "prompt$ ");
  assert.equal(toText("\x1b]2;user@host: ~\x1b\\prompt$ "), "prompt$ ");
  assert.equal(toText("\x1b]8;;https://example.com\x07link\x1b]8;;\x07"), "link");
});

Deno.test("toText() strips cursor moves, screen clears and mode switches", () => {
  assert.equal(toText("\x1b[H\x1b[2J\x1b[6;11Hhere\x1b[?25l\x1b[?1049h\x1b[A\x1b[10D"), "here");
});

Deno.test("toText() strips DCS, APC and two-character and charset escapes", () => {
  assert.equal(toText("a\x1bP1$r0m\x1b\\b\x1b_apc\x1b\\c\x1b=\x1b>\x1b7\x1b8\x1b(B\x1b)0\x1b#8d"), "abcd");
});

Deno.test("toText() applies a carriage return as an overwrite of the line", () => {
  assert.equal(toText("abc\rX"), "Xbc");
  assert.equal(toText("abc\rX\ndef"), "Xbc\ndef");
});

Deno.test("toText() keeps only the last state of a progress bar", () => {
  assert.equal(toText("progress 10%\rprogress 20%\n"), "progress 20%\n");
  assert.equal(toText("[#   ] 25%\r[##  ] 50%\r[####] 100%\ndone\n"), "[####] 100%\ndone\n");
});

Deno.test("toText() applies erase-in-line so a shorter redraw leaves no leftovers", () => {
  assert.equal(toText("downloading 100%\rdone\x1b[K\n"), "done\n");
  assert.equal(toText("abcdef\r\x1b[2Kxy"), "xy");
  // Cursor moves are not followed, so the erase keeps the column it finds.
  assert.equal(toText("abc\x1b[2Kxy"), "   xy");
});

Deno.test("toText() turns CRLF into LF", () => {
  assert.equal(toText("one\r\ntwo\r\n"), "one\ntwo\n");
});

Deno.test("toText() applies backspace to the previous character", () => {
  assert.equal(toText("abc\b\bX"), "aX");
  assert.equal(toText("ls -l\b\b\n"), "ls \n");
  assert.equal(toText("\bstart"), "start");
  assert.equal(toText("abcd\r12\bX"), "1Xcd");
});

Deno.test("toText() strips bracketed paste markers", () => {
  assert.equal(toText("\x1b[?2004hprompt$ echo hi\x1b[?2004l\r\nhi\r\n"), "prompt$ echo hi\nhi\n");
});

Deno.test("toText() drops a trailing incomplete escape sequence", () => {
  assert.equal(toText("text\x1b["), "text");
  assert.equal(toText("text\x1b"), "text");
  assert.equal(toText("text\x1b[1;3"), "text");
  assert.equal(toText("text\x1b]0;unfinished title"), "text");
});

Deno.test("toText() removes other C0 and C1 controls", () => {
  assert.equal(toText("a\x07b\x00c\x0ed\x7fe\u0085f"), "abcdef");
  assert.equal(toText("a\u009b31mb\u009d0;t\u0007c"), "abc");
});

Deno.test("toText() keeps tabs, emoji and CJK text", () => {
  assert.equal(toText("a\tb\n🙂 表示 ✓\n"), "a\tb\n🙂 表示 ✓\n");
  assert.equal(toText("🙂🙂\rX"), "X🙂");
});

Deno.test("toText() strips a megabyte of escape sequences, unterminated ones included", () => {
  const chunk = "\x1b[1;31mx\x1b[0m\x1b]0;t\x07\x1b[?2004h\r\b";
  const big = chunk.repeat(Math.ceil(1_000_000 / chunk.length));
  // Unterminated sequences are the worst case for a backtracking regex.
  const open = "\x1b[" + "1;".repeat(500_000);
  assert.equal(toText(big), "x");
  assert.equal(toText(open), "");
  assert.equal(toText("\x1b]".repeat(300_000)), "");
});

Deno.test("Screen shows text and the cursor where the output put them", async () => {
  using screen = new Screen({ cols: 40, rows: 10 });
  await screen.write("\x1b[H\x1b[2J" + "abc\rX" + "\x1b[6;11H" + "here");
  const snap = screen.snapshot();
  assert.equal(snap.lines.length, 10);
  assert.equal(snap.lines[0], "Xbc");
  assert.equal(snap.lines[5], " ".repeat(10) + "here");
  assert.deepEqual(snap.cursor, { row: 5, col: 14 });
  assert.equal(snap.cols, 40);
  assert.equal(snap.rows, 10);
});

Deno.test("Screen wraps a long line at the width", async () => {
  using screen = new Screen({ cols: 10, rows: 4 });
  await screen.write("0123456789abcde");
  const snap = screen.snapshot();
  assert.deepEqual(snap.lines, ["0123456789", "abcde", "", ""]);
  assert.deepEqual(snap.cursor, { row: 1, col: 5 });
});

Deno.test("Screen keeps the last rows lines after scrolling past the bottom", async () => {
  using screen = new Screen({ cols: 20, rows: 3 });
  await screen.write(Array.from({ length: 10 }, (_, i) => `line ${i}`).join("\r\n"));
  const snap = screen.snapshot();
  assert.deepEqual(snap.lines, ["line 7", "line 8", "line 9"]);
  assert.deepEqual(snap.cursor, { row: 2, col: 6 });
});

Deno.test("Screen shows the alternate screen while it is active and the normal one after", async () => {
  using screen = new Screen({ cols: 20, rows: 4 });
  await screen.write("$ top\r\n");
  await screen.write("\x1b[?1049h\x1b[H\x1b[2Jfull screen");
  assert.deepEqual(screen.snapshot().lines, ["full screen", "", "", ""]);
  await screen.write("\x1b[?1049l");
  const snap = screen.snapshot();
  assert.deepEqual(snap.lines, ["$ top", "", "", ""]);
  assert.deepEqual(snap.cursor, { row: 1, col: 0 });
});

Deno.test("Screen renders a UTF-8 character split across two byte writes", async () => {
  using screen = new Screen({ cols: 20, rows: 2 });
  const bytes = utf8.encode("a🙂表b");
  await screen.write(bytes.subarray(0, 3));
  await screen.write(bytes.subarray(3));
  assert.equal(screen.snapshot().lines[0], "a🙂表b");
});

Deno.test("Screen resize changes the snapshot dimensions", async () => {
  using screen = new Screen({ cols: 20, rows: 5 });
  await screen.write("hello");
  screen.resize(30, 8);
  const snap = screen.snapshot();
  assert.equal(snap.cols, 30);
  assert.equal(snap.rows, 8);
  assert.equal(snap.lines.length, 8);
  assert.equal(snap.lines[0], "hello");
});

Deno.test("Screen keeps write order across 100 concurrent writes", async () => {
  using screen = new Screen({ cols: 10, rows: 100 });
  await Promise.all(
    Array.from({ length: 100 }, (_, i) => screen.write(i % 2 ? `${i}\r\n` : utf8.encode(`${i}\r\n`))),
  );
  const snap = screen.snapshot();
  assert.deepEqual(snap.lines.slice(0, 99), Array.from({ length: 99 }, (_, i) => String(i + 1)));
});

Deno.test("Screen rejects sizes out of bounds with RangeError", () => {
  assert.throws(() => new Screen({ cols: 1, rows: 10 }), RangeError);
  assert.throws(() => new Screen({ cols: 1001, rows: 10 }), RangeError);
  assert.throws(() => new Screen({ cols: 80, rows: 501 }), RangeError);
  assert.throws(() => new Screen({ cols: 80.5, rows: 24 }), RangeError);
  using screen = new Screen({ cols: 2, rows: 2 });
  assert.throws(() => screen.resize(80, 1), RangeError);
  assert.equal(screen.snapshot().cols, 2);
});

Deno.test("Screen dispose settles pending writes and refuses later use", async () => {
  const screen = new Screen({ cols: 20, rows: 5 });
  const pending = screen.write("x".repeat(100_000));
  screen.dispose();
  await pending;
  screen.dispose();
  await assert.rejects(screen.write("y"), /disposed/);
  assert.throws(() => screen.snapshot(), /disposed/);
});
