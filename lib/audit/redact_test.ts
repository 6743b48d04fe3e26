// Tests of what the audit log keeps of a call's arguments: secrets never, in
// any form; data as size and digest; hostile shapes handled.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { MAX_KEPT_STRING_BYTES, redactArguments, REDACTED, SHORT_DATA_BYTES } from "./redact.ts";

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
