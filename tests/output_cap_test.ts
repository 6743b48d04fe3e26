/**
 * End to end: an agent asks for less output than the configured cap (issue
 * 16), on the shipped permission set against a real sshd.
 */

import assert from "node:assert/strict";
import { call, callOk, connectWithKey } from "./fixtures/mcp.ts";
import { startInProcessServer } from "./fixtures/in_process.ts";
import { sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable();

Deno.test({ name: "max_output_bytes caps one call's output below the configured cap", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const kh = await sshd.writeKnownHosts();
  await using server = await startInProcessServer({ args: ["--known-hosts", kh] });
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

const SEQ = new TextEncoder().encode(Array.from({ length: 200000 }, (_, i) => `${i + 1}\n`).join(""));

Deno.test({ name: "a cut result's whole output is read back by range, byte-exact", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const kh = await sshd.writeKnownHosts();
  await using server = await startInProcessServer({ args: ["--known-hosts", kh] });
  const c = server.client;
  const sid = await connectWithKey(c, sshd);
  const r = await callOk(c, "ssh_execute", { session_id: sid, command: "seq 1 200000; echo err >&2" });
  const id = r.structured.output_id;
  assert.match(id, /^o-[0-9a-f]+$/);
  assert.match(r.text, new RegExp(`ssh_output_read output_id=${id}`));
  const got: Uint8Array[] = [];
  let offset = 0;
  for (;;) {
    const page = await callOk(c, "ssh_output_read", { session_id: sid, output_id: id, offset, max_bytes: 300_000 });
    assert.equal(page.structured.offset, offset);
    assert.equal(page.structured.dropped_bytes, 0);
    got.push(new TextEncoder().encode(page.structured.data));
    offset = page.structured.next_offset;
    if (page.structured.complete) break;
  }
  assert.deepEqual(new Uint8Array(got.flatMap((b) => [...b])), SEQ);
  const err = await callOk(c, "ssh_output_read", { session_id: sid, output_id: id, stream: "stderr" });
  assert.equal(err.structured.data, "err\n");
  // A result under the cap keeps nothing.
  const small = await callOk(c, "ssh_execute", { session_id: sid, command: "echo hi" });
  assert.equal(small.structured.output_id, undefined);
  // Another session cannot read it; a closed session's output is gone.
  const other = await connectWithKey(c, sshd);
  assert.equal((await call(c, "ssh_output_read", { session_id: other, output_id: id })).code, "OUTPUT_NOT_FOUND");
  await callOk(c, "ssh_close_session", { session_id: sid });
  await callOk(c, "ssh_execute", { session_id: other, command: "true" });
  assert.equal((await call(c, "ssh_output_read", { session_id: sid, output_id: id })).code, "SESSION_NOT_FOUND");
});

Deno.test({ name: "past the retention budget the oldest output goes, and a read says so", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const kh = await sshd.writeKnownHosts();
  const dir = await Deno.makeTempDir({ prefix: "mcp-retain-" });
  try {
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ output_retention_bytes: 65536 }));
    await using server = await startInProcessServer({ args: ["--known-hosts", kh, "--config", `${dir}/config.json`] });
    const c = server.client;
    const sid = await connectWithKey(c, sshd);
    const r = await callOk(c, "ssh_execute", { session_id: sid, command: "seq 1 200000" });
    const page = await callOk(c, "ssh_output_read", {
      session_id: sid,
      output_id: r.structured.output_id,
      max_bytes: 1_048_576,
    });
    const { offset, dropped_bytes, total_bytes, data, complete } = page.structured;
    assert.equal(total_bytes, SEQ.length);
    assert.ok(dropped_bytes > 0 && offset === dropped_bytes, `dropped ${dropped_bytes}, offset ${offset}`);
    assert.ok(SEQ.length - offset <= 65536, `${SEQ.length - offset} bytes kept`);
    assert.deepEqual(new TextEncoder().encode(data), SEQ.subarray(offset));
    assert.equal(complete, true);
    assert.match(page.text, /the first \d+ bytes were dropped/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
