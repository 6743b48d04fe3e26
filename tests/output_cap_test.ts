/**
 * End to end: an agent asks for less output than the configured cap (issue
 * 16), on the shipped permission set against a real sshd.
 */

import assert from "node:assert/strict";
import { call, callOk, connectWithKey, startServer } from "./fixtures/mcp.ts";
import { sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable();

Deno.test({ name: "max_output_bytes caps one call's output below the configured cap", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const kh = await sshd.writeKnownHosts();
  await using server = await startServer({ args: ["--known-hosts", kh] });
  const c = server.client;
  const sid = await connectWithKey(c, sshd);
  // seq 1 200000 prints 1,288,895 bytes; the default cap keeps 100,000 of them.
  const whole = await callOk(c, "ssh_execute", { session_id: sid, command: "seq 1 200000" });
  assert.equal(whole.structured.stdout_bytes, 1288895);
  assert.ok(whole.structured.stdout.length > 99_000);
  const small = await callOk(c, "ssh_execute", { session_id: sid, command: "seq 1 200000", max_output_bytes: 2048 });
  assert.equal(small.structured.truncated, true);
  assert.equal(small.structured.stdout_bytes, 1288895, "the total is still counted");
  assert.match(
    small.structured.stdout,
    /^1\n2\n3\n[\s\S]*\[\.\.\. \d+ bytes omitted of 1288895 total \.\.\.\][\s\S]*\n200000\n$/,
  );
  assert.ok(small.structured.stdout.length < 2048 + 100, `${small.structured.stdout.length} characters`);
  assert.ok(small.text.length < 2048 + 400, `${small.text.length} characters of text`);
  // More than the configured cap is refused, naming the field.
  const more = await call(c, "ssh_execute", { session_id: sid, command: "true", max_output_bytes: 200_000 });
  assert.equal(more.code, "INVALID_ARGUMENT");
  assert.match(more.text, /max_output_bytes/);
  // sudo takes it too (sudo -n refuses here without a password: the field is accepted before that).
  const sudo = await call(c, "ssh_sudo_execute", { session_id: sid, command: "true", max_output_bytes: 1024 });
  assert.notEqual(sudo.code, "INVALID_ARGUMENT", sudo.text);
});
