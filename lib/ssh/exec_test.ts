import assert from "node:assert/strict";
import { buildCommandLine, buildSudoCommand, PidPrefix } from "./exec.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

Deno.test("buildCommandLine() quotes cwd and env values so the remote sees literals", () => {
  const line = buildCommandLine({
    command: "echo hi",
    cwd: "/tmp/x; touch /tmp/pwned",
    env: { A: "$(id)", B: "it's" },
  });
  assert.match(line, /export A='\$\(id\)'/);
  assert.match(line, /export B='it'\\''s'/);
  assert.match(line, /cd -- '\/tmp\/x; touch \/tmp\/pwned' \|\| exit 1/);
  assert.ok(line.endsWith("\necho hi"));
});

Deno.test("buildSudoCommand() reads the password from stdin, gives the command /dev/null and a root-side bound", () => {
  const withPassword = buildSudoCommand("echo 'hi'; id", { withPassword: true, timeoutSeconds: 2.5 });
  assert.ok(withPassword.startsWith("sudo -S -k -p '' -- sh -c 'exec </dev/null; "), withPassword);
  assert.match(withPassword, /exec timeout -s KILL "\$1" sh -c "\$2"/);
  assert.ok(withPassword.endsWith(` sh 3 'echo '\\''hi'\\''; id'`), withPassword);
  const noPassword = buildSudoCommand("id", { withPassword: false, timeoutSeconds: 60 });
  assert.ok(noPassword.startsWith("sudo -n -- sh -c "), noPassword);
  assert.ok(noPassword.endsWith(" sh 60 'id'"));
});

Deno.test("PidPrefix ignores PIDs 0 and 1, which would widen a group kill", () => {
  for (const pid of ["0", "1"]) {
    const p = new PidPrefix();
    p.take(enc.encode(`\x01MCPPID:${pid}\nout`));
    assert.equal(p.value, null);
  }
});

Deno.test("PidPrefix strips the PID line even when it arrives in pieces", () => {
  const p = new PidPrefix();
  const all = enc.encode("\x01MCPPID:4242\nhello\n");
  const out: number[] = [];
  for (const b of all) out.push(...p.take(new Uint8Array([b])));
  assert.equal(p.value, 4242);
  assert.equal(dec.decode(new Uint8Array(out)), "hello\n");
});

Deno.test("PidPrefix passes output through untouched when the shell printed no PID line", () => {
  const p = new PidPrefix();
  assert.equal(dec.decode(p.take(enc.encode("plain output\n"))), "plain output\n");
  assert.equal(p.value, null);
  assert.equal(dec.decode(p.take(enc.encode("\x01MCPPID:1\n"))), "\x01MCPPID:1\n");
});
