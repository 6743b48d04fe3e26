import assert from "node:assert/strict";
import { escapeText, recoveredText, sftpOpenError } from "./sftp_open.ts";
import { feedSftp, sftpFixSelfTest } from "../ssh2/sftp_fix.ts";
import { loadSsh2 } from "../ssh2/mod.ts";

// sftpOpenError() reads what the SFTP repair kept, through lib/ssh2/mod.ts, which loads it at the first connection.
await loadSsh2();

const context = { host: "box", username: "ann" };

/** An error shaped as ssh2 1.17's SFTP parser makes them (`doFatalSFTPError` in lib/protocol/SFTP.js). */
function parserError(message: string): Error {
  return Object.assign(new Error(message), { level: "sftp-protocol" });
}

Deno.test("sftpOpenError() names login output, with its first bytes and the fix, when ssh2's SFTP parser failed", () => {
  // "welc": the first four bytes of `welcome to the box`, read as a packet length.
  const cause = parserError("Packet length 2003135587 exceeds max length of 262144");
  const e = sftpOpenError(cause, context);
  assert.equal(e.code, "SFTP_LOGIN_OUTPUT");
  assert.equal(e.message, 'Server box sent text instead of SFTP, starting "welc"');
  assert.match(e.hint!, /^The login files of ann print output even in non-interactive shells/);
  assert.match(e.hint!, /`\[ -t 1 \] && echo …` or `case \$- in \*i\*\) …`/);
  assert.equal(e.retryable, false);
  assert.equal(e.cause, cause);
});

Deno.test("sftpOpenError() names login output for any parser failure before VERSION, without text it cannot know", () => {
  const e = sftpOpenError(parserError("Expected VERSION packet, got 101"), context);
  assert.equal(e.code, "SFTP_LOGIN_OUTPUT");
  assert.equal(e.message, "Server box sent something other than SFTP when the SFTP session started");
});

Deno.test("sftpOpenError() shows all the text the SFTP repair kept, non-ASCII escaped", () => {
  assert.equal(sftpFixSelfTest(), null);
  const greeting = new TextEncoder().encode('élan — "bienvenue"\n');
  const [err] = feedSftp([greeting]).errors;
  const e = sftpOpenError(err, context);
  assert.equal(e.code, "SFTP_LOGIN_OUTPUT");
  assert.equal(
    e.message,
    'Server box sent text instead of SFTP, starting "\\xc3\\xa9lan \\xe2\\x80\\x94 \\"bienvenue\\"\\n"',
  );
  assert.equal(e.cause, err);
});

Deno.test("sftpOpenError() shows the login text only, when the SFTP server's first packet came in the same read", () => {
  const greeting = new TextEncoder().encode("welcome\n");
  // SSH_FXP_VERSION 3, as sftp-server sends it: length 5, type 2, version 3.
  const version = Uint8Array.of(0, 0, 0, 5, 2, 0, 0, 0, 3);
  const [err] = feedSftp([Uint8Array.from([...greeting, ...version])]).errors;
  assert.equal(sftpOpenError(err, context).message, 'Server box sent text instead of SFTP, starting "welcome\\n"');
  // Nothing before the NUL: no text to show.
  const [binary] = feedSftp([Uint8Array.of(0, 5, 0, 0, 1, 2, 3, 4, 5)]).errors;
  assert.equal(
    sftpOpenError(binary, context).message,
    "Server box sent something other than SFTP when the SFTP session started",
  );
});

Deno.test("sftpOpenError() keeps SFTP_UNAVAILABLE for a refused subsystem or one that ended", () => {
  for (const message of ["Unable to start subsystem: sftp", "Received exit code 127 while establishing SFTP session"]) {
    const e = sftpOpenError(new Error(message), context);
    assert.equal(e.code, "SFTP_UNAVAILABLE");
    assert.equal(e.message, "Server box offers no SFTP subsystem");
    assert.equal(e.hint, "Enable `Subsystem sftp` in its sshd_config, or use ssh_execute for file work");
  }
  // A message that looks like the parser's is not enough: the level says who failed.
  const lookalike = sftpOpenError(new Error("Packet length 2003135587 exceeds max length of 262144"), context);
  assert.equal(lookalike.code, "SFTP_UNAVAILABLE");
});

Deno.test("recoveredText() gives back the four bytes of the length, control bytes shown escaped", () => {
  // "\n\x1b[3": a newline and the start of a colour escape, as a banner script might print.
  const bytes = recoveredText(parserError("Packet length 169564979 exceeds max length of 262144"));
  assert.deepEqual(bytes, Uint8Array.of(0x0a, 0x1b, 0x5b, 0x33));
  assert.equal(escapeText(bytes!), "\\n\\x1b[3");
  assert.equal(recoveredText(parserError("Invalid packet length")), null);
  assert.equal(recoveredText(parserError("Packet length 99999999999 exceeds max length of 262144")), null);
});

Deno.test("escapeText() escapes quotes, backslashes and non-ASCII, and cuts at the cap with a mark", () => {
  assert.equal(escapeText(new TextEncoder().encode('a"b\\c\té\r')), 'a\\"b\\\\c\\t\\xc3\\xa9\\r');
  const long = escapeText(new Uint8Array(100).fill(0x41), 80);
  assert.equal(long, "A".repeat(80) + "…");
  // An escape is never cut in half.
  assert.equal(escapeText(Uint8Array.of(0x41, 0x41, 0x01), 4), "AA…");
  assert.equal(escapeText(new Uint8Array(80).fill(0x41), 80), "A".repeat(80));
});
