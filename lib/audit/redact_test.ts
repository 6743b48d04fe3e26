// Tests of what the audit log keeps of a call's arguments: secrets never, in
// any form; data as size and digest; hostile shapes handled.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  type ArgumentsDigest,
  MAX_ARGUMENTS_BYTES,
  MAX_KEPT_STRING_BYTES,
  redactArguments,
  REDACTED,
  SHORT_DATA_BYTES,
} from "./redact.ts";

const CANARY = "canary-Secret-7f3a91";

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** Every form a secret could leak in: itself, its hex, base64 and digests. */
function leaks(json: string, secret: string): string[] {
  const bytes = new TextEncoder().encode(secret);
  const forms = [
    secret,
    sha256(secret),
    createHash("sha256").update(secret).digest("base64"),
    btoa(secret),
    Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(""),
  ];
  return forms.filter((form) => json.includes(form));
}

Deno.test("redactArguments() replaces passwords, passphrases and sudo passwords with [redacted]", () => {
  const connect = redactArguments("ssh_connect", {
    host: "h",
    username: "u",
    password: CANARY,
    passphrase: CANARY,
    private_key_path: "/home/u/.ssh/id_ed25519",
  });
  assert.deepEqual(connect, {
    host: "h",
    username: "u",
    password: REDACTED,
    passphrase: REDACTED,
    private_key_path: "/home/u/.ssh/id_ed25519",
  });
  const sudo = redactArguments("ssh_sudo_execute", { session_id: "s1", command: "id", password: CANARY });
  assert.deepEqual(sudo, { session_id: "s1", command: "id", password: REDACTED });
});

Deno.test("redactArguments() redacts secret-named fields at any depth, in arrays and in env", () => {
  const args = {
    api_token: CANARY,
    Client_Secret: CANARY,
    env: { GITHUB_TOKEN: CANARY, PGPASSWORD: CANARY, DB_PASS: CANARY, MYSQL_PWD: CANARY, LANG: "C" },
    targets: [{ session_id: "a", password: CANARY }, { nested: { deeper: [{ passphrase: CANARY }] } }],
    auth: { token: { value: CANARY } },
  };
  const out = redactArguments("ssh_execute_many", args);
  const json = JSON.stringify(out);
  assert.deepEqual(leaks(json, CANARY), []);
  assert.equal((out as { env: { LANG: string } }).env.LANG, "C");
  assert.match(json, /"targets":\[\{"session_id":"a","password":"\[redacted\]"\}/);
});

Deno.test("redactArguments() never keeps a hash or length of a secret, whatever its type", () => {
  for (const secret of [CANARY, "", 1234, [CANARY], { inner: CANARY }, new TextEncoder().encode(CANARY)]) {
    const out = redactArguments("ssh_connect", { password: secret, passphrase: secret });
    assert.deepEqual(out, { password: REDACTED, passphrase: REDACTED });
  }
});

Deno.test("redactArguments() keeps data fields as bytes and sha256, short ones as bytes alone", () => {
  const text = "héllo\n".repeat(12); // 84 bytes
  const digest = { bytes: new TextEncoder().encode(text).length, sha256: sha256(text) };
  for (const field of ["stdin", "content", "old_text", "new_text"]) {
    assert.deepEqual(redactArguments("t", { [field]: text }), { [field]: digest }, field);
    // 64 bytes or less: a hash would let someone guess a short secret piped in.
    assert.deepEqual(redactArguments("t", { [field]: "x".repeat(SHORT_DATA_BYTES) }), { [field]: { bytes: 64 } });
  }
  assert.deepEqual(redactArguments("t", { stdin: "" }), { stdin: { bytes: 0 } });
  // A list under a data field is data too.
  assert.deepEqual(redactArguments("t", { content: [text] }), { content: [digest] });
  // Keystrokes are what the agent did in a shell: kept like a command line.
  assert.deepEqual(redactArguments("ssh_shell_send", { data: "ls -la\n" }), { data: "ls -la\n" });
});

Deno.test("redactArguments() digests other strings only over 1024 bytes, counted in UTF-8", () => {
  const edge = "x".repeat(MAX_KEPT_STRING_BYTES);
  assert.deepEqual(redactArguments("ssh_execute", { command: edge }), { command: edge });
  const over = edge + "x";
  assert.deepEqual(redactArguments("ssh_execute", { command: over }), {
    command: { bytes: 1025, sha256: sha256(over) },
  });
  // 342 three-byte characters: short in UTF-16, 1026 bytes in UTF-8.
  const wide = "€".repeat(342);
  assert.deepEqual(redactArguments("ssh_execute", { command: wide }), {
    command: { bytes: 1026, sha256: sha256(wide) },
  });
  // Commands are kept as given: the README says a command line's secret stays.
  assert.deepEqual(redactArguments("ssh_execute", { command: "echo hi" }), { command: "echo hi" });
});

Deno.test("redactArguments() turns hostile and non-JSON values into plain JSON", () => {
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  let deep: unknown = "bottom";
  for (let i = 0; i < 10_000; i++) deep = { d: deep };
  const hostile = JSON.parse('{"__proto__": {"polluted": true}, "constructor": {"prototype": 1}}');
  const throwing = Object.defineProperty({}, "boom", {
    enumerable: true,
    get() {
      throw new Error("getter");
    },
  });
  const out = redactArguments("t", {
    cyclic,
    deep,
    hostile,
    throwing,
    big: 12n,
    nan: NaN,
    inf: -Infinity,
    fn: () => 1,
    sym: Symbol("s"),
    undef: undefined,
    list: [undefined, 1],
    bytes: new Uint8Array([1, 2, 3]),
  }) as Record<string, unknown>;
  const json = JSON.stringify(out);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.deepEqual(JSON.parse(json), out, "the result is plain JSON");
  assert.deepEqual(out.cyclic, { a: 1, self: "[circular]" });
  assert.match(json, /"\[too deep\]"/);
  assert.ok(Object.hasOwn(out.hostile as object, "__proto__"), "__proto__ stays a key");
  assert.equal(Object.getPrototypeOf(out.hostile), Object.prototype);
  assert.deepEqual(out.throwing, { boom: "[unreadable]" });
  assert.equal(out.big, "12");
  assert.equal(out.nan, "NaN");
  assert.equal(out.inf, "-Infinity");
  assert.equal(out.fn, "[unserialisable]");
  assert.equal(out.sym, "[unserialisable]");
  assert.ok(!("undef" in out));
  assert.deepEqual(out.list, [null, 1]);
  assert.deepEqual(out.bytes, {
    bytes: 3,
    sha256: createHash("sha256").update(new Uint8Array([1, 2, 3])).digest("hex"),
  });
});

Deno.test("redactArguments() leaves its input unchanged", () => {
  const args = { password: CANARY, stdin: "x", nested: { token: CANARY } };
  const copy = structuredClone(args);
  redactArguments("t", args);
  assert.deepEqual(args, copy);
});

Deno.test("redactArguments() redacts secrets named like SSHPASS, REDISCLI_AUTH and SIGNING_KEY, not a bare key", () => {
  const env = { SSHPASS: CANARY, REDISCLI_AUTH: CANARY, SIGNING_KEY: CANARY, aws_secret_access_key: CANARY, LANG: "C" };
  const out = redactArguments("ssh_execute", { command: "true", env }) as { env: Record<string, string> };
  assert.deepEqual(leaks(JSON.stringify(out), CANARY), []);
  assert.equal(out.env.LANG, "C");
  // Names that describe, not hold, a secret stay.
  assert.deepEqual(redactArguments("ssh_shell_send_control", { session_id: "s", shell_id: "h", key: "ctrl+c" }), {
    session_id: "s",
    shell_id: "h",
    key: "ctrl+c",
  });
  assert.deepEqual(redactArguments("ssh_connect", { private_key_path: "/k", keepalive: 1 }), {
    private_key_path: "/k",
    keepalive: 1,
  });
});

Deno.test("redactArguments() redacts the password of scheme://user:password@ in every kept string", () => {
  const cases: [string, string][] = [
    ["DATABASE_URL=postgres://u:pw@h/db psql", `DATABASE_URL=postgres://u:${REDACTED}@h/db psql`],
    [
      "curl https://u:pw@host/x && curl 'ftp://a:b@c'",
      `curl https://u:${REDACTED}@host/x && curl 'ftp://a:${REDACTED}@c'`,
    ],
    ["redis-cli -u redis://:pw@127.0.0.1:6379", `redis-cli -u redis://:${REDACTED}@127.0.0.1:6379`],
    // An unescaped "@" in the password: the authority runs to its last "@".
    ["mysql://root:p@ss@db:3306/x", `mysql://root:${REDACTED}@db:3306/x`],
    // No password: nothing to hide. A path's "@" is not userinfo.
    ["git clone ssh://git@host:22/r.git", "git clone ssh://git@host:22/r.git"],
    ["curl http://host:8080/a@b", "curl http://host:8080/a@b"],
  ];
  for (const [given, kept] of cases) {
    assert.deepEqual(redactArguments("ssh_execute", { command: given }), { command: kept }, given);
  }
  const out = redactArguments("ssh_execute", {
    command: "true",
    env: { DATABASE_URL: `postgres://u:${CANARY}@h/db` },
    targets: [{ command: `curl https://u:${CANARY}@h` }],
  });
  assert.deepEqual(leaks(JSON.stringify(out), CANARY), []);
  assert.deepEqual((out as { env: unknown }).env, { DATABASE_URL: `postgres://u:${REDACTED}@h/db` });
});

Deno.test("redactArguments() records arguments over 16 KiB as their size, sha256 and field names", () => {
  const junk = Array(36000).fill("x".repeat(300));
  const huge = redactArguments("no_such_tool", { junk, session_id: "s" }) as ArgumentsDigest;
  const json = JSON.stringify({ junk, session_id: "s" });
  assert.deepEqual(huge, { bytes: json.length, sha256: sha256(json), keys: ["junk", "session_id"] });

  // A list of short strings, each kept alone, still counts as a whole.
  const list = Array.from({ length: 2000 }, (_, i) => `item-${i}`);
  assert.deepEqual(Object.keys(redactArguments("t", { list }) as object), ["bytes", "sha256", "keys"]);

  // Long field names and many of them: the digest keeps 32, each cut to 64 characters.
  const many = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`${i}-${"k".repeat(1000)}`, 1]));
  const cut = redactArguments("t", many) as ArgumentsDigest;
  assert.equal(cut.keys.length, 32);
  for (const key of cut.keys) assert.ok(key.length <= 64, key);
  assert.ok(JSON.stringify(cut).length < MAX_ARGUMENTS_BYTES);
  // One name alone over the cap.
  const one = redactArguments("t", { ["n".repeat(100_000)]: 1 }) as ArgumentsDigest;
  assert.deepEqual(one.keys, ["n".repeat(64)]);
  // Not an object: no names.
  assert.deepEqual((redactArguments("t", list) as ArgumentsDigest).keys, []);
});

Deno.test("redactArguments() keeps arguments of exactly 16 KiB and digests one byte more", () => {
  const sized = (n: number) => {
    const base = { a: [] as string[] };
    const empty = JSON.stringify(base).length; // {"a":[]}
    // Items of 1000 kept bytes each ("x"*998 quoted) plus commas, then one to make up the rest.
    const items: string[] = [];
    let size = empty;
    while (size + 1001 + 2 <= n) {
      items.push("x".repeat(998));
      size += (items.length > 1 ? 1 : 0) + 1000;
    }
    const rest = n - size - (items.length > 0 ? 1 : 0) - 2;
    items.push("y".repeat(rest));
    base.a = items;
    assert.equal(JSON.stringify(base).length, n);
    return base;
  };
  const at = sized(MAX_ARGUMENTS_BYTES);
  assert.deepEqual(redactArguments("t", at), at);
  const over = sized(MAX_ARGUMENTS_BYTES + 1);
  assert.deepEqual(Object.keys(redactArguments("t", over) as object), ["bytes", "sha256", "keys"]);
});
