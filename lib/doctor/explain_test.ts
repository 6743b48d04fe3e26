import assert from "node:assert/strict";
import { SshMcpError } from "../errors.ts";
import type { ConnectFacts, HopFacts } from "../ssh/diagnose.ts";
import { connectSteps } from "./explain.ts";
import { renderDiagnosis } from "./render.ts";

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
      }
      : null,
    skippedKeys: [],
    unprepared: null,
    plan: [],
    attempts: reached >= 2 ? [{ method: "none", result: "refused", methodsLeft: ["publickey"] }] : [],
    loggedIn: reached >= 3,
    passwordGiven: false,
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
