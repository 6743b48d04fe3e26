import assert from "node:assert/strict";
import { buildSudoCommand, decodeNoise } from "./exec.ts";

Deno.test("buildSudoCommand() reads the password from stdin, gives the command /dev/null and a root-side bound", () => {
  const withPassword = buildSudoCommand("echo 'hi'; id", { withPassword: true, timeoutSeconds: 2.5 });
  assert.ok(withPassword.startsWith("sudo -S -k -p '' -- sh -c 'exec </dev/null; "), withPassword);
  assert.match(withPassword, /exec timeout -s KILL "\$1" sh -c "\$2"/);
  assert.ok(withPassword.endsWith(` sh 3 'echo '\\''hi'\\''; id'`), withPassword);
  const noPassword = buildSudoCommand("id", { withPassword: false, timeoutSeconds: 60 });
  assert.ok(noPassword.startsWith("sudo -n -- sh -c "), noPassword);
  assert.ok(noPassword.endsWith(" sh 60 'id'"));
});

Deno.test("decodeNoise() shows escape sequences of login files as text and caps the length", () => {
  const enc = new TextEncoder();
  assert.equal(decodeNoise(enc.encode("\x1b[1mhi\tthere\n"), enc.encode("err\r\n")), "\\x1b[1mhi\tthere\nerr\\x0d\n");
  assert.ok(decodeNoise(enc.encode("x".repeat(5000)), new Uint8Array(0)).endsWith("…"));
});
