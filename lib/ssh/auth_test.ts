import assert from "node:assert/strict";
import { SshMcpError } from "../errors.ts";
import { type AuthAttempt, type AuthInput, passwordAnswers, prepareAuth } from "./auth.ts";
import type { ConnectPrompts } from "./prompts.ts";
import { startAgent } from "../../tests/fixtures/sshd.ts";

const dir = await Deno.makeTempDir({ prefix: "auth-test-" });
// The keys are shared by every test of this module; removed when it unloads.
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

async function keygen(name: string, passphrase = ""): Promise<string> {
  const path = `${dir}/${name}`;
  const out = await new Deno.Command("ssh-keygen", {
    args: ["-q", "-t", "ed25519", "-N", passphrase, "-C", name, "-f", path],
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
// Keys only the agent holds, and the agent's copy of id_a: the agent lists them in the order they were added.
const agentX = await keygen("agent_x");
const agentY = await keygen("agent_y");

/** A real ssh-agent with its own socket, holding agent_x, id_a, agent_y; the test stops it. */
function threeKeyAgent() {
  return startAgent([agentX, idA, agentY]);
}
const ask: ConnectPrompts = {
  unknownHostKey: () => Promise.resolve("refuse"),
  keyboardInteractive: () => Promise.resolve(null),
};

/** The attempts as short labels: a key by its file name, the agent's copy of a file by its name, other agent keys by comment. */
function labels(attempts: AuthAttempt[]): string[] {
  return attempts.map((a) => {
    if (a.type === "publickey") return `key:${a.path.slice(dir.length + 1)}`;
    if (a.type !== "agent") return a.type;
    return a.path !== undefined ? `agent:${a.path.slice(dir.length + 1)}` : `agent(${a.keys.map((k) => k.comment)})`;
  });
}

async function order(input: AuthInput): Promise<string[]> {
  return labels((await prepareAuth(input)).attempts);
}

Deno.test("prepareAuth() tries the explicit key, identity files, password, then keyboard-interactive", async () => {
  assert.deepEqual(
    await order({
      privateKeyPath: explicitKey,
      identityFiles: [idA, idB],
      password: "pw",
      agentSocket: `${dir}/unused.sock`,
    }),
    ["key:explicit", "key:id_a", "key:id_b", "password", "keyboard-interactive"],
  );
});

Deno.test("prepareAuth() uses the agent only without an explicit password or key", async () => {
  await using agent = await threeKeyAgent();
  const agentSocket = agent.socket;
  assert.deepEqual(await order({ agentSocket }), ["agent(agent_x,id_a,agent_y)"]);
  assert.deepEqual(await order({ identityFiles: [idB], agentSocket, password: "pw" }), [
    "key:id_b",
    "password",
    "keyboard-interactive",
  ]);
  assert.deepEqual(await order({ privateKeyPath: explicitKey, agentSocket }), ["key:explicit"]);
});

Deno.test("prepareAuth() offers the agent's copies of identity files, its other keys, then the other files", async () => {
  await using agent = await threeKeyAgent();
  const agentSocket = agent.socket;
  // As ssh's pubkey_prepare: identity files the agent holds (in the agent's order), the agent's other keys,
  // then the files it does not hold (in the config's order).
  assert.deepEqual(await order({ identityFiles: [idB, missing, idA], agentSocket }), [
    "agent:id_a",
    "agent(agent_x,agent_y)",
    "key:id_b",
  ]);
});

Deno.test("prepareAuth() under identitiesOnly offers only the agent's copies of the identity files", async () => {
  await using agent = await threeKeyAgent();
  const agentSocket = agent.socket;
  assert.deepEqual(await order({ identityFiles: [idB, idA], agentSocket, identitiesOnly: true }), [
    "agent:id_a",
    "key:id_b",
  ]);
  assert.deepEqual(await order({ identityFiles: [idB], agentSocket, identitiesOnly: true }), ["key:id_b"]);
  await assert.rejects(
    prepareAuth({ agentSocket, identitiesOnly: true }),
    (e) => e instanceof SshMcpError && e.code === "AUTH_METHOD_MISSING",
  );
  // The agent holds none of them: nothing to offer, and the message says why.
  await assert.rejects(
    prepareAuth({ identityFiles: [missing], agentSocket, identitiesOnly: true }),
    (e) => e instanceof SshMcpError && e.code === "AUTH_METHOD_MISSING",
  );
  await assert.rejects(
    prepareAuth({ identityFiles: [`${idB}.pub`], agentSocket, identitiesOnly: true }),
    (e) => e instanceof SshMcpError && e.code === "KEY_UNREADABLE" && /public key/.test(e.message),
  );
});

Deno.test("prepareAuth() matches an identity file by its .pub, or an encrypted one by its clear header", async () => {
  await using agent = await threeKeyAgent();
  const agentSocket = agent.socket;
  // Only the public key on disk (1Password, Secretive): the agent signs.
  const pubOnly = `${dir}/pub_only.pub`;
  await Deno.copyFile(`${idA}.pub`, pubOnly);
  assert.deepEqual(await order({ identityFiles: [pubOnly], agentSocket, identitiesOnly: true }), [
    "agent:pub_only.pub",
  ]);
  // Named without .pub, only the .pub exists: found as ssh finds it.
  const named = `${dir}/named`;
  await Deno.copyFile(`${idA}.pub`, `${named}.pub`);
  assert.deepEqual(await order({ identityFiles: [named], agentSocket, identitiesOnly: true }), ["agent:named"]);
  // An encrypted OpenSSH key without .pub whose decrypted copy is in the agent: no passphrase needed.
  const lockedNoPub = `${dir}/locked_nopub`;
  await Deno.copyFile(locked, lockedNoPub);
  const unlocked = `${dir}/unlocked`;
  await Deno.copyFile(locked, unlocked);
  await Deno.chmod(unlocked, 0o600);
  const out = await new Deno.Command("ssh-keygen", {
    args: ["-q", "-p", "-P", "secret-pass", "-N", "", "-f", unlocked],
    stdout: "null",
  }).output();
  assert.ok(out.success);
  await using lockedAgent = await startAgent([unlocked]);
  assert.deepEqual(
    await order({ identityFiles: [lockedNoPub], agentSocket: lockedAgent.socket, identitiesOnly: true }),
    ["agent:locked_nopub"],
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
  const notAnAgent = `${dir}/not-an-agent.sock`;
  await Deno.writeTextFile(notAnAgent, "");
  for (const socket of [gone, notAnAgent]) {
    assert.deepEqual(await order({ identityFiles: [idA], agentSocket: socket }), ["key:id_a"]);
    await assert.rejects(
      prepareAuth({ agentSocket: socket }),
      (e) => e instanceof SshMcpError && e.code === "AGENT_UNAVAILABLE",
    );
  }
});

Deno.test("prepareAuth() says so when the agent holds no keys and nothing else is given", async () => {
  await using empty = await startAgent([]);
  await assert.rejects(
    prepareAuth({ agentSocket: empty.socket }),
    (e) => e instanceof SshMcpError && e.code === "AUTH_METHOD_MISSING" && /holds no keys/.test(e.message),
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
