/**
 * End to end: ssh_connect asks the user through MCP elicitation (an SDK
 * client that declares the capability and answers `elicitation/create`)
 * about an unknown host key under strict checking and about
 * keyboard-interactive prompts; the server runs under `-P`, against a real
 * sshd (and an ssh2 server for one-time code prompts, which PAM in the
 * fixture sshd does not ask).
 */

import assert from "node:assert/strict";
// @ts-types="@modelcontextprotocol/sdk/types"
import { ElicitRequestSchema, type ElicitResult } from "@modelcontextprotocol/sdk/types.js";
import { call, callOk, type ServerOptions, startServer, type TestServer } from "./fixtures/mcp.ts";
import { otpServer } from "./fixtures/otp_server.ts";
import { type Sshd, sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable();
if (skip) console.warn("SKIP elicitation tests: no sshd on this machine (apt-get install openssh-server)");

/** One `elicitation/create` as the client received it. */
interface Question {
  message: string;
  // deno-lint-ignore no-explicit-any
  requestedSchema: any;
}

/** A server whose client declares elicitation and answers each question with `answer`. */
async function askingServer(
  answer: (q: Question) => ElicitResult,
  options: ServerOptions = {},
): Promise<TestServer & { questions: Question[] }> {
  const server = await startServer({ ...options, capabilities: { elicitation: {} } });
  const questions: Question[] = [];
  server.client.setRequestHandler(ElicitRequestSchema, (request) => {
    const q = request.params as Question;
    questions.push(q);
    return answer(q);
  });
  return Object.assign(server, { questions });
}

function target(sshd: Sshd) {
  return { host: sshd.host, port: sshd.port, username: sshd.user, private_key_path: sshd.keys.ed25519.path };
}

function ed25519(sshd: Sshd) {
  return sshd.hostKeys.find((k) => k.type === "ssh-ed25519")!;
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const decide = (decision: string): ElicitResult => ({ action: "accept", content: { decision } });

Deno.test({ name: "an unknown host key under strict is put to the user by elicitation", ignore: skip }, async (t) => {
  await using sshd = await startSshd();
  const dir = await Deno.makeTempDir({ prefix: "mcp-elicit-" });
  const knownHosts = async (name: string, content = "") => {
    const path = `${dir}/${name}`;
    await Deno.writeTextFile(path, content);
    return path;
  };
  const key = ed25519(sshd);
  try {
    await t.step("trust once: connected, the question shows the key, known_hosts unchanged", async () => {
      const kh = await knownHosts("once");
      await using server = await askingServer(() => decide("once"), { args: ["--known-hosts", kh] });
      const r = await callOk(server.client, "ssh_connect", target(sshd));
      assert.equal(r.structured.host_key_fingerprint, key.fingerprint);
      assert.equal(r.structured.host_key_added, false);
      assert.equal(server.questions.length, 1);
      const q = server.questions[0];
      assert.ok(q.message.includes(key.fingerprint), q.message);
      assert.ok(q.message.includes("ssh-ed25519"), q.message);
      assert.ok(q.message.includes(`[127.0.0.1]:${sshd.port}`), q.message);
      assert.deepEqual(q.requestedSchema.properties.decision.enum, ["once", "record", "refuse"]);
      assert.deepEqual(q.requestedSchema.required, ["decision"]);
      assert.equal(await Deno.readTextFile(kh), "");
    });

    await t.step("trust and record: the accept-new line is written, the next connect asks nothing", async () => {
      const kh = `${dir}/record`; // created by the server, as accept-new creates it
      await using server = await askingServer(() => decide("record"), { args: ["--known-hosts", kh] });
      const r = await callOk(server.client, "ssh_connect", target(sshd));
      assert.equal(r.structured.host_key_added, true);
      assert.equal(await Deno.readTextFile(kh), `[127.0.0.1]:${sshd.port} ${key.publicKeyLine}\n`);
      assert.equal((await Deno.stat(kh)).mode! & 0o777, 0o600);
      await callOk(server.client, "ssh_connect", target(sshd));
      assert.equal(server.questions.length, 1);
    });

    await t.step("the connect deadline does not run while the user reads the question", async () => {
      const kh = await knownHosts("slow");
      // Answered 2 s after connect_timeout has passed: the deadline must be paused meanwhile. The
      // timeout leaves the rest of the connect (key exchange, authentication) time to spare on a
      // loaded machine: 1 s was seen to run out there with the pause working.
      await using server = await askingServer(() => decide("once"), { args: ["--known-hosts", kh] });
      server.client.setRequestHandler(ElicitRequestSchema, async (request) => {
        server.questions.push(request.params as Question);
        await delay(5000);
        return decide("once");
      });
      const r = await callOk(server.client, "ssh_connect", { ...target(sshd), connect_timeout: 3 });
      assert.equal(r.structured.host_key_fingerprint, key.fingerprint);
      assert.equal(server.questions.length, 1);
    });

    for (const action of ["decline", "cancel"] as const) {
      await t.step(`${action}: HOST_KEY_UNKNOWN, nothing written`, async () => {
        const kh = await knownHosts(action);
        await using server = await askingServer(() => ({ action }), { args: ["--known-hosts", kh] });
        const r = await call(server.client, "ssh_connect", target(sshd));
        assert.equal(r.code, "HOST_KEY_UNKNOWN", r.text);
        assert.match(r.text, /the user refused/);
        assert.equal(server.questions.length, 1);
        assert.equal(await Deno.readTextFile(kh), "");
      });
    }

    await t.step("a question the client fails to answer is HOST_KEY_UNKNOWN, nothing written", async () => {
      const kh = await knownHosts("broken");
      await using server = await askingServer(() => {
        throw new Error("the form could not be shown");
      }, { args: ["--known-hosts", kh] });
      const r = await call(server.client, "ssh_connect", target(sshd));
      assert.equal(r.code, "HOST_KEY_UNKNOWN", r.text);
      assert.match(r.text, /could not be asked/);
      assert.equal(await Deno.readTextFile(kh), "");
    });

    await t.step("a client without the capability gets HOST_KEY_UNKNOWN as before", async () => {
      const kh = await knownHosts("nocap");
      await using server = await startServer({ args: ["--known-hosts", kh] });
      const r = await call(server.client, "ssh_connect", target(sshd));
      assert.equal(r.code, "HOST_KEY_UNKNOWN", r.text);
      assert.ok(r.text.includes(key.fingerprint), r.text);
      assert.doesNotMatch(r.text, /refused/);
      assert.equal(await Deno.readTextFile(kh), "");
    });

    await t.step("a changed host key is refused without a question", async () => {
      // Another server's ed25519 key listed for this host and port.
      await using other = await startSshd({ freshHostKeys: true });
      const kh = await knownHosts("changed", `[127.0.0.1]:${sshd.port} ${ed25519(other).publicKeyLine}\n`);
      const before = await Deno.readTextFile(kh);
      await using server = await askingServer(() => decide("record"), { args: ["--known-hosts", kh] });
      const r = await call(server.client, "ssh_connect", target(sshd));
      assert.equal(r.code, "HOST_KEY_MISMATCH", r.text);
      assert.equal(server.questions.length, 0);
      assert.equal(await Deno.readTextFile(kh), before);
    });

    await t.step("host_key_fingerprint: a different key is HOST_KEY_MISMATCH, known or not, unasked", async () => {
      await using other = await startSshd({ freshHostKeys: true });
      const wrong = ed25519(other).fingerprint;
      const kh = await knownHosts("expected");
      await using server = await askingServer(() => decide("once"), { args: ["--known-hosts", kh] });
      const r = await call(server.client, "ssh_connect", { ...target(sshd), host_key_fingerprint: wrong });
      assert.equal(r.code, "HOST_KEY_MISMATCH", r.text);
      assert.ok(r.text.includes(wrong) && r.text.includes(key.fingerprint), r.text);
      const trusted = await sshd.writeKnownHosts(`${dir}/trusted`);
      await using known = await askingServer(() => decide("once"), { args: ["--known-hosts", trusted] });
      const k = await call(known.client, "ssh_connect", { ...target(sshd), host_key_fingerprint: wrong });
      assert.equal(k.code, "HOST_KEY_MISMATCH", k.text);
      assert.equal(server.questions.length + known.questions.length, 0);
      const bad = await call(server.client, "ssh_connect", { ...target(sshd), host_key_fingerprint: "MD5:ab:cd" });
      assert.equal(bad.code, "INVALID_ARGUMENT", bad.text);
    });

    await t.step("host_key_fingerprint that matches an unknown key still asks, and says it matches", async () => {
      const kh = await knownHosts("matches");
      await using server = await askingServer(() => decide("refuse"), { args: ["--known-hosts", kh] });
      const r = await call(server.client, "ssh_connect", { ...target(sshd), host_key_fingerprint: key.fingerprint });
      assert.equal(r.code, "HOST_KEY_UNKNOWN", r.text);
      assert.equal(server.questions.length, 1);
      assert.match(
        server.questions[0].message,
        /passed the same fingerprint to ssh_connect; that is not a verification/,
      );
      assert.equal(await Deno.readTextFile(kh), "");
    });

    await t.step("without write permission only trust once is offered", async () => {
      // Started in / with no roots: main.ts gives up the write permission (strict, no local roots possible).
      const kh = await knownHosts("readonly");
      const args = ["--known-hosts", kh, "--log-level", "info"];
      await using server = await askingServer(() => decide("once"), { args, cwd: "/" });
      for (let i = 0; i < 200 && !/write permission dropped/.test(server.stderr()); i++) await delay(50);
      assert.match(server.stderr(), /write permission dropped/);
      await callOk(server.client, "ssh_connect", target(sshd));
      assert.deepEqual(server.questions[0].requestedSchema.properties.decision.enum, ["once", "refuse"]);
      assert.equal(await Deno.readTextFile(kh), "");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({ name: "keyboard-interactive prompts are answered by the user", ignore: skip }, async (t) => {
  // Only keyboard-interactive is accepted; through PAM it asks the account's password.
  await using sshd = await startSshd({
    extraConfig: "KbdInteractiveAuthentication yes\nAuthenticationMethods keyboard-interactive",
  });
  const password = sshd.passwordUser?.password;
  const kh = await sshd.writeKnownHosts();
  const args = ["--known-hosts", kh];
  const base = { host: sshd.host, port: sshd.port, username: sshd.user };

  await t.step("a password prompt is never put to the user: AUTH_FAILED saying to pass `password`", async () => {
    // The form would carry the account's password through the MCP client (MCP forbids secrets in form mode).
    await using server = await askingServer((q) => {
      const fields = Object.keys(q.requestedSchema.properties);
      return { action: "accept", content: Object.fromEntries(fields.map((f) => [f, password ?? "x"])) };
    }, { args });
    const r = await call(server.client, "ssh_connect", base);
    assert.equal(r.code, "AUTH_FAILED", r.text);
    assert.match(r.text, /a password is never asked for through the MCP client/);
    assert.match(r.text, /Pass `password`/);
    assert.equal(server.questions.length, 0);
  });

  await t.step("no elicitation capability: AUTH_FAILED naming keyboard-interactive", async () => {
    await using server = await startServer({ args });
    const r = await call(server.client, "ssh_connect", { ...base, private_key_path: sshd.keys.ed25519.path });
    assert.equal(r.code, "AUTH_FAILED", r.text);
    assert.match(r.text, /keyboard-interactive/);
    assert.match(r.text, /does not support elicitation/);
  });

  await t.step({
    name: "a password answers the server's password prompt without a question",
    ignore: password === undefined,
    fn: async () => {
      await using server = await askingServer(() => ({ action: "cancel" }), { args });
      const r = await callOk(server.client, "ssh_connect", { ...base, password: password! });
      assert.equal(r.structured.auth_method, "keyboard-interactive");
      assert.equal(server.questions.length, 0);
    },
  });
});

Deno.test("a one-time code prompt is put to the user, and never answered with the password", async (t) => {
  await using otp = await otpServer({ prompts: ["Verification code: "], expected: ["246810"] });
  const args = ["--known-hosts", otp.knownHosts];
  const base = { host: "127.0.0.1", port: otp.port, username: "tester" };
  const answering = (code: string) => (q: Question): ElicitResult => ({
    action: "accept",
    content: Object.fromEntries(Object.keys(q.requestedSchema.properties).map((f) => [f, code])),
  });

  await t.step("the code from the form logs in, and is in no log", async () => {
    await using server = await askingServer(answering("246810"), { args: [...args, "--log-level", "debug"] });
    const r = await callOk(server.client, "ssh_connect", base);
    assert.equal(r.structured.auth_method, "keyboard-interactive");
    assert.equal(server.questions.length, 1);
    const q = server.questions[0];
    assert.deepEqual(Object.keys(q.requestedSchema.properties), ["answer1"]);
    assert.equal(q.requestedSchema.properties.answer1.title, "Verification code:");
    assert.match(q.message, /Two-factor login/);
    assert.match(q.message, /Enter the code from your token/);
    assert.ok(!server.stderr().includes("246810"), "the code was logged");
    assert.ok(!r.text.includes("246810"), "the code is in the result");
  });

  await t.step("declined: AUTH_FAILED, no other method tried", async () => {
    await using server = await askingServer(() => ({ action: "decline" }), { args });
    const r = await call(server.client, "ssh_connect", base);
    assert.equal(r.code, "AUTH_FAILED", r.text);
    assert.match(r.text, /declined the keyboard-interactive/);
    assert.equal(server.questions.length, 1);
  });

  await t.step("a wrong code: AUTH_FAILED, the answers rejected", async () => {
    await using server = await askingServer(answering("000000"), { args });
    const r = await call(server.client, "ssh_connect", base);
    assert.equal(r.code, "AUTH_FAILED", r.text);
    assert.match(r.text, /rejected the keyboard-interactive answers/);
    assert.ok(!r.text.includes("000000"), r.text);
  });

  await t.step("no capability: the password is not sent to the code prompt; AUTH_FAILED names the prompt", async () => {
    const before = otp.answers.length;
    await using server = await startServer({ args });
    const r = await call(server.client, "ssh_connect", { ...base, password: "not-a-code" });
    assert.equal(r.code, "AUTH_FAILED", r.text);
    assert.match(r.text, /Verification code/);
    assert.match(r.text, /does not support elicitation/);
    assert.deepEqual(otp.answers.slice(before), [[""]]);
  });
});
