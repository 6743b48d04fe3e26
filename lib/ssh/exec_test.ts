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

Deno.test("buildSudoCommand() keeps the password off the command line and stdin away from the command", () => {
  assert.equal(buildSudoCommand("id", true), `sudo -S -k -p '' -- sh -c 'exec </dev/null\nid'`);
  assert.equal(buildSudoCommand("id", false), `sudo -n -- sh -c 'exec </dev/null\nid'`);
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
