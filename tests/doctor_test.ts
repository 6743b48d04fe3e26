/**
 * `mcp-remote-ssh doctor` and the ssh_diagnose tool against real sshd's:
 * each case names the step that fails, its status and its fix, and the exit
 * status. The doctor runs as users run it (`deno run -P main.ts doctor`),
 * with a clean environment (its own empty HOME, no agent unless a case gives
 * one). Two sshd's serve every case: A (MaxAuthTries 2) is the host, B a
 * second host whose keys A does not know (a changed host key, refused agent
 * keys, the broken inner hop of a jump chain). The cases run concurrently;
 * each step awaits its own.
 */

import assert from "node:assert/strict";
import type { Diagnosis, Step } from "../lib/doctor/mod.ts";
import { callOk, startServer } from "./fixtures/mcp.ts";
import { type DoctorRun, runDoctor } from "./fixtures/doctor.ts";
import { randomHex, run, tempDir } from "./fixtures/process.ts";
import { type Agent, freePort, type Sshd, sshdAvailable, startAgent, startSshd } from "./fixtures/sshd.ts";

/** A variable the shipped permission set lets --password-env read (deno.json: MCP_REMOTE_SSH_PASSWORD*). */
const PASSWORD_ENV = "MCP_REMOTE_SSH_PASSWORD_DOCTOR_TEST";

const skip = !sshdAvailable();
if (skip) console.warn("SKIP doctor tests: they need sshd and ssh-keygen");

/** A client key pair no fixture sshd authorises: `dir/name` and `dir/name.pub`. */
async function freshKey(dir: string, name: string): Promise<string> {
  const out = await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", `${dir}/${name}`]);
  assert.equal(out.code, 0, out.stderr);
  return `${dir}/${name}`;
}

/** The parsed --json output. */
function parsed(run: DoctorRun): Diagnosis {
  return JSON.parse(run.stdout);
}

/** The step `name` of the target (the last one of that name). */
function stepOf(diagnosis: Diagnosis, name: Step["step"]): Step {
  const step = diagnosis.steps.findLast((s) => s.step === name);
  assert.ok(step !== undefined, `no ${name} step in ${JSON.stringify(diagnosis.steps)}`);
  return step;
}

/** The first failing step. */
function failure(diagnosis: Diagnosis): Step {
  const step = diagnosis.steps.find((s) => s.status === "fail");
  assert.ok(step !== undefined, `no failing step: ${JSON.stringify(diagnosis, null, 1)}`);
  return step;
}

/** The credentials the auth step lists, as `method key result`. */
function attempts(step: Step): string[] {
  const listed = (step.data?.attempts ?? []) as { method: string; key?: string; result: string }[];
  return listed.map((a) => `${a.method} ${a.key ?? "-"} ${a.result}`);
}

/** Steps as `step status host` lines: what the CLI and the tool must agree on. */
function shape(diagnosis: Diagnosis): string[] {
  return diagnosis.steps.map((s) => `${s.step} ${s.status} ${s.hop ?? ""} ${s.host ?? ""}`);
}

Deno.test({ name: "doctor walks a connect and names the failing step with its fix", ignore: skip }, async (t) => {
  // b has host keys of its own (a's key at b's address is a changed key) and, below, an authorized_keys
  // without the run's client keys (an inner hop that refuses a's key); the run's keys are shared otherwise.
  const [a, b] = await Promise.all([startSshd({ maxAuthTries: 2 }), startSshd({ freshHostKeys: true })]);
  await using dir = await tempDir("mcp-doctor-");
  const [stranger1, stranger2] = await Promise.all([freshKey(dir.path, "stranger1"), freshKey(dir.path, "stranger2")]);
  await Deno.writeTextFile(`${b.dir}/authorized_keys`, await Deno.readTextFile(`${stranger1}.pub`));
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  let agent: Agent | undefined;
  let accepting: Promise<void> = Promise.resolve();
  let runs: Record<string, Promise<DoctorRun> | null> = {};
  try {
    // A known_hosts file that trusts both servers, and one where A's key has changed (B's is there).
    const known = `${dir.path}/known_hosts`;
    await Deno.writeTextFile(
      known,
      await Deno.readTextFile(await a.writeKnownHosts()) + await Deno.readTextFile(await b.writeKnownHosts()),
    );
    const changed = `${dir.path}/known_hosts_changed`;
    await Deno.writeTextFile(changed, `[127.0.0.1]:${a.port} ${b.hostKeys[0].publicKeyLine}\n`);
    const unknown = `${dir.path}/known_hosts_new`; // does not exist, and must not after
    // The silent port: accepts and never says a word.
    const silentPort = (listener.addr as Deno.NetAddr).port;
    accepting = (async () => {
      try {
        for await (const conn of listener) held.push(conn);
      } catch (error) {
        if (!(error instanceof Deno.errors.BadResource)) throw error;
      }
    })();
    // Four keys A refuses, then A's own: MaxAuthTries 2 ends the login after two of them.
    agent = await startAgent([stranger1, stranger2, a.keys.unauthorized.path, a.keys.ed25519.path]);
    // Hosts of a jump chain: a, then b (which refuses A's key), then a again as the target.
    const sshConfig = `${dir.path}/ssh_config`;
    const entry = (name: string, s: Sshd) =>
      `Host ${name}\n  HostName 127.0.0.1\n  Port ${s.port}\n  User ${s.user}\n  IdentityFile ${a.keys.ed25519.path}\n` +
      "  IdentitiesOnly yes\n";
    await Deno.writeTextFile(sshConfig, entry("hop-a", a) + entry("hop-b", b), { mode: 0o600 });
    const canary = `canary-${randomHex(8)}`;

    const base = ["--ssh-config", "none", "--known-hosts", known, "-p", String(a.port), "-l", a.user];
    const cases = {
      good: runDoctor([...base, "-i", a.keys.ed25519.path, "127.0.0.1"]),
      goodJson: runDoctor([...base, "-i", a.keys.ed25519.path, "--json", "127.0.0.1"]),
      unknown: runDoctor([
        ...["--ssh-config", "none", "--known-hosts", unknown, "-p", String(a.port), "-l", a.user],
        ...["-i", a.keys.ed25519.path, "--json", "127.0.0.1"],
      ]),
      acceptNew: runDoctor([
        ...["--ssh-config", "none", "--known-hosts", unknown, "--host-key-policy", "accept-new"],
        ...["-p", String(a.port), "-l", a.user, "-i", a.keys.ed25519.path, "--json", "127.0.0.1"],
      ]),
      changed: runDoctor([
        ...["--ssh-config", "none", "--known-hosts", changed, "-p", String(a.port), "-l", a.user],
        ...["-i", a.keys.ed25519.path, "--json", "127.0.0.1"],
      ]),
      closed: runDoctor([...base, "-p", String(freePort()), "--json", "127.0.0.1"]),
      silent: runDoctor([...base, "-p", String(silentPort), "--timeout", "2", "--json", "127.0.0.1"]),
      wrongPassword: a.passwordUser === null ? null : runDoctor(
        [...base.slice(0, 6), "-l", a.passwordUser.name, "--password-env", PASSWORD_ENV, "--json", "127.0.0.1"],
        { env: { [PASSWORD_ENV]: `wrong-${canary}` } },
      ),
      // Set, but outside what the shipped set may read: refused before anything connects.
      passwordOutside: runDoctor([...base.slice(0, 6), "--password-env", "DOCTOR_PW", "--json", "127.0.0.1"], {
        env: { DOCTOR_PW: `outside-${canary}` },
      }),
      unauthorized: runDoctor([...base, "-i", a.keys.unauthorized.path, "--json", "127.0.0.1"]),
      tooMany: runDoctor([...base, "--json", "127.0.0.1"], { env: { SSH_AUTH_SOCK: agent.socket } }),
      jump: runDoctor(["--ssh-config", sshConfig, "--known-hosts", known, "--jump", "hop-a,hop-b", "--json", "hop-a"]),
    };
    runs = cases;

    await t.step("a good host: every step ok, exit 0, the login closed without a channel", async () => {
      const run = await cases.good;
      assert.equal(run.code, 0, run.stdout + run.stderr);
      assert.match(run.stdout, /^OK: A login to .* would succeed/m);
      assert.doesNotMatch(run.stdout, /FAIL|warn/);
      for (const step of ["dns", "tcp", "banner", "algorithms", "host_key", "auth_methods", "auth"]) {
        assert.match(run.stdout, new RegExp(`^  ok +${step} `, "m"), run.stdout);
      }
      const json = parsed(await cases.goodJson);
      assert.equal(json.ok, true);
      assert.deepEqual(json.steps.filter((s) => s.status !== "ok"), []);
      const hostKey = stepOf(json, "host_key").detail;
      assert.ok(hostKey.includes(`${a.hostKeys[0].fingerprint}, known: ${known} line 1`), hostKey);
      assert.match(stepOf(json, "auth_methods").detail, /publickey/);
      assert.equal(stepOf(json, "auth").detail, `logged in as ${a.user} with key ${a.keys.ed25519.path}`);
      assert.match(stepOf(json, "algorithms").detail, /^kex \S+, host key ssh-ed25519, cipher chacha20-poly1305/);
    });

    await t.step("an unknown host key: the line to add and the fingerprint, known_hosts not written", async () => {
      const run = await cases.unknown;
      assert.equal(run.code, 1, run.stdout + run.stderr);
      const json = parsed(run);
      const step = failure(json);
      assert.equal(step.step, "host_key");
      assert.ok(step.detail.includes(`${a.hostKeys[0].fingerprint} is not in known_hosts`), step.detail);
      assert.ok(step.fix?.includes(`[127.0.0.1]:${a.port} ${a.hostKeys[0].publicKeyLine}`), step.fix);
      assert.ok(step.fix?.includes(`ssh-keyscan -p ${a.port} -t ed25519 127.0.0.1 | ssh-keygen -lf -`), step.fix);
      assert.deepEqual(
        json.steps.filter((s) => s.host !== undefined).slice(5).map((s) => s.status),
        ["skip", "skip"],
        "no credential is offered to an unknown host",
      );
      // accept-new: the methods are heard (`none`), but no credential goes to a key nobody verified.
      const accept = await cases.acceptNew;
      assert.equal(accept.code, 1, accept.stdout + accept.stderr);
      const unverified = parsed(accept);
      assert.equal(unverified.ok, false);
      const warned = stepOf(unverified, "host_key");
      assert.equal(warned.status, "warn");
      assert.match(
        warned.detail,
        /would record it in .* \(accept-new\).*the doctor wrote nothing and sent it no credential/,
      );
      assert.equal(stepOf(unverified, "auth_methods").status, "ok");
      const auth = stepOf(unverified, "auth");
      assert.equal(auth.status, "warn");
      assert.ok(auth.detail.endsWith(`would record the key, then try key ${a.keys.ed25519.path}`), auth.detail);
      assert.match(unverified.verdict, /was not verified: no credential was sent/);
      await assert.rejects(Deno.lstat(unknown), Deno.errors.NotFound, "the doctor wrote known_hosts");
    });

    await t.step("a changed host key: both fingerprints and the line holding the old one", async () => {
      const before = await Deno.readTextFile(changed);
      const run = await cases.changed;
      assert.equal(run.code, 1, run.stdout + run.stderr);
      const step = failure(parsed(run));
      assert.equal(step.step, "host_key");
      assert.match(step.detail, /^CHANGED/);
      assert.ok(step.detail.includes(a.hostKeys[0].fingerprint), step.detail);
      assert.ok(step.detail.includes(`${b.hostKeys[0].fingerprint} (${changed} line 1)`), step.detail);
      assert.match(step.fix ?? "", /man in the middle.*ssh-keygen -R/);
      assert.equal(await Deno.readTextFile(changed), before);
    });

    await t.step("a closed port: tcp fails, connection refused", async () => {
      const run = await cases.closed;
      assert.equal(run.code, 1);
      const step = failure(parsed(run));
      assert.equal(step.step, "tcp");
      assert.match(step.detail, /connection refused/);
      assert.match(step.fix ?? "", /port/);
    });

    await t.step("a silent port: the banner step fails, no banner within the timeout", async () => {
      const run = await cases.silent;
      assert.equal(run.code, 1);
      const json = parsed(run);
      assert.equal(stepOf(json, "tcp").status, "ok");
      const step = failure(json);
      assert.equal(step.step, "banner");
      assert.match(step.detail, /no SSH banner within 2 s/);
      assert.match(step.fix ?? "", /Check the port/);
    });

    await t.step({
      name: "a wrong password (from an environment variable): refused, never printed",
      ignore: cases.wrongPassword === null,
      fn: async () => {
        const run = (await cases.wrongPassword)!;
        assert.equal(run.code, 1, run.stdout + run.stderr);
        const step = failure(parsed(run));
        assert.equal(step.step, "auth");
        // Keyboard-interactive would answer a password prompt; this sshd does not take it.
        assert.deepEqual(attempts(step), ["password - refused", "keyboard-interactive - skipped"]);
        assert.doesNotMatch(step.fix ?? "", /keyboard/);
        assert.match(step.fix ?? "", /Check the password/);
        assert.ok(!(run.stdout + run.stderr).includes(canary), "the password was printed");
      },
    });

    await t.step("--password-env outside MCP_REMOTE_SSH_PASSWORD*: usage error naming the prefix", async () => {
      const run = await cases.passwordOutside;
      assert.equal(run.code, 2, run.stdout + run.stderr);
      assert.match(run.stderr, /DOCTOR_PW: this process may not read that variable.*MCP_REMOTE_SSH_PASSWORD/);
      assert.ok(!(run.stdout + run.stderr).includes(canary), "the password was printed");
    });

    await t.step("a key the server does not authorise: refused, the fix names authorized_keys", async () => {
      const run = await cases.unauthorized;
      assert.equal(run.code, 1);
      const json = parsed(run);
      assert.equal(stepOf(json, "auth_methods").status, "ok");
      const step = failure(json);
      assert.equal(step.step, "auth");
      assert.deepEqual(attempts(step), [`publickey ${a.keys.unauthorized.path} refused`, "password - not given"]);
      assert.match(step.fix ?? "", /authorized_keys/);
    });

    await t.step("an agent with more keys than MaxAuthTries: explained, with IdentitiesOnly as the fix", async () => {
      const run = await cases.tooMany;
      assert.equal(run.code, 1, run.stdout + run.stderr);
      const step = failure(parsed(run));
      assert.equal(step.step, "auth");
      assert.match(step.detail, /closed the connection after 1 refused attempt .*MaxAuthTries/);
      // The agent's keys one by one, by type and fingerprint: refused, cut off by the disconnect; the two never
      // offered are one line with their count.
      assert.deepEqual(attempts(step).map((a) => a.replace(/ \S+ SHA256:\S+ /, " ")), [
        "agent refused",
        "agent unanswered",
        "agent - not tried",
        "password - not given",
      ]);
      assert.match(step.fix ?? "", /IdentitiesOnly yes.*IdentityFile.*ssh-add/);
    });

    await t.step("a jump chain with a broken inner hop: that hop is named, the target not reached", async () => {
      const run = await cases.jump;
      assert.equal(run.code, 1, run.stdout + run.stderr);
      const json = parsed(run);
      const hopA = `${a.user}@127.0.0.1:${a.port}`;
      const hopB = `${b.user}@127.0.0.1:${b.port}`;
      // a, then b, then a again as the target.
      assert.deepEqual([1, 2, 3].map((hop) => json.steps.find((s) => s.hop === hop)?.host), [hopA, hopB, hopA]);
      assert.deepEqual(json.steps.filter((s) => s.hop === 1 && s.status !== "ok").map((s) => s.step), []);
      const step = failure(json);
      assert.equal(step.hop, 2);
      assert.equal(step.step, "auth");
      assert.ok(json.verdict.includes(`fails at auth of jump host ${hopB}`), json.verdict);
      assert.ok(json.steps.find((s) => s.hop === 2 && s.step === "tcp")?.detail.includes(`through ${hopA}`));
      const target = json.steps.filter((s) => s.hop === 3);
      assert.equal(target.length, 7);
      assert.ok(target.every((s) => s.status === "skip" && /not reached/.test(s.detail)), JSON.stringify(target));
      const lines = stepOf(json, "ssh_config").data?.lines as string[];
      assert.ok(lines.some((l) => l.startsWith("hop-b: ") && l.endsWith("IdentitiesOnly yes")), lines.join("\n"));
    });

    await t.step("ssh_diagnose through MCP returns the doctor's steps; no secret in any output", async () => {
      await using server = await startServer({ args: ["--known-hosts", known, "--ssh-config", "none"] });
      const args = { host: "127.0.0.1", port: a.port, username: a.user };
      const good = await callOk(server.client, "ssh_diagnose", { ...args, private_key_path: a.keys.ed25519.path });
      assert.equal(good.structured.ok, true);
      assert.deepEqual(shape(good.structured), shape(parsed(await cases.goodJson)));
      assert.match(good.text, /^OK: /m);
      const bad = await callOk(server.client, "ssh_diagnose", { ...args, private_key_path: a.keys.unauthorized.path });
      assert.equal(bad.structured.ok, false);
      assert.deepEqual(shape(bad.structured), shape(parsed(await cases.unauthorized)));
      assert.match(bad.text, /FAIL +auth /);
      // A password and a wrong passphrase: neither appears anywhere.
      const secret = await callOk(server.client, "ssh_diagnose", {
        ...args,
        username: a.passwordUser?.name ?? a.user,
        private_key_path: a.keys.passphrase.path,
        passphrase: `pp-${canary}`,
        password: `pw-${canary}`,
      });
      assert.equal(secret.structured.ok, false);
      assert.match(secret.text, /nothing to offer/);
      const everything = secret.text + JSON.stringify(secret.structured) + good.text + bad.text + server.stderr();
      assert.ok(!everything.includes(canary), "a secret reached an output");
    });

    await t.step("ssh_diagnose to a host outside allowed_hosts: refused by policy, nothing sent", async () => {
      const connections = () => a.logs().split("\n").filter((l) => l.includes("Connection from")).length;
      const before = connections();
      assert.ok(before > 0, "sshd logs each connection (the cases before connected)");
      await using server = await startServer({
        args: ["--known-hosts", known, "--ssh-config", "none", "--allow-host", "10.0.0.0/8"],
      });
      const r = await callOk(server.client, "ssh_diagnose", {
        host: "127.0.0.1",
        port: a.port,
        username: a.user,
        private_key_path: a.keys.ed25519.path,
      });
      assert.equal(r.structured.ok, false);
      const step = failure(r.structured);
      assert.equal(step.step, "allowed_hosts");
      assert.match(step.fix ?? "", /Nothing was sent/);
      assert.equal(connections(), before);
    });

    await t.step("no channel was opened on the host: no session started", () => {
      assert.match(a.logs(), /Accepted publickey for /);
      assert.doesNotMatch(a.logs() + b.logs(), /Starting session/);
    });
  } finally {
    // Every doctor ends before its hosts do, whichever step failed.
    await Promise.allSettled(Object.values(runs));
    listener.close();
    await accepting;
    for (const conn of held) conn.close();
    await agent?.stop();
    await Promise.all([a.stop(), b.stop()]);
  }
});
