import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { join } from "node:path";
import {
  appendKnownHost,
  checkHostKey,
  fingerprintSha256,
  formatKnownHostsLine,
  hostPatternsMatch,
  keyTypeOf,
  knownHostsName,
  knownKeyTypes,
  loadKnownHosts,
  parseKnownHosts,
} from "./known_hosts.ts";

// Real keys from OpenSSH, made once for the whole file.
const keyDir = await Deno.makeTempDir({ prefix: "known_hosts_test_" });
globalThis.addEventListener(
  "unload",
  () => Deno.removeSync(keyDir, { recursive: true }),
);

interface TestKey {
  type: string;
  b64: string;
  blob: Uint8Array;
  pubPath: string;
}

async function run(
  cmd: string,
  args: string[],
): Promise<{ code: number; stdout: string }> {
  const out = await new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: new TextDecoder().decode(out.stdout) };
}

async function genKey(name: string, type: string): Promise<TestKey> {
  const path = join(keyDir, name);
  const { code } = await run("ssh-keygen", [
    "-q",
    "-t",
    type,
    "-N",
    "",
    "-C",
    name,
    "-f",
    path,
  ]);
  assert.equal(code, 0, `ssh-keygen -t ${type} failed`);
  const [keyType, b64] = (await Deno.readTextFile(`${path}.pub`)).split(" ");
  return {
    type: keyType,
    b64,
    blob: Buffer.from(b64, "base64"),
    pubPath: `${path}.pub`,
  };
}

const edA = await genKey("a", "ed25519");
const edB = await genKey("b", "ed25519");
const ecC = await genKey("c", "ecdsa");

function pub(k: TestKey): string {
  return `${k.type} ${k.b64}`;
}

function check(text: string, host: string, port: number, k: TestKey) {
  const { entries } = parseKnownHosts(text, "kh");
  return checkHostKey(entries, { host, port, keyType: k.type, key: k.blob });
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "known_hosts_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("knownHostsName() gives the plain host for port 22 and [host]:port otherwise", () => {
  assert.equal(knownHostsName("example.com", 22), "example.com");
  assert.equal(knownHostsName("Example.COM", 2222), "[example.com]:2222");
  assert.equal(knownHostsName("::1", 2222), "[::1]:2222");
  assert.throws(() => knownHostsName("h", 0), /Invalid port 0/);
  assert.throws(() => knownHostsName("h", 65536), RangeError);
});

Deno.test("parseKnownHosts() reads comments, blank lines, indentation and trailing comments", () => {
  const text = `# comment\n\n   \t h1 ${pub(edA)} trailing comment here\n\th2,h3\t${pub(edB)}\n`;
  const { entries, warnings } = parseKnownHosts(text, "kh");
  assert.deepEqual(warnings, []);
  assert.deepEqual(entries, [
    {
      file: "kh",
      line: 3,
      marker: null,
      hostPatterns: "h1",
      keyType: edA.type,
      keyBase64: edA.b64,
    },
    {
      file: "kh",
      line: 4,
      marker: null,
      hostPatterns: "h2,h3",
      keyType: edB.type,
      keyBase64: edB.b64,
    },
  ]);
});

Deno.test("parseKnownHosts() handles CRLF line endings", () => {
  const text = `# c\r\nh1 ${pub(edA)}\r\n\r\nh2 ${pub(edB)} comment\r\n`;
  const { entries, warnings } = parseKnownHosts(text, "kh");
  assert.deepEqual(warnings, []);
  assert.deepEqual(entries.map((e) => [e.line, e.hostPatterns, e.keyBase64]), [
    [2, "h1", edA.b64],
    [4, "h2", edB.b64],
  ]);
  assert.equal(check(text, "h2", 22, edB).kind, "match");
});

Deno.test("parseKnownHosts() reads @revoked and @cert-authority markers", () => {
  const text = `@revoked * ${pub(edA)}\n@cert-authority *.example.com ${pub(edB)}\n`;
  const { entries, warnings } = parseKnownHosts(text, "kh");
  assert.deepEqual(warnings, []);
  assert.deepEqual(entries.map((e) => [e.marker, e.hostPatterns]), [
    ["revoked", "*"],
    ["cert-authority", "*.example.com"],
  ]);
});

Deno.test("parseKnownHosts() skips malformed lines with a warning naming file and line", () => {
  const rsaField = `h ssh-rsa ${edA.b64}`;
  const text = [
    `h ${edA.type} not*base64!`, // 1
    `h ${edA.type} ${edA.b64.slice(0, -1)}`, // 2: bad padding
    `h ${edA.type}`, // 3
    `h`, // 4
    `@bogus h ${pub(edA)}`, // 5
    `@revoked ${pub(edA)}`, // 6: marker, too few fields
    rsaField, // 7: type field disagrees with blob
    `h ${edA.type} AAAA`, // 8: blob too short
    `|1|bad|hash ${pub(edA)}`, // 9
    `good ${pub(edB)}`, // 10
  ].join("\n");
  const { entries, warnings } = parseKnownHosts(text, "/x/known_hosts");
  assert.deepEqual(entries.map((e) => e.line), [10]);
  assert.equal(warnings.length, 9);
  for (const [i, line] of [1, 2, 3, 4, 5, 6, 7, 8, 9].entries()) {
    assert.match(
      warnings[i],
      new RegExp(`^Skipped /x/known_hosts:${line}: [a-z]`),
    );
    assert.doesNotMatch(warnings[i], /\.$/);
  }
  assert.match(warnings[0], /base64/);
  assert.match(warnings[4], /unknown marker/);
  assert.match(warnings[6], /does not match/);
});

Deno.test("hostPatternsMatch() uses [host]:port for other ports and plain host does not match port 2222", () => {
  assert.equal(
    hostPatternsMatch("[127.0.0.1]:2222", knownHostsName("127.0.0.1", 2222)),
    true,
  );
  assert.equal(
    hostPatternsMatch("127.0.0.1", knownHostsName("127.0.0.1", 2222)),
    false,
  );
  assert.equal(
    hostPatternsMatch("[127.0.0.1]:2222", knownHostsName("127.0.0.1", 22)),
    false,
  );
  assert.equal(
    hostPatternsMatch("127.0.0.1", knownHostsName("127.0.0.1", 22)),
    true,
  );
  assert.equal(
    check(`127.0.0.1 ${pub(edA)}`, "127.0.0.1", 2222, edA).kind,
    "unknown",
  );
  assert.equal(
    check(`[127.0.0.1]:2222 ${pub(edA)}`, "127.0.0.1", 2222, edA).kind,
    "match",
  );
});

Deno.test("hostPatternsMatch() supports * and ? wildcards", () => {
  assert.equal(hostPatternsMatch("*.example.com", "db1.example.com"), true);
  assert.equal(hostPatternsMatch("*.example.com", "example.com"), false);
  assert.equal(hostPatternsMatch("db?.example.com", "db7.example.com"), true);
  assert.equal(hostPatternsMatch("db?.example.com", "db10.example.com"), false);
  assert.equal(hostPatternsMatch("[127.0.0.1]:*", "[127.0.0.1]:2222"), true);
  assert.equal(hostPatternsMatch("*", "anything"), true);
});

Deno.test("hostPatternsMatch() lets ! negation veto the whole line", () => {
  assert.equal(
    hostPatternsMatch("*.example.com,!bad*.example.com", "bad1.example.com"),
    false,
  );
  assert.equal(
    hostPatternsMatch("!bad*.example.com,*.example.com", "bad1.example.com"),
    false,
  );
  assert.equal(
    hostPatternsMatch("*.example.com,!bad*.example.com", "good.example.com"),
    true,
  );
  assert.equal(hostPatternsMatch("!bad", "good"), false);
  const text = `*,!h1 ${pub(edA)}\nh1 ${pub(edA)}\n`;
  assert.equal(check(text, "h1", 22, edA).kind, "match");
});

Deno.test("hostPatternsMatch() matches any item of a comma list", () => {
  assert.equal(hostPatternsMatch("h1,h2,[h3]:2222", "h2"), true);
  assert.equal(hostPatternsMatch("h1,h2,[h3]:2222", "[h3]:2222"), true);
  assert.equal(hostPatternsMatch("h1,h2,[h3]:2222", "h3"), false);
});

Deno.test("hostPatternsMatch() is case-insensitive", () => {
  assert.equal(hostPatternsMatch("DB1.Example.COM", "db1.example.com"), true);
  assert.equal(hostPatternsMatch("db1.example.com", "DB1.EXAMPLE.com"), true);
  assert.equal(
    hostPatternsMatch("*.EXAMPLE.com,!BAD.example.com", "bad.Example.com"),
    false,
  );
  assert.equal(
    check(`HOST.example ${pub(edA)}`, "Host.Example", 22, edA).kind,
    "match",
  );
});

Deno.test("hostPatternsMatch() agrees with ssh-keygen -F on plain patterns", async () => {
  const cases: [string, string][] = [
    ["h1", "h1"],
    ["h1", "h2"],
    ["*.example.com", "a.example.com"],
    ["*.example.com", "example.com"],
    ["db?.example.com", "db1.example.com"],
    ["db?.example.com", "db12.example.com"],
    ["*,!db1.example.com", "db1.example.com"],
    ["*,!db1.example.com", "db2.example.com"],
    ["h1,h2,h3", "h3"],
    ["[127.0.0.1]:2222", "[127.0.0.1]:2222"],
    ["127.0.0.1", "[127.0.0.1]:2222"],
    ["[127.0.0.1]:*", "[127.0.0.1]:2222"],
    ["a*b*c", "axxbyyc"],
    ["a*b*c", "axxbyy"],
  ];
  await withTempDir(async (dir) => {
    for (const [patterns, name] of cases) {
      const file = join(dir, "kh");
      await Deno.writeTextFile(file, `${patterns} ${pub(edA)}\n`);
      const { code } = await run("ssh-keygen", ["-F", name, "-f", file]);
      assert.equal(
        hostPatternsMatch(patterns, name),
        code === 0,
        `${patterns} vs ${name}`,
      );
    }
  });
});

Deno.test("hostPatternsMatch() matches |1| entries hashed by ssh-keygen -H", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "known_hosts");
    await Deno.writeTextFile(
      file,
      `example.com ${pub(edA)}\n[127.0.0.1]:2222 ${pub(edB)}\n`,
    );
    const { code } = await run("ssh-keygen", ["-q", "-H", "-f", file]);
    assert.equal(code, 0);
    const { entries, warnings } = await loadKnownHosts([file]);
    assert.deepEqual(warnings, []);
    assert.equal(entries.length, 2);
    assert.ok(entries.every((e) => e.hostPatterns.startsWith("|1|")));
    assert.equal(
      hostPatternsMatch(entries[0].hostPatterns, "example.com"),
      true,
    );
    assert.equal(
      hostPatternsMatch(entries[0].hostPatterns, "EXAMPLE.com"),
      true,
    );
    assert.equal(
      hostPatternsMatch(entries[0].hostPatterns, "example.org"),
      false,
    );
    const opts = { keyType: edB.type, key: edB.blob };
    assert.equal(
      checkHostKey(entries, { host: "127.0.0.1", port: 2222, ...opts }).kind,
      "match",
    );
    assert.equal(
      checkHostKey(entries, { host: "127.0.0.1", port: 22, ...opts }).kind,
      "unknown",
    );
    assert.equal(
      checkHostKey(entries, { host: "example.com", port: 22, ...opts }).kind,
      "mismatch",
    );
  });
});

Deno.test("checkHostKey() reports match, unknown and mismatch", () => {
  const text = `h1 ${pub(edA)}\nh2 ${pub(ecC)}\n`;
  const match = check(text, "h1", 22, edA);
  assert.equal(match.kind, "match");
  assert.equal(match.kind === "match" && match.entry.line, 1);
  assert.deepEqual(check(text, "h3", 22, edA), { kind: "unknown" });
});

Deno.test("checkHostKey() reports mismatch when host has a different key", () => {
  const text = `h1 ${pub(edA)}\nh2 ${pub(ecC)}\n`;
  const same = check(text, "h1", 22, edB);
  assert.equal(same.kind, "mismatch");
  assert.deepEqual(
    same.kind === "mismatch" && same.expected.map((e) => e.line),
    [1],
  );
  // A known key of another type still means the host is not new.
  assert.equal(check(text, "h2", 22, edA).kind, "mismatch");
});

Deno.test("checkHostKey() reports revoked even when a plain line also matches", () => {
  const text = `h1 ${pub(edA)}\n@revoked * ${pub(edA)}\n`;
  const verdict = check(text, "h1", 22, edA);
  assert.equal(verdict.kind, "revoked");
  assert.equal(verdict.kind === "revoked" && verdict.entry.line, 2);
  assert.equal(
    check(`@revoked other ${pub(edA)}\n`, "h1", 22, edA).kind,
    "revoked",
  );
  assert.equal(check(text, "h1", 22, edB).kind, "mismatch");
});

Deno.test("checkHostKey() fails closed on @cert-authority lines", () => {
  const text = `@cert-authority * ${pub(edA)}\n@cert-authority h1 ${pub(edB)}\n`;
  assert.deepEqual(check(text, "h1", 22, edA), { kind: "unknown" });
  assert.deepEqual(check(text, "h1", 22, edB), { kind: "unknown" });
  assert.equal(
    check(`${text}h1 ${pub(ecC)}\n`, "h1", 22, edA).kind,
    "mismatch",
  );
});

Deno.test("knownKeyTypes() lists the host's key types in file order without duplicates", () => {
  const text = [
    `other ${pub(edA)}`,
    `[h1]:2222 ${pub(ecC)}`,
    `@cert-authority * ${pub(edB)}`,
    `@revoked [h1]:2222 ssh-rsa ${rsaLikeBlob()}`,
    `*:2222,[h1]:* ${pub(edA)}`,
    `[h1]:2222 ${pub(ecC)}`,
  ].join("\n");
  const { entries } = parseKnownHosts(text, "kh");
  assert.deepEqual(knownKeyTypes(entries, "h1", 2222), [ecC.type, edA.type]);
  assert.deepEqual(knownKeyTypes(entries, "h1", 22), []);
});

function rsaLikeBlob(): string {
  const type = new TextEncoder().encode("ssh-rsa");
  const blob = new Uint8Array(4 + type.length + 4);
  new DataView(blob.buffer).setUint32(0, type.length);
  blob.set(type, 4);
  return Buffer.from(blob).toString("base64");
}

Deno.test("fingerprintSha256() equals ssh-keygen -lf output", async () => {
  const { stdout } = await run("ssh-keygen", [
    "-l",
    "-E",
    "sha256",
    "-f",
    edA.pubPath,
  ]);
  assert.equal(fingerprintSha256(edA.blob), stdout.split(" ")[1]);
  assert.match(fingerprintSha256(edA.blob), /^SHA256:[A-Za-z0-9+/]{43}$/);
});

Deno.test("keyTypeOf() reads the embedded type and throws on malformed blobs", () => {
  assert.equal(keyTypeOf(edA.blob), "ssh-ed25519");
  assert.equal(keyTypeOf(ecC.blob), "ecdsa-sha2-nistp256");
  assert.throws(() => keyTypeOf(new Uint8Array(3)), /Malformed SSH public key/);
  assert.throws(() => keyTypeOf(new Uint8Array([0, 0, 0, 0])), /Malformed/);
  assert.throws(
    () => keyTypeOf(new Uint8Array([0xff, 0, 0, 1, 0x61])),
    /Malformed/,
  );
  assert.throws(
    () => keyTypeOf(new Uint8Array([0, 0, 0, 2, 0x61, 0x0a])),
    /printable/,
  );
  assert.equal(keyTypeOf(edA.blob.subarray(0)), "ssh-ed25519");
});

Deno.test("formatKnownHostsLine() output is found by ssh-keygen -F", async () => {
  const line = formatKnownHostsLine({
    host: "127.0.0.1",
    port: 2222,
    key: edA.blob,
  });
  assert.equal(line, `[127.0.0.1]:2222 ${pub(edA)}`);
  assert.equal(
    formatKnownHostsLine({ host: "h", port: 22, key: edA.blob }),
    `h ${pub(edA)}`,
  );
  await withTempDir(async (dir) => {
    const file = join(dir, "known_hosts");
    await appendKnownHost(file, line);
    const found = await run("ssh-keygen", [
      "-F",
      "[127.0.0.1]:2222",
      "-f",
      file,
    ]);
    assert.equal(found.code, 0);
    assert.ok(found.stdout.includes(line));
    assert.equal(
      (await run("ssh-keygen", ["-F", "127.0.0.1", "-f", file])).code,
      1,
    );
  });
});

Deno.test("formatKnownHostsLine() rejects hosts that would change the line's meaning", () => {
  for (
    const host of [
      "",
      "a b",
      "a,b",
      "*",
      "!h",
      "|1|x",
      "h\n* ssh-ed25519 AAAA",
      "h\0",
    ]
  ) {
    assert.throws(
      () => formatKnownHostsLine({ host, port: 22, key: edA.blob }),
      /host contains/,
    );
  }
});

Deno.test("loadKnownHosts() concatenates files and skips missing ones silently", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "one"), `h1 ${pub(edA)}\n`);
    await Deno.writeTextFile(join(dir, "two"), `bad line\nh2 ${pub(edB)}\n`);
    const result = await loadKnownHosts([
      join(dir, "missing"),
      join(dir, "one"),
      join(dir, "two"),
    ]);
    assert.deepEqual(result.entries.map((e) => [e.file, e.line]), [
      [join(dir, "one"), 1],
      [join(dir, "two"), 2],
    ]);
    assert.deepEqual(result.warnings.length, 1);
    assert.match(result.warnings[0], new RegExp(`${join(dir, "two")}:1`));
    assert.deepEqual(await loadKnownHosts([join(dir, "no", "such", "dir")]), {
      entries: [],
      warnings: [],
    });
  });
});

Deno.test("loadKnownHosts() warns about a path that is not a regular file", async () => {
  await withTempDir(async (dir) => {
    const { entries, warnings } = await loadKnownHosts([dir]);
    assert.deepEqual(entries, []);
    assert.deepEqual(warnings, [`Cannot read ${dir}: it is a directory`]);
  });
});

Deno.test("loadKnownHosts() warns about a file it may not read", async () => {
  // Root reads through mode 000, so deny the read with Deno's own permissions.
  await withTempDir(async (dir) => {
    const file = join(dir, "known_hosts");
    await Deno.writeTextFile(file, `h1 ${pub(edA)}\n`);
    const mod = new URL("./known_hosts.ts", import.meta.url).href;
    const script = join(dir, "load.ts");
    await Deno.writeTextFile(
      script,
      `import { loadKnownHosts } from "${mod}";
      console.log(JSON.stringify(await loadKnownHosts(${JSON.stringify([file])})));`,
    );
    const out = await run(Deno.execPath(), [
      "run",
      `--allow-read=${dir}`,
      `--deny-read=${file}`,
      script,
    ]);
    assert.equal(out.code, 0);
    assert.deepEqual(JSON.parse(out.stdout), {
      entries: [],
      warnings: [`Cannot read ${file}: permission denied`],
    });
  });
});

Deno.test("appendKnownHost() creates a 0700 directory and a 0600 file", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "new", ".ssh", "known_hosts");
    const line = formatKnownHostsLine({
      host: "127.0.0.1",
      port: 2222,
      key: edA.blob,
    });
    await appendKnownHost(file, line);
    assert.equal(await Deno.readTextFile(file), `${line}\n`);
    assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
    assert.equal(
      (await Deno.stat(join(dir, "new", ".ssh"))).mode! & 0o777,
      0o700,
    );
  });
});

Deno.test("appendKnownHost() adds a missing newline and keeps an existing file's mode", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "known_hosts");
    await Deno.writeTextFile(file, `h1 ${pub(edA)} no newline`, {
      mode: 0o644,
    });
    await Deno.chmod(file, 0o644);
    const line = `h2 ${pub(edB)}`;
    await appendKnownHost(file, line);
    assert.equal(
      await Deno.readTextFile(file),
      `h1 ${pub(edA)} no newline\n${line}\n`,
    );
    assert.equal((await Deno.stat(file)).mode! & 0o777, 0o644);
  });
});

Deno.test("appendKnownHost() never duplicates content", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "known_hosts");
    const l1 = `h1 ${pub(edA)}`;
    const l2 = `h2 ${pub(edB)}`;
    await Deno.writeTextFile(file, `# mine\r\n${l1}\r\n`);
    await appendKnownHost(file, l1);
    await Promise.all([appendKnownHost(file, l2), appendKnownHost(file, l2)]);
    await appendKnownHost(file, l2);
    assert.equal(await Deno.readTextFile(file), `# mine\r\n${l1}\r\n${l2}\n`);
    await assert.rejects(
      () => appendKnownHost(file, `${l1}\n* ${pub(edB)}`),
      /line break/,
    );
    await assert.rejects(() => appendKnownHost(file, ""), /empty/);
  });
});

Deno.test("known_hosts functions survive hostile input without throwing", () => {
  const proto = parseKnownHosts(
    `__proto__ ${pub(edA)}\n@__proto__ h ${pub(edA)}\n`,
    "kh",
  );
  assert.equal(proto.entries.length, 1);
  assert.equal(proto.warnings.length, 1);
  assert.equal(hostPatternsMatch("__proto__", "__proto__"), true);
  assert.equal(hostPatternsMatch("__proto__", "constructor"), false);
  assert.equal(
    checkHostKey(proto.entries, {
      host: "__proto__",
      port: 22,
      keyType: edA.type,
      key: edA.blob,
    }).kind,
    "match",
  );

  // OpenSSH reads lines as C strings: a NUL ends the line.
  const nul = parseKnownHosts(
    `h1\0 ${pub(edA)}\nh2 ${pub(edA)} comment\0junk\n\0\0\0\n`,
    "kh",
  );
  assert.deepEqual(nul.entries.map((e) => e.hostPatterns), ["h2"]);
  assert.equal(nul.warnings.length, 1);
  assert.equal(hostPatternsMatch("h\0*", "h\0x"), true);

  const mb = 1 << 20;
  const long = parseKnownHosts(
    `${"a".repeat(mb)} ${pub(edA)}\n${" ".repeat(mb)}x\n`,
    "kh",
  );
  assert.equal(long.entries.length, 1);
  assert.equal(long.warnings.length, 1);
  assert.equal(
    hostPatternsMatch(long.entries[0].hostPatterns, "a".repeat(mb)),
    false,
  );
  assert.equal(
    hostPatternsMatch(`${"*a".repeat(mb / 2)}`, "a".repeat(1000)),
    false,
  );
  assert.equal(hostPatternsMatch(",".repeat(mb), "h"), false);
  assert.equal(
    hostPatternsMatch(`${"*a".repeat(500)}b`, "a".repeat(1000)),
    false,
  );
  assert.equal(
    parseKnownHosts(`h ${edA.type} ${"A".repeat(mb)}\n`, "kh").warnings.length,
    1,
  );
});
