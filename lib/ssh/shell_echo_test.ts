import assert from "node:assert/strict";
import { echoEnd, expectedEcho } from "./shell_echo.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const BASH_ENTER = "\r\n\x1b[?2004l\r";

Deno.test("echoEnd() finds readline's echo of a line and stops before what follows", () => {
  const sent = expectedEcho(`python3 -c 'input("name? ")'\r`);
  const out = `python3 -c 'input("name? ")'${BASH_ENTER}name? `;
  const end = echoEnd(sent, enc(out));
  assert.equal(new TextDecoder().decode(enc(out).subarray(end!)), "\x1b[?2004l\rname? ");
});

Deno.test("echoEnd() reads through readline's carriage return at the wrap of a long line", () => {
  const line = "echo " + "x".repeat(130) + " done";
  const out = `echo ${"x".repeat(89)}\r${"x".repeat(41)} done${BASH_ENTER}${"x".repeat(130)} done\r\n`;
  const end = echoEnd(expectedEcho(line + "\r"), enc(out))!;
  assert.ok(new TextDecoder().decode(enc(out).subarray(end)).startsWith("\x1b[?2004l\rxxx"));
});

Deno.test("echoEnd() skips nothing when echo is off and the program prints first", () => {
  assert.equal(echoEnd(expectedEcho("secret\r"), enc("\r\nWelcome\r\n")), 0);
  assert.equal(echoEnd(expectedEcho("s3cret\r"), enc("s3x")), 0, "a partly matching line is not hidden");
});

Deno.test("echoEnd() waits while the output so far agrees with the echo", () => {
  const sent = expectedEcho("echo hi\r");
  assert.equal(echoEnd(sent, enc("")), null);
  assert.equal(echoEnd(sent, enc("echo h")), null);
  assert.equal(echoEnd(sent, enc("echo hi\r")), null, "the line break is part of the echo");
  assert.equal(echoEnd(sent, enc("echo hi\x1b[")), null, "an escape sequence still arriving");
  assert.equal(echoEnd(sent, enc("echo h"), true), 0, "nothing more will come");
  assert.equal(echoEnd(sent, enc("echo hi\r\n")), 9);
});

Deno.test("echoEnd() counts only whole lines of a multi-line send that the output diverged from", () => {
  const sent = expectedEcho("echo a\necho b\r");
  const out = enc("echo a\r\na\r\n$ echo b\r\nb\r\n");
  assert.equal(echoEnd(sent, out), 8); // just past "echo a\r\n"
});

Deno.test("echoEnd() ignores colors, titles and bracketed paste in the echo", () => {
  const out = enc("\x1b[?2004h\x1b]0;title\x07\x1b[01;32mls\x1b[0m\r\nfile\r\n");
  assert.equal(echoEnd(expectedEcho("ls\r"), out), out.indexOf(0x66)); // at "file"
});

Deno.test("expectedEcho() stops at a control key and keeps UTF-8 whole", () => {
  assert.deepEqual(expectedEcho("a\tb"), [0x61]);
  assert.deepEqual(expectedEcho("\x03"), []);
  assert.deepEqual(expectedEcho("é"), [0xc3, 0xa9]);
  assert.equal(echoEnd(expectedEcho("é\r"), enc("é\r\nok")), 4);
  assert.equal(echoEnd([], enc("anything")), 0);
});
