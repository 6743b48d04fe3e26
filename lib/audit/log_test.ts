// Tests of the audit log file: modes, rotation, the chain across reopen and
// rotation, concurrency, torn records, and failing closed (unwritable paths,
// a full disk), with the secret canary checked under the shipped permission
// set. Run as a script (`deno run -P … log_test.ts child DIR`), it is that
// permission-set child.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { SshMcpError } from "../errors.ts";
import { type AuditEntry, AuditLog, verifyAudit } from "./mod.ts";

const CANARY = "canary-Secret-7f3a91";
const isRoot = Deno.uid() === 0;

function entry(i: number, extra: Partial<AuditEntry> = {}): AuditEntry {
  return {
    startedAt: new Date(Date.UTC(2026, 0, 1, 0, 0, 0, i)),
    durationMs: i,
    transportSession: "stdio",
    sshSession: "s1",
    host: "127.0.0.1",
    port: 22,
    user: "u",
    tool: "ssh_execute",
    arguments: { session_id: "s1", command: `echo ${i}` },
    outcome: "ok",
    exitCode: 0,
    signal: null,
    bytesIn: 0,
    bytesOut: 2,
    approval: "not_required",
    ...extra,
  };
}

async function tempDir(): Promise<string & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "mcp-audit-" });
  return Object.assign(dir, { [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) });
}

async function lines(path: string): Promise<string[]> {
  return (await Deno.readTextFile(path)).split("\n").slice(0, -1);
}

function mode(path: string): number {
  return Deno.statSync(path).mode! & 0o777;
}

async function rejectsAuditFailed(promise: Promise<unknown>): Promise<SshMcpError> {
  const error = await promise.then(() => null, (e) => e);
  assert.ok(error instanceof SshMcpError, `expected AUDIT_FAILED, got ${error}`);
  assert.equal(error.code, "AUDIT_FAILED");
  assert.ok(error.hint.length > 0);
  return error;
}

/** A tmpfs of `size` mounted for the test (root only), or null. */
async function tmpfs(options: string): Promise<(string & AsyncDisposable) | null> {
  const path = await Deno.makeTempDir({ prefix: "mcp-audit-mnt-" });
  const mounted = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", options, "tmpfs", path],
    stdout: "null",
    stderr: "null",
  }).output().catch(() => null);
  if (mounted?.code !== 0) {
    await Deno.remove(path);
    return null;
  }
  return Object.assign(path, {
    async [Symbol.asyncDispose]() {
      await new Deno.Command("umount", { args: [path] }).output();
      await Deno.remove(path, { recursive: true });
    },
  });
}

Deno.test("AuditLog writes one chained JSON line per append, keys in order, absent ones left out", async () => {
  await using dir = await tempDir();
  const path = `${dir}/audit.jsonl`;
  await using log = await AuditLog.open({ path });
  assert.equal(log.failure, null);
  await log.append(entry(1));
  await log.append(entry(2, { outcome: "error", code: "AUTH_FAILED", exitCode: undefined, signal: undefined }));
  const [first, second] = (await lines(path)).map((l) => JSON.parse(l));
  assert.deepEqual(Object.keys(first), [
    "time",
    "duration_ms",
    "transport_session",
    "ssh_session",
    "host",
    "port",
    "user",
    "tool",
    "arguments",
    "outcome",
    "exit_code",
    "signal",
    "bytes_in",
    "bytes_out",
    "approval",
    "prev",
    "hash",
  ]);
  assert.equal(first.time, "2026-01-01T00:00:00.001Z");
  assert.equal(first.prev, "0".repeat(64));
  assert.equal(second.prev, first.hash);
  assert.equal(second.code, "AUTH_FAILED");
  assert.ok(!("exit_code" in second));
  assert.deepEqual(await verifyAudit(path), { ok: true, records: 2, files: [path], fromGenesis: true, torn: [] });
});

Deno.test("AuditLog with chain off writes lines without prev and hash", async () => {
  await using dir = await tempDir();
  const path = `${dir}/audit.jsonl`;
  await using log = await AuditLog.open({ path, chain: false });
  await log.append(entry(1));
  const [line] = (await lines(path)).map((l) => JSON.parse(l));
  assert.ok(!("prev" in line) && !("hash" in line));
});

Deno.test("AuditLog creates the file 0600, keeps 0600 after rotation, and sets an existing 0644 file to 0600", async () => {
  await using dir = await tempDir();
  const path = `${dir}/audit.jsonl`;
  {
    await using log = await AuditLog.open({ path, maxBytes: 1000 });
    assert.equal(mode(path), 0o600);
    for (let i = 0; i < 10; i++) await log.append(entry(i));
  }
  assert.equal(mode(path), 0o600);
  assert.equal(mode(`${path}.1`), 0o600);
  await Deno.chmod(path, 0o644);
  const notices: string[] = [];
  await using log = await AuditLog.open({ path, onNotice: (m) => notices.push(m) });
  assert.equal(mode(path), 0o600);
  assert.equal(notices.length, 1);
  assert.match(notices[0], /mode 0644.*0600/);
  assert.equal(log.failure, null);
});

Deno.test("AuditLog keeps one chain over 1000 appends and rotations, and verifyAudit follows it across files", async () => {
  await using dir = await tempDir();
  const path = `${dir}/audit.jsonl`;
  {
    await using log = await AuditLog.open({ path, maxBytes: 20_000, keep: 1000 });
    for (let i = 0; i < 1000; i++) await log.append(entry(i));
  }
  const result = await verifyAudit(path);
  assert.ok(result.ok, JSON.stringify(result));
  assert.equal(result.records, 1000);
  assert.equal(result.fromGenesis, true);
  assert.ok(result.files.length > 10, `${result.files.length} files`);
  for (const file of result.files) assert.ok((await Deno.stat(file)).size <= 20_000, file);
  // The oldest kept file holds the first record: rotation dropped nothing.
  assert.equal(JSON.parse((await lines(result.files[0]))[0]).duration_ms, 0);
});

Deno.test("AuditLog rotation keeps `keep` files and the kept ones still verify", async () => {
  await using dir = await tempDir();
  const path = `${dir}/audit.jsonl`;
  {
    await using log = await AuditLog.open({ path, maxBytes: 2000, keep: 3 });
    for (let i = 0; i < 100; i++) await log.append(entry(i));
  }
  const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  assert.deepEqual(names, ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2", "audit.jsonl.3"]);
  const result = await verifyAudit(path);
  assert.ok(result.ok, JSON.stringify(result));
  assert.equal(result.fromGenesis, false);
});

Deno.test("AuditLog reopened goes on with the chain of the file, or of FILE.1 when the file is empty", async () => {
  await using dir = await tempDir();
  const path = `${dir}/audit.jsonl`;
  for (let round = 0; round < 3; round++) {
    await using log = await AuditLog.open({ path });
    for (let i = 0; i < 3; i++) await log.append(entry(round * 3 + i));
  }
  assert.deepEqual(await verifyAudit(path), { ok: true, records: 9, files: [path], fromGenesis: true, torn: [] });
  // A crash just after a rotation: FILE.1 full, FILE empty.
  await Deno.rename(path, `${path}.1`);
  await Deno.writeFile(path, new Uint8Array(0), { mode: 0o600 });
  {
    await using log = await AuditLog.open({ path });
    await log.append(entry(9));
  }
  const result = await verifyAudit(path);
  assert.ok(result.ok && result.records === 10, JSON.stringify(result));
});

Deno.test("AuditLog writes 100 concurrent appends as 100 lines in call order, one valid chain", async () => {
  await using dir = await tempDir();
  const path = `${dir}/audit.jsonl`;
  {
    await using log = await AuditLog.open({ path, maxBytes: 8000, keep: 100 });
    await Promise.all(Array.from({ length: 100 }, (_, i) => log.append(entry(i))));
  }
  const result = await verifyAudit(path);
  assert.ok(result.ok && result.records === 100, JSON.stringify(result));
  const order = [];
  for (const file of result.files) order.push(...(await lines(file)).map((l) => JSON.parse(l).duration_ms));
  assert.deepEqual(order, Array.from({ length: 100 }, (_, i) => i));
});

Deno.test("AuditLog ends a torn last line before the next record and vouches for it, across a reopen", async () => {
  await using dir = await tempDir();
  const path = `${dir}/audit.jsonl`;
  {
    await using log = await AuditLog.open({ path });
    for (let i = 0; i < 3; i++) await log.append(entry(i));
  }
  const fragment = '{"time":"2026-01-01T00:00:00.003Z","duration_ms":3,"transp';
  await Deno.writeTextFile(path, fragment, { append: true });
  {
    await using log = await AuditLog.open({ path, maxBytes: 10 }); // no rotation while torn
    await log.append(entry(4));
  }
  const all = await lines(path);
  assert.equal(all.length, 5);
  assert.equal(all[3], fragment);
  const next = JSON.parse(all[4]);
  assert.equal(next.torn_before, fragment.length);
  assert.equal(next.prev, JSON.parse(all[2]).hash);
  const result = await verifyAudit(path);
  assert.deepEqual(result, { ok: true, records: 4, files: [path], fromGenesis: true, torn: [{ file: path, line: 4 }] });
});

Deno.test("AuditLog completes a last record that lost only its newline and chains on from it", async () => {
  await using dir = await tempDir();
  const path = `${dir}/audit.jsonl`;
  {
    await using log = await AuditLog.open({ path });
    for (let i = 0; i < 3; i++) await log.append(entry(i));
  }
  const bytes = await Deno.readFile(path);
  await Deno.writeFile(path, bytes.subarray(0, bytes.length - 1));
  {
    await using log = await AuditLog.open({ path });
    await log.append(entry(3));
  }
  const all = (await lines(path)).map((l) => JSON.parse(l));
  assert.equal(all.length, 4);
  assert.ok(!("torn_before" in all[3]));
  assert.equal(all[3].prev, all[2].hash);
  assert.deepEqual(await verifyAudit(path), { ok: true, records: 4, files: [path], fromGenesis: true, torn: [] });
});

Deno.test("AuditLog after a file holding only a torn fragment starts the chain and says so", async () => {
  await using dir = await tempDir();
  const path = `${dir}/audit.jsonl`;
  await Deno.writeTextFile(path, '{"ti', { mode: 0o600 });
  {
    await using log = await AuditLog.open({ path });
    await log.append(entry(1));
  }
  const result = await verifyAudit(path);
  assert.ok(result.ok && result.records === 1 && result.torn.length === 1, JSON.stringify(result));
});

Deno.test("AuditLog writes to a new file when its file is moved away, and the chain goes on", async () => {
  await using dir = await tempDir();
  const path = `${dir}/audit.jsonl`;
  const notices: string[] = [];
  {
    await using log = await AuditLog.open({ path, onNotice: (m) => notices.push(m) });
    await log.append(entry(1));
    await Deno.rename(path, `${path}.1`); // logrotate's way
    await log.append(entry(2));
    await Deno.remove(path);
    await log.append(entry(3));
    assert.equal(log.failure, null);
  }
  assert.equal(notices.length, 2);
  assert.equal((await lines(path)).length, 1);
  assert.equal(mode(path), 0o600);
  // Record 2 went to a file that was then removed: FILE.1 then FILE do not chain.
  const result = await verifyAudit(path);
  assert.ok(!result.ok && result.at.file === path && result.at.line === 1, JSON.stringify(result));
});

Deno.test("AuditLog fails closed for a directory at the path, and recovers when it is gone", async () => {
  await using dir = await tempDir();
  const path = `${dir}/audit.jsonl`;
  await Deno.mkdir(path);
  await using log = await AuditLog.open({ path });
  assert.match(log.failure ?? "", /not a regular file/);
  const error = await rejectsAuditFailed(log.append(entry(1)));
  assert.equal(error.message, log.failure);
  await Deno.remove(path);
  await log.append(entry(2));
  assert.equal(log.failure, null);
  assert.equal((await lines(path)).length, 1);
});

Deno.test("AuditLog fails closed for a path under a missing directory", async () => {
  await using dir = await tempDir();
  await using log = await AuditLog.open({ path: `${dir}/missing/audit.jsonl` });
  assert.match(log.failure ?? "", /No such file/);
  await rejectsAuditFailed(log.append(entry(1)));
  assert.ok(log.failure !== null);
});

Deno.test("AuditLog fails closed in a read-only directory", async () => {
  // Root writes through mode bits, so as root the directory is a read-only mount.
  await using dir = await tempDir();
  let ro: (string & AsyncDisposable) | null = null;
  if (isRoot) {
    ro = await tmpfs("ro,size=64k,mode=0755");
    assert.ok(ro !== null, "mount failed although running as root");
  } else {
    await Deno.mkdir(`${dir}/ro`, { mode: 0o555 });
  }
  try {
    await using log = await AuditLog.open({ path: `${ro ?? `${dir}/ro`}/audit.jsonl` });
    assert.ok(log.failure !== null);
    await rejectsAuditFailed(log.append(entry(1)));
  } finally {
    await ro?.[Symbol.asyncDispose]();
  }
});

Deno.test({
  name: "AuditLog fails closed on a full disk, latches the failure, and clears it once a write succeeds",
  ignore: !isRoot,
}, async () => {
  await using disk = await tmpfs("size=64k,mode=0700");
  assert.ok(disk !== null, "mount failed although running as root");
  const filler = `${disk}/filler`;
  await Deno.writeFile(filler, new Uint8Array(16 * 1024));
  const path = `${disk}/audit.jsonl`;
  await using log = await AuditLog.open({ path });
  const big = { session_id: "s1", command: "x".repeat(900) };
  let appended = 0;
  let error: SshMcpError | null = null;
  while (error === null) {
    assert.ok(appended < 200, "a 64 KiB disk took 200 lines of 1 KiB");
    error = await log.append(entry(appended, { arguments: big })).then(() => null, (e) => e);
    if (error === null) appended++;
  }
  assert.equal(error.code, "AUDIT_FAILED");
  assert.match(log.failure ?? "", /No space left/);
  // The latch holds while the disk stays full.
  await rejectsAuditFailed(log.append(entry(appended, { arguments: big })));
  assert.ok(log.failure !== null);
  await Deno.remove(filler);
  await log.append(entry(appended + 1));
  assert.equal(log.failure, null);
  // A line cut short by the full disk is a torn record the next one vouches for.
  const result = await verifyAudit(path);
  assert.ok(result.ok, JSON.stringify(result));
  assert.equal(result.records, appended + 1);
  assert.ok(result.torn.length <= 1);
});

Deno.test("AuditLog after close refuses appends with AUDIT_FAILED", async () => {
  await using dir = await tempDir();
  const log = await AuditLog.open({ path: `${dir}/a` });
  const pending = log.append(entry(1));
  await log.close();
  await pending; // accepted before close, written before it returns
  await rejectsAuditFailed(log.append(entry(2)));
  assert.equal((await lines(`${dir}/a`)).length, 1);
});

Deno.test("AuditLog.open rejects out-of-range sizes as a configuration bug", async () => {
  await assert.rejects(AuditLog.open({ path: "/nonexistent/x", maxBytes: 0 }), RangeError);
  await assert.rejects(AuditLog.open({ path: "/nonexistent/x", keep: 0 }), RangeError);
});

// The secret canary, under the permission set users run (`deno run -P`).
async function child(dir: string): Promise<void> {
  const path = `${dir}/audit.jsonl`;
  await using log = await AuditLog.open({ path, maxBytes: 1500 });
  const calls: [string, Record<string, unknown>][] = [
    ["ssh_connect", { host: "h", username: "u", password: CANARY }],
    ["ssh_connect", { host: "h", private_key_path: "/k", passphrase: CANARY }],
    ["ssh_sudo_execute", { session_id: "s1", command: "id", password: CANARY }],
    ["ssh_execute", { session_id: "s1", command: "env", env: { API_TOKEN: CANARY, DB_PASS: CANARY } }],
    ["ssh_execute_many", { targets: [{ host: "h", password: CANARY }], nested: { deep: [{ secret: CANARY }] } }],
  ];
  for (const [tool, args] of calls) await log.append({ ...entry(0), tool, arguments: args });
  // Unwritable: a directory at the path fails closed under -P too.
  await Deno.mkdir(`${dir}/d`);
  await using bad = await AuditLog.open({ path: `${dir}/d` });
  const code = await bad.append(entry(0)).then(() => "written", (e) => e.code);
  console.log(JSON.stringify({ code, failure: bad.failure !== null }));
}

Deno.test("a canary used as password, passphrase, sudo password and token never reaches the file, under -P", async () => {
  await using dir = await tempDir();
  // Imported here: the fixture pulls in the SDK client, which the -P child must not load.
  const { runArgs } = await import("../../tests/fixtures/mcp.ts");
  const out = await new Deno.Command(Deno.execPath(), {
    args: runArgs("lib/audit/log_test.ts", ["child", dir]),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(out.stdout)), { code: "AUDIT_FAILED", failure: true });
  const files = [...Deno.readDirSync(dir)].filter((e) => e.isFile).map((e) => `${dir}/${e.name}`);
  assert.ok(files.length >= 2, "the child rotated at least once");
  const raw = new TextDecoder("latin1").decode(
    new Uint8Array(files.flatMap((f) => [...Deno.readFileSync(f)])),
  );
  const forms = [
    CANARY,
    createHash("sha256").update(CANARY).digest("hex"),
    createHash("sha256").update(CANARY).digest("base64"),
    btoa(CANARY),
    Array.from(new TextEncoder().encode(CANARY), (b) => b.toString(16).padStart(2, "0")).join(""),
  ];
  for (const form of forms) assert.ok(!raw.includes(form), `found ${form}`);
  assert.equal(raw.split("[redacted]").length - 1, 7, "each canary field redacted in place");
  for (const file of files) assert.equal(mode(file), 0o600, file);
  assert.ok((await verifyAudit(`${dir}/audit.jsonl`)).ok);
});

if (import.meta.main && Deno.args[0] === "child") await child(Deno.args[1]);
