// Tests of verify-audit: any one changed byte is found on its own line; a
// removed, reordered or inserted line at the first line whose prev is wrong;
// torn records only when the writer vouched for them; exit codes.

import assert from "node:assert/strict";
import { type AuditEntry, AuditLog, verifyAudit, verifyAuditMain, type VerifyResult } from "./mod.ts";

function entry(i: number): AuditEntry {
  return {
    startedAt: new Date(Date.UTC(2026, 0, 1, 0, 0, 0, i)),
    durationMs: i,
    transportSession: "stdio",
    sshSession: "s1",
    host: "h",
    tool: i % 2 ? "ssh_execute" : "ssh_write_remote_file",
    arguments: i % 2 ? { command: `echo ${i} ✓` } : { remote_path: "/r", content: `data ${i}` },
    outcome: "ok",
    exitCode: 0,
  };
}

async function tempDir(): Promise<string & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "mcp-audit-verify-" });
  return Object.assign(dir, { [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) });
}

async function writeLog(path: string, count: number, options: { maxBytes?: number; keep?: number } = {}) {
  await using log = await AuditLog.open({ path, ...options });
  for (let i = 0; i < count; i++) await log.append(entry(i));
}

/** Offsets of each line's first byte and of the byte after its "\n". */
function lineSpans(bytes: Uint8Array): [number, number][] {
  const spans: [number, number][] = [];
  let start = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0x0a) {
      spans.push([start, i + 1]);
      start = i + 1;
    }
  }
  return spans;
}

function brokenAt(result: VerifyResult): string {
  return result.ok ? "ok" : `${result.at.file}:${result.at.line}`;
}

Deno.test("verifyAudit points at the line of any one changed byte, newline included", async () => {
  await using dir = await tempDir();
  const path = `${dir}/audit.jsonl`;
  await writeLog(path, 6);
  const original = await Deno.readFile(path);
  const spans = lineSpans(original);
  assert.equal(spans.length, 6);
  let cases = 0;
  for (const [k, [start, end]] of spans.entries()) {
    for (let at = start; at < end; at++) {
      for (const flip of [0x01, 0x20]) {
        const edited = original.slice();
        edited[at] ^= flip;
        await Deno.writeFile(path, edited);
        const result = await verifyAudit(path);
        assert.equal(brokenAt(result), `${path}:${k + 1}`, `byte ${at - start} of line ${k + 1} ^ ${flip}`);
        cases++;
      }
    }
  }
  assert.ok(cases > 2000, `${cases} cases`);
  await Deno.writeFile(path, original);
  assert.ok((await verifyAudit(path)).ok);
});

Deno.test("verifyAudit points at each line of a rotated log when one byte of it changes", async () => {
  await using dir = await tempDir();
  const path = `${dir}/audit.jsonl`;
  await writeLog(path, 60, { maxBytes: 3000, keep: 100 });
  const clean = await verifyAudit(path);
  assert.ok(clean.ok && clean.files.length >= 3, JSON.stringify(clean));
  let seed = 42;
  const random = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
  for (const file of clean.files) {
    const original = await Deno.readFile(file);
    for (const [k, [start, end]] of lineSpans(original).entries()) {
      const edited = original.slice();
      edited[start + random(end - start)] ^= 1 << random(8);
      await Deno.writeFile(file, edited);
      assert.equal(brokenAt(await verifyAudit(path)), `${file}:${k + 1}`);
    }
    await Deno.writeFile(file, original);
  }
});

Deno.test("verifyAudit finds a removed, reordered or inserted line at the first line whose prev is wrong", async () => {
  await using dir = await tempDir();
  const path = `${dir}/audit.jsonl`;
  await writeLog(path, 8);
  const text = await Deno.readTextFile(path);
  const lines = text.split("\n").slice(0, -1);
  const check = async (edited: string[], expected: string, reason: RegExp) => {
    await Deno.writeTextFile(path, edited.map((l) => l + "\n").join(""));
    const result = await verifyAudit(path);
    assert.equal(brokenAt(result), expected);
    assert.ok(!result.ok && reason.test(result.reason), result.ok ? "" : result.reason);
  };
  const prev = /prev is not the hash of the record before it/;
  for (let k = 1; k < 7; k++) {
    await check(lines.toSpliced(k, 1), `${path}:${k + 1}`, prev); // line k+1 removed
    await check(lines.toSpliced(k, 2, lines[k + 1], lines[k]), `${path}:${k + 1}`, prev); // swapped
    await check(lines.toSpliced(k, 0, lines[k - 1]), `${path}:${k + 1}`, prev); // repeated
  }
  // What a chain cannot see: records cut off either end still verify.
  await Deno.writeTextFile(path, lines.slice(0, -1).map((l) => l + "\n").join(""));
  assert.ok((await verifyAudit(path)).ok);
  await Deno.writeTextFile(path, lines.slice(1).map((l) => l + "\n").join(""));
  const headless = await verifyAudit(path);
  assert.ok(headless.ok && !headless.fromGenesis, "a log without its first record does not claim to start the chain");
});

Deno.test("verifyAudit finds a rotated file removed from the middle at the first line of the next one", async () => {
  await using dir = await tempDir();
  const path = `${dir}/audit.jsonl`;
  await writeLog(path, 40, { maxBytes: 2000, keep: 100 });
  const { files } = await verifyAudit(path);
  assert.ok(files.length >= 4);
  await Deno.remove(files[1]);
  assert.equal(brokenAt(await verifyAudit(path)), `${files[2]}:1`);
});

Deno.test("verifyAudit counts a vouched-for torn record and breaks on one nobody vouched for", async () => {
  await using dir = await tempDir();
  const path = `${dir}/audit.jsonl`;
  await writeLog(path, 2);
  const whole = await Deno.readTextFile(path);
  // Torn at the end: a write cut short, or one going on.
  await Deno.writeTextFile(path, whole + '{"time":"20');
  let result = await verifyAudit(path);
  assert.equal(brokenAt(result), `${path}:3`);
  assert.ok(!result.ok && /not a complete record/.test(result.reason));
  // Vouched for by the next record the log writes.
  await writeLog(path, 1);
  result = await verifyAudit(path);
  assert.ok(result.ok && result.records === 3 && result.torn.length === 1, JSON.stringify(result));
  // A line replaced by junk of the same size is not vouched for: the record after has no torn_before.
  const lines = whole.split("\n");
  await Deno.writeTextFile(path, `${lines[0]}\n${"x".repeat(lines[1].length)}\n${lines[1]}\n`);
  assert.equal(brokenAt(await verifyAudit(path)), `${path}:2`);
  // Two broken lines in a row: the first is named.
  await Deno.writeTextFile(path, `${lines[0]}\n{"a\n{"b\n${lines[1]}\n`);
  assert.equal(brokenAt(await verifyAudit(path)), `${path}:2`);
  // A whole record without its newline at the end of the log.
  await Deno.writeTextFile(path, `${lines[0]}\n${lines[1]}`);
  result = await verifyAudit(path);
  assert.ok(!result.ok && result.at.line === 2 && /newline/.test(result.reason), JSON.stringify(result));
});

Deno.test("verifyAudit reports an unchained line as a break", async () => {
  await using dir = await tempDir();
  const path = `${dir}/audit.jsonl`;
  await writeLog(path, 2);
  {
    await using log = await AuditLog.open({ path, chain: false });
    await log.append(entry(2));
  }
  const result = await verifyAudit(path);
  assert.ok(!result.ok && result.at.line === 3 && /no hash/.test(result.reason), JSON.stringify(result));
});

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  try {
    const code = await verifyAuditMain(argv);
    return { code, out: out.join("\n"), err: err.join("\n") };
  } finally {
    Object.assign(console, { log, error });
  }
}

Deno.test("verifyAuditMain exits 0 with a summary, 1 naming file:line, 2 for usage and unreadable logs", async () => {
  await using dir = await tempDir();
  const path = `${dir}/audit.jsonl`;
  await writeLog(path, 30, { maxBytes: 2000, keep: 2 });
  let r = await run([path]);
  assert.equal(r.code, 0, r.out + r.err);
  assert.match(r.out, /^ok: \d+ records in 3 files .*chain intact; it starts after records/);
  const text = await Deno.readTextFile(path);
  await Deno.writeTextFile(path, text.replace('"tool":"ssh_execute"', '"tool":"ssh_executf"'));
  r = await run([path]);
  assert.equal(r.code, 1);
  assert.match(r.out, new RegExp(`^${path}:\\d+: its hash does not match its content`));
  for (const argv of [[], ["a", "b"], ["--bogus"], [""]]) {
    r = await run(argv);
    assert.equal(r.code, 2, JSON.stringify(argv));
    assert.match(r.err, /^Usage/);
  }
  assert.equal((await run(["--help"])).code, 0);
  r = await run([`${dir}/missing.jsonl`]);
  assert.equal(r.code, 2);
  assert.match(r.err, /cannot read the audit log/);
  await Deno.mkdir(`${dir}/d`);
  assert.equal((await run([`${dir}/d`])).code, 2);
  await Deno.writeFile(`${dir}/empty`, new Uint8Array(0));
  r = await run([`${dir}/empty`]);
  assert.equal(r.code, 0);
  assert.match(r.out, /^ok: 0 records in 1 file/);
});
