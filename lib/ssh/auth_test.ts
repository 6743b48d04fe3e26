import assert from "node:assert/strict";
import { SshMcpError } from "../errors.ts";
import { type AuthAttempt, type AuthInput, passwordAnswers, prepareAuth } from "./auth.ts";
import type { ConnectPrompts } from "./prompts.ts";

const dir = await Deno.makeTempDir({ prefix: "auth-test-" });
// The keys are shared by every test of this module; removed when it unloads.
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
const agentSocket = `${dir}/agent.sock`; // prepareAuth only checks that it exists
await Deno.writeTextFile(agentSocket, "");

async function keygen(name: string, passphrase = ""): Promise<string> {
  const path = `${dir}/${name}`;
  const out = await new Deno.Command("ssh-keygen", {
    args: ["-q", "-t", "ed25519", "-N", passphrase, "-f", path],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return path;
}

const explicitKey = await keygen("explicit");
const idA = await keygen("id_a");
const idB = await keygen("id_b");
const locked = await keygen("id_locked", "secret-pass");
const missing = `${dir}/id_missing`;
const ask: ConnectPrompts = {
  unknownHostKey: () => Promise.resolve("refuse"),
  keyboardInteractive: () => Promise.resolve(null),
};

/** The attempts as short labels: a key by its file name. */
function labels(attempts: AuthAttempt[]): string[] {
  return attempts.map((a) => a.type === "publickey" ? `key:${a.path.slice(dir.length + 1)}` : a.type);
}

async function order(input: AuthInput): Promise<string[]> {
  return labels((await prepareAuth(input)).attempts);
}

Deno.test("prepareAuth() tries the explicit key, identity files, password, then keyboard-interactive", async () => {
  assert.deepEqual(
    await order({ privateKeyPath: explicitKey, identityFiles: [idA, idB], password: "pw", agentSocket }),
    ["key:explicit", "key:id_a", "key:id_b", "password", "keyboard-interactive"],
  );
});

Deno.test("prepareAuth() uses the agent only without an explicit password or key, before the identity files", async () => {
  assert.deepEqual(await order({ identityFiles: [idA], agentSocket }), ["agent", "key:id_a"]);
  assert.deepEqual(await order({ agentSocket }), ["agent"]);
  assert.deepEqual(await order({ identityFiles: [idA], agentSocket, password: "pw" }), [
    "key:id_a",
    "password",
    "keyboard-interactive",
  ]);
  assert.deepEqual(await order({ privateKeyPath: explicitKey, agentSocket }), ["key:explicit"]);
});

Deno.test("prepareAuth() leaves the agent out under identitiesOnly", async () => {
  assert.deepEqual(await order({ identityFiles: [idA], agentSocket, identitiesOnly: true }), ["key:id_a"]);
  await assert.rejects(
    prepareAuth({ agentSocket, identitiesOnly: true }),
    (e) => e instanceof SshMcpError && e.code === "AUTH_METHOD_MISSING",
  );
});

Deno.test("prepareAuth() offers keyboard-interactive only with a human to ask or a password", async () => {
  assert.deepEqual(await order({ identityFiles: [idA] }), ["key:id_a"]);
  assert.equal((await prepareAuth({ identityFiles: [idA] })).kbdUnanswerable, true);
  assert.deepEqual(await order({ identityFiles: [idA], ask }), ["key:id_a", "keyboard-interactive"]);
  // A human alone is a way to authenticate: nothing else is needed up front.
  assert.deepEqual(await order({ ask }), ["keyboard-interactive"]);
});

Deno.test("prepareAuth() follows PreferredAuthentications and ignores methods it does not know", async () => {
  const input = { privateKeyPath: explicitKey, password: "pw", ask };
  assert.deepEqual(
    await order({ ...input, preferredAuthentications: ["keyboard-interactive", "gssapi-with-mic", "password"] }),
    ["keyboard-interactive", "password"],
  );
  assert.deepEqual(await order({ ...input, preferredAuthentications: ["password", "publickey"] }), [
    "password",
    "key:explicit",
  ]);
  await assert.rejects(
    prepareAuth({ ...input, preferredAuthentications: ["hostbased"] }),
    (e) => e instanceof SshMcpError && e.code === "AUTH_METHOD_MISSING" && /PreferredAuthentications/.test(e.message),
  );
});

Deno.test("prepareAuth() never sends the password when passwordAuthentication is off", async () => {
  assert.deepEqual(await order({ privateKeyPath: explicitKey, password: "pw", passwordAuthentication: false }), [
    "key:explicit",
  ]);
  assert.deepEqual(
    await order({ privateKeyPath: explicitKey, password: "pw", passwordAuthentication: false, ask }),
    ["key:explicit", "keyboard-interactive"],
  );
});

Deno.test("prepareAuth() never answers keyboard-interactive when kbdInteractiveAuthentication is off", async () => {
  const r = await prepareAuth({ password: "pw", ask, kbdInteractiveAuthentication: false });
  assert.deepEqual(labels(r.attempts), ["password"]);
  assert.equal(r.kbdUnanswerable, false);
});

Deno.test("prepareAuth() skips missing and locked identity files unless nothing else is left", async () => {
  assert.deepEqual(await order({ identityFiles: [missing, locked, idB] }), ["key:id_b"]);
  await assert.rejects(
    prepareAuth({ identityFiles: [missing, locked] }),
    (e) => e instanceof SshMcpError && e.code === "KEY_PASSPHRASE_REQUIRED",
  );
  // The passphrase, given without an explicit key, opens the identity file.
  assert.deepEqual(await order({ identityFiles: [locked], passphrase: "secret-pass" }), ["key:id_locked"]);
  // Only missing files and nothing else: nothing was given.
  await assert.rejects(
    prepareAuth({ identityFiles: [missing] }),
    (e) => e instanceof SshMcpError && e.code === "AUTH_METHOD_MISSING",
  );
});

Deno.test("prepareAuth() fails on a problem with the explicit key", async () => {
  await assert.rejects(
    prepareAuth({ privateKeyPath: missing, password: "pw" }),
    (e) => e instanceof SshMcpError && e.code === "KEY_UNREADABLE",
  );
});

Deno.test("prepareAuth() reports an unusable agent only when it was the only way", async () => {
  const gone = `${dir}/no-agent.sock`;
  assert.deepEqual(await order({ identityFiles: [idA], agentSocket: gone }), ["key:id_a"]);
  await assert.rejects(
    prepareAuth({ agentSocket: gone }),
    (e) => e instanceof SshMcpError && e.code === "AGENT_UNAVAILABLE",
  );
});

Deno.test("passwordAnswers() answers only one hidden prompt that asks for the password", () => {
  const rule = { password: "pw" };
  assert.deepEqual(passwordAnswers([{ prompt: "Password: ", echo: false }], rule), ["pw"]);
  assert.deepEqual(passwordAnswers([{ prompt: "user's PASSWORD:", echo: false }], rule), ["pw"]);
  assert.equal(passwordAnswers([{ prompt: "Verification code: ", echo: false }], rule), null);
  assert.equal(passwordAnswers([{ prompt: "Password: ", echo: true }], rule), null);
  assert.equal(
    passwordAnswers([{ prompt: "Password: ", echo: false }, { prompt: "Code: ", echo: false }], rule),
    null,
  );
  assert.equal(passwordAnswers([{ prompt: "Password: ", echo: false }], {}), null);
});
