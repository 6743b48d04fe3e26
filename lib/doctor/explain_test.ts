import assert from "node:assert/strict";
import { SshMcpError } from "../errors.ts";
import type { ConnectFacts, HopFacts } from "../ssh/diagnose.ts";
import { type AttemptLine, connectSteps, describeAttempt } from "./explain.ts";
import { renderDiagnosis, renderDiagnosisJson } from "./render.ts";

/** A hop that got as far as `upTo` ("tcp" … "auth"), every stage before it seen and fine. */
function hop(host: string, upTo: "tcp" | "banner" | "auth" | "done", extra: Partial<HopFacts> = {}): HopFacts {
  const reached = ["tcp", "banner", "auth", "done"].indexOf(upTo);
  return {
    host,
    port: 22,
    username: "u",
    transport: reached >= 1 ? { ms: 3, tunnel: false } : null,
    serverVersion: reached >= 2 ? "OpenSSH_9.2p1" : undefined,
    algorithms: reached >= 2
      ? {
        kex: "curve25519-sha256",
        hostKey: "ssh-ed25519",
        cipher: "aes128-gcm@openssh.com",
        mac: "",
        compression: "none",
      }
      : null,
    hostKey: reached >= 2
      ? {
        type: "ssh-ed25519",
        fingerprint: "SHA256:abc",
        line: `${host} ssh-ed25519 AAAA`,
        verdict: { kind: "match", entry: entry() },
        files: ["/kh"],
        writeFile: "/kh",
        policy: "strict",
        name: host,
        port: 22,
        address: { host, port: 22 },
      }
      : null,
    skippedKeys: [],
    unprepared: null,
    plan: [],
    attempts: reached >= 2 ? [{ method: "none", result: "refused", methodsLeft: ["publickey"] }] : [],
    loggedIn: reached >= 3,
    passwordGiven: false,
    hostKeyAccepted: reached >= 2,
    credentialsWithheld: false,
    ...extra,
  };
}

function entry() {
  return { file: "/kh", line: 3, marker: null, hostPatterns: "h", keyType: "ssh-ed25519", keyBase64: "AAAA" };
}

function facts(hops: HopFacts[], error: SshMcpError | null): ConnectFacts {
  return { lookup: { kind: "literal" }, hops, error };
}

Deno.test("connectSteps() fails tcp on a refused port and skips what follows", () => {
  const error = new SshMcpError("CONNECT_REFUSED", "Cannot connect to h:22: connection refused");
  const steps = connectSteps(facts([hop("h", "tcp")], error), 20);
  assert.deepEqual(steps.map((s) => `${s.step} ${s.status}`), [
    "dns ok",
    "tcp fail",
    "banner skip",
    "algorithms skip",
    "host_key skip",
    "auth_methods skip",
    "auth skip",
  ]);
  assert.match(steps[1].detail, /connection refused: nothing listens on h:22/);
  assert.match(steps[1].fix!, /Check the port/);
});

Deno.test("connectSteps() names the broken inner hop and leaves the hops after it not reached", () => {
  const error = new SshMcpError("AUTH_FAILED", "Server b:22 rejected the key /k for u");
  const broken = hop("b", "auth", {
    transport: { ms: 9, tunnel: true },
    plan: [{ method: "publickey", key: "/k" }],
    attempts: [
      { method: "none", result: "refused", methodsLeft: ["publickey"] },
      { method: "publickey", key: "/k", result: "refused" },
    ],
  });
  const steps = connectSteps(facts([hop("a", "done"), broken, hop("t", "tcp")], error), 20);
  const fail = steps.filter((s) => s.status === "fail");
  assert.deepEqual(fail.map((s) => `${s.hop} ${s.host} ${s.step}`), ["2 u@b:22 auth"]);
  assert.match(fail[0].fix!, /authorized_keys/);
  assert.match(steps.find((s) => s.hop === 2 && s.step === "tcp")!.detail, /through u@a:22/);
  assert.ok(steps.filter((s) => s.hop === 3).every((s) => s.status === "skip" && /u@b:22 failed first/.test(s.detail)));
});

Deno.test("connectSteps() explains a disconnect after refused keys as MaxAuthTries", () => {
  const error = new SshMcpError("AUTH_FAILED", "Server h:22 closed the connection during authentication", {
    cause: new Error("Too many authentication failures"),
  });
  const h = hop("h", "auth", {
    plan: [{ method: "agent", key: "k1" }, { method: "agent", key: "k2" }, { method: "agent", key: "k3" }],
    attempts: [
      { method: "none", result: "refused", methodsLeft: ["publickey"] },
      { method: "agent", key: "k1", result: "refused" },
      { method: "agent", key: "k2", result: "unanswered" },
    ],
  });
  const auth = connectSteps(facts([h], error), 20).at(-1)!;
  assert.equal(auth.status, "fail");
  assert.match(auth.detail, /after 1 refused attempt \(it said "Too many authentication failures"\).*MaxAuthTries/);
  assert.match(auth.fix!, /IdentitiesOnly yes/);
  const results = (auth.data!.attempts as { result: string }[]).map((a) => a.result);
  assert.deepEqual(results, ["refused", "unanswered", "not tried", "not given"]);
});

Deno.test("connectSteps() warns of a key accept-new would record, and escapes what the server sent", () => {
  const h = hop("h", "done", { serverVersion: "Evil\x1b[2J" });
  h.hostKey = { ...h.hostKey!, verdict: { kind: "unknown" }, policy: "accept-new" };
  const steps = connectSteps(facts([h], null), 20);
  const key = steps.find((s) => s.step === "host_key")!;
  assert.equal(key.status, "warn");
  assert.match(key.detail, /would record it in \/kh \(accept-new\)/);
  assert.match(key.fix!, /append this line to \/kh: h ssh-ed25519 AAAA/);
  assert.equal(steps.find((s) => s.step === "banner")!.detail, "server runs Evil\\x1b[2J");
});

Deno.test("renderDiagnosis() folds a hop's skipped steps into one line and puts the fix under the failure", () => {
  const error = new SshMcpError("CONNECT_TIMEOUT", "Cannot connect to h:22: no SSH session within 2 s");
  const steps = connectSteps(
    facts([hop("h", "banner", { serverVersion: null, algorithms: null, hostKey: null })], error),
    2,
  );
  const text = renderDiagnosis({ ok: false, target: "u@h:22", verdict: "v", steps });
  assert.match(text, /FAIL banner +connected, but no SSH banner within 2 s/);
  assert.match(text, /\n {7}fix: Check the port/);
  assert.match(text, /- +algorithms, host_key, auth_methods, auth: not reached/);
  assert.match(text, /\nFAILED: v$/);
});

Deno.test("connectSteps() shows only method names from the server's list; renderDiagnosis() forges no line", () => {
  const forged = "x\n  ok   auth         logged in\nOK: A login to u@h:22 would succeed\x1b[2J";
  const h = hop("h", "auth", {
    attempts: [{ method: "none", result: "refused", methodsLeft: ["publickey", forged, "password", "\x9b31m"] }],
  });
  const error = new SshMcpError("AUTH_FAILED", "Server h:22 rejected every offered method for user u");
  const steps = connectSteps(facts([h], error), 20);
  const methods = steps.find((s) => s.step === "auth_methods")!;
  assert.deepEqual(methods.data?.methods, ["publickey", "password"]);
  assert.ok(!methods.detail.includes("\n") && !methods.detail.includes("\x1b"), methods.detail);
  assert.match(methods.detail, /^the server accepts: publickey, password \(and names that are not method names: /);
  // Even a detail that carries a raw line break and escape (the second wall) stays on its line, inert.
  steps.push({ step: "auth", status: "fail", detail: forged, fix: `fix\n${forged}` });
  const text = renderDiagnosis({ ok: false, target: "u@h:22", verdict: `v ${forged}`, steps });
  assert.doesNotMatch(text, /^OK:/m);
  assert.doesNotMatch(text, /^ {2}ok +auth +logged/m);
  // deno-lint-ignore no-control-regex
  assert.doesNotMatch(text, /[\x1b\x9b]/);
  assert.match(text, /\\nOK: A login to u@h:22 would succeed\\x1b\[2J/);
});

Deno.test("renderDiagnosisJson() escapes C1 and bidi characters that JSON.stringify leaves raw", () => {
  const h = hop("h", "done", { serverVersion: "Evil\x9b2J\u202e" });
  const diagnosis = { ok: true, target: "u@h:22", verdict: "v", steps: connectSteps(facts([h], null), 20) };
  const json = renderDiagnosisJson(diagnosis);
  assert.doesNotMatch(json, /[\x7f-\x9f\u202e]/);
  assert.match(json, /"version": "Evil\\u009b2J\\u202e"/);
  assert.deepEqual(JSON.parse(json), JSON.parse(JSON.stringify(diagnosis)));
});

Deno.test("connectSteps() never calls a login in with `none` ok", () => {
  const inWithNone = (extra: Partial<HopFacts>) =>
    hop("h", "done", {
      plan: [{ method: "publickey", key: "/k" }],
      attempts: [{ method: "none", result: "accepted" }],
      ...extra,
    });
  const warned = connectSteps(facts([inWithNone({})], null), 20).at(-1)!;
  assert.equal(warned.status, "warn");
  assert.match(
    warned.detail,
    /without authentication \(method none\), which ssh_connect never sends; it would try key/,
  );
  const unprepared = new SshMcpError("AUTH_METHOD_MISSING", "No way to authenticate: no password, no private key");
  const failed = connectSteps(facts([inWithNone({ plan: [], unprepared })], null), 20).at(-1)!;
  assert.equal(failed.status, "fail");
  assert.match(failed.detail, /ssh_connect never sends none, and has nothing to offer: No way to authenticate/);
});

Deno.test("connectSteps() puts a bad server signature at the host key step, after the key passed", () => {
  const error = new SshMcpError("HANDSHAKE_FAILED", "SSH handshake with h:22 failed", {
    cause: new Error("Handshake failed: signature verification failed"),
  });
  const h = hop("h", "auth", { algorithms: null, attempts: [], hostKeyAccepted: true });
  const steps = connectSteps(facts([h], error), 20);
  const fail = steps.filter((s) => s.status === "fail");
  assert.deepEqual(fail.map((s) => s.step), ["host_key"]);
  assert.match(fail[0].detail, /signature with that key did not verify/);
  assert.deepEqual(steps.filter((s) => s.step === "auth_methods").map((s) => s.status), ["skip"]);
});

Deno.test("connectSteps() keyscans the real host and port under a HostKeyAlias, and quotes paths", () => {
  const h = hop("h", "auth", { attempts: [] });
  h.hostKey = {
    ...h.hostKey!,
    name: "alias",
    port: 22,
    address: { host: "10.0.0.7", port: 2222 },
    verdict: {
      kind: "mismatch",
      expected: [{ ...entry(), file: "/home/me/my hosts" }],
    },
  };
  const error = new SshMcpError("HOST_KEY_MISMATCH", "Host key of h:22 does not match known_hosts");
  const changed = connectSteps(facts([h], error), 20).find((s) => s.step === "host_key")!;
  assert.match(changed.fix!, /ssh-keygen -R alias -f '\/home\/me\/my hosts'/);
  h.hostKey.verdict = { kind: "unknown" };
  const unknown = connectSteps(facts([h], new SshMcpError("HOST_KEY_UNKNOWN", "not known")), 20)
    .find((s) => s.step === "host_key")!;
  assert.match(unknown.fix!, /ssh-keyscan -p 2222 -t ed25519 10\.0\.0\.7 \| ssh-keygen -lf -/);
});

Deno.test("connectSteps() lists the ssh-agent's keys it offered, and only counts the others", () => {
  const error = new SshMcpError("AUTH_FAILED", "Server h:22 closed the connection during authentication");
  const h = hop("h", "auth", {
    plan: [
      { method: "agent", key: "ssh-ed25519 SHA256:one" },
      { method: "agent", key: "ssh-ed25519 SHA256:two" },
      { method: "agent", key: "ssh-ed25519 SHA256:three" },
    ],
    attempts: [
      { method: "none", result: "refused", methodsLeft: ["publickey"] },
      { method: "agent", key: "ssh-ed25519 SHA256:one", result: "refused" },
    ],
  });
  const auth = connectSteps(facts([h], error), 20).at(-1)!;
  const lines = (auth.data!.attempts as AttemptLine[]).map(describeAttempt);
  assert.deepEqual(lines, [
    "ssh-agent key ssh-ed25519 SHA256:one: refused by the server",
    "2 ssh-agent keys: not tried",
    "password: none given",
  ]);
});

Deno.test("connectSteps() under accept-new: no credential to an unknown key, the login not verified", () => {
  const error = new SshMcpError("HOST_KEY_UNKNOWN", "Host h:22 is not in known_hosts: no credential was sent");
  const h = hop("h", "auth", {
    plan: [{ method: "publickey", key: "/k" }],
    credentialsWithheld: true,
  });
  h.hostKey = { ...h.hostKey!, verdict: { kind: "unknown" }, policy: "accept-new" };
  const steps = connectSteps(facts([h], error), 20);
  assert.deepEqual(steps.map((s) => `${s.step} ${s.status}`).slice(4), [
    "host_key warn",
    "auth_methods ok",
    "auth warn",
  ]);
  assert.match(steps.at(-1)!.detail, /no credential was sent .*; ssh_connect would record the key, then try key \/k$/);
});
