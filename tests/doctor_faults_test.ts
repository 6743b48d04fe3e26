/**
 * `mcp-remote-ssh doctor` against servers that misbehave in ways OpenSSH
 * cannot be made to: ssh2 `Server`s in this process, each recording the
 * authentication requests it gets, while the doctor runs as users run it
 * (`deno run -P main.ts doctor`, a clean environment). What each case
 * proves: a method list or identification line cannot forge output; no
 * credential goes to a host key nobody verified; a login let in with `none`
 * is not called ok; a jump host that drops during the goodbye cannot hang
 * the doctor; a narrowed --allow-net is a finding, not a crash; the
 * ssh-agent's keys are named by fingerprint only, and only those offered; a
 * server whose signature does not match its key fails at the host key step.
 */

import assert from "node:assert/strict";
import net from "node:net";
import { Buffer } from "node:buffer";
import ssh2 from "ssh2";
import type { Diagnosis, Step } from "../lib/doctor/mod.ts";
import { fingerprintSha256 } from "../lib/ssh/known_hosts.ts";
import { call, startServer } from "./fixtures/mcp.ts";
import { type DoctorRun, runDoctor } from "./fixtures/doctor.ts";
import { run, tempDir, waitFor } from "./fixtures/process.ts";
import { inProcess } from "./fixtures/tool_list.ts";
import { freePort, sshdAvailable, startAgent } from "./fixtures/sshd.ts";

const skip = !sshdAvailable();
if (skip) console.warn("SKIP doctor fault tests: they need ssh-keygen and ssh-agent");

function parsed(run: DoctorRun): Diagnosis {
  assert.ok(!run.killed, `the doctor hung: ${run.stdout}${run.stderr}`);
  try {
    return JSON.parse(run.stdout);
  } catch {
    throw new Error(`not JSON (exit ${run.code}):\n${run.stdout}\n${run.stderr}`);
  }
}

/** The step `name` of hop `hop` (the target's when not given). */
function stepOf(diagnosis: Diagnosis, name: Step["step"], hop?: number): Step {
  const step = diagnosis.steps.findLast((s) => s.step === name && (hop === undefined || s.hop === hop));
  assert.ok(step !== undefined, `no ${name} step in ${JSON.stringify(diagnosis.steps, null, 1)}`);
  return step;
}

/** An ssh2 server on 127.0.0.1 for one case. */
interface Fault {
  port: number;
  /** The known_hosts line that trusts the key it presents, and that key's fingerprint. */
  knownHostsLine: string;
  fingerprint: string;
  /** Every authentication request it got, by method, in order. */
  auths: string[];
  /** Its raw TCP connections (to freeze or drop one). */
  sockets: net.Socket[];
  close(): Promise<void>;
}

interface FaultOptions {
  /** Decides each authentication request. */
  auth(ctx: ssh2.AuthContext, client: ssh2.Connection): void;
  /** The identification line's software part, as bytes. */
  ident?: Buffer;
  /** Signs with another key than it presents (its signature cannot verify). */
  forgedSignature?: boolean;
  /** Told when a client has logged in. */
  onReady?(): void;
  /** Relays direct-tcpip channels to 127.0.0.1 (a jump host). */
  relay?: boolean;
}

async function startFault(dir: string, name: string, options: FaultOptions): Promise<Fault> {
  const keyFile = async (file: string) => {
    const out = await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", `${dir}/${file}`]);
    assert.equal(out.code, 0, out.stderr);
    return ssh2.utils.parseKey(await Deno.readTextFile(`${dir}/${file}`)) as ssh2.ParsedKey;
  };
  const presented = await keyFile(`${name}_host`);
  let hostKey = presented;
  if (options.forgedSignature) {
    // Presents `presented`'s public key, signs with another private key.
    hostKey = await keyFile(`${name}_signer`);
    hostKey.getPublicSSH = () => presented.getPublicSSH();
  }
  const auths: string[] = [];
  const sockets: net.Socket[] = [];
  const channels: net.Socket[] = [];
  // ssh2 takes a parsed key and a Buffer ident (sent as it is); its types say neither.
  const config = { hostKeys: [{ key: hostKey }], ident: options.ident } as unknown as ssh2.ServerConfig;
  const server = new ssh2.Server(
    config,
    (client) => {
      client.on("authentication", (ctx) => {
        auths.push(ctx.method);
        options.auth(ctx, client);
      });
      client.on("ready", () => options.onReady?.());
      client.on("tcpip", (accept, reject, info) => {
        if (!options.relay) return reject();
        const upstream = net.connect(info.destPort, "127.0.0.1", () => {
          const channel = accept();
          channel.pipe(upstream).pipe(channel);
        });
        channels.push(upstream);
        upstream.on("error", () => reject());
      });
      client.on("error", () => {});
    },
  );
  const listener = net.createServer((socket) => {
    sockets.push(socket);
    socket.on("error", () => {});
    server.injectSocket(socket);
  });
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const port = (listener.address() as net.AddressInfo).port;
  const blob = presented.getPublicSSH().toString("base64");
  return {
    port,
    knownHostsLine: `[127.0.0.1]:${port} ssh-ed25519 ${blob}`,
    fingerprint: fingerprintSha256(new Uint8Array(presented.getPublicSSH())),
    auths,
    sockets,
    close: async () => {
      for (const socket of [...sockets, ...channels]) socket.destroy();
      await new Promise((resolve) => listener.close(resolve));
    },
  };
}

/** Writes a known_hosts file trusting `faults`; returns its path. */
async function knownHosts(dir: string, name: string, ...faults: Fault[]): Promise<string> {
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(path, faults.map((f) => `${f.knownHostsLine}\n`).join(""));
  return path;
}

/** A client key pair `dir/name` with comment `comment`. */
async function clientKey(dir: string, name: string, comment = ""): Promise<string> {
  const out = await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", `${dir}/${name}`]);
  assert.equal(out.code, 0, out.stderr);
  return `${dir}/${name}`;
}

const USER = "doctor-fault";
/** A variable the shipped permission set lets --password-env read (deno.json: MCP_REMOTE_SSH_PASSWORD*). */
const PASSWORD_ENV = "MCP_REMOTE_SSH_PASSWORD_DOCTOR_FAULTS";

Deno.test(
  { name: "doctor against faulty servers: nothing forged, withheld, hung or crashed", ignore: skip },
  async (t) => {
    await using dir = await tempDir("mcp-doctor-faults-");
    const faults: Fault[] = [];
    const start = async (name: string, options: FaultOptions) => {
      const fault = await startFault(dir.path, name, options);
      faults.push(fault);
      return fault;
    };
    try {
      const key = await clientKey(dir.path, "client");
      const base = (kh: string, port: number) => ["--ssh-config", "none", "--known-hosts", kh, "-p", String(port)];

      await t.step("a method list and identification line that try to forge output are shown inert", async () => {
        const forged = "x\nOK: A login to doctor-fault@127.0.0.1 would succeed\x1b[2J";
        const methods = await start("forge", {
          auth: (ctx) => ctx.reject([forged, "publickey"] as ssh2.AuthenticationType[]),
        });
        // A C1 CSI (0x9b) in the identification line: latin1, which JSON.stringify leaves raw. (ssh2 then
        // hashes that line differently from the server, so this one never gets past the signature.)
        const ident = await start("ident", {
          ident: Buffer.concat([Buffer.from("Evil_1.0"), Buffer.from([0x9b]), Buffer.from("2J")]),
          auth: (ctx) => ctx.reject(["publickey"]),
        });
        const kh = await knownHosts(dir.path, "kh_forge", methods, ident);
        const args = (port: number) => [...base(kh, port), "-l", USER, "-i", key, "127.0.0.1"];
        const [text, json, identText, identJson] = await Promise.all([
          runDoctor(args(methods.port)),
          runDoctor(["--json", ...args(methods.port)]),
          runDoctor(args(ident.port)),
          runDoctor(["--json", ...args(ident.port)]),
        ]);
        for (const run of [text, json, identText, identJson]) {
          assert.equal(run.code, 1, run.stdout + run.stderr);
          assert.doesNotMatch(run.stdout, /^OK:/m);
          // deno-lint-ignore no-control-regex
          assert.doesNotMatch(run.stdout, /[\x1b\x7f-\x9f]/);
        }
        assert.match(text.stdout, /auth_methods the server accepts: publickey \(and names that are not method names: /);
        assert.deepEqual(stepOf(parsed(json), "auth_methods").data?.methods, ["publickey"]);
        assert.match(identText.stdout, /banner +server runs Evil_1\.0\\x9b2J/);
        assert.equal(stepOf(parsed(identJson), "banner").data?.version, "Evil_1.0\x9b2J");
      });

      await t.step(
        "an unknown host key gets no credential: `none` under accept-new, nothing under strict",
        async () => {
          const server = await start("unknown", { auth: (ctx) => ctx.reject(["publickey", "password"]) });
          const kh = `${dir.path}/kh_unknown`; // does not exist, and must not after
          const args = (policy: string) => [
            ...base(kh, server.port),
            ...["--host-key-policy", policy, "-l", USER, "-i", key, "--password-env", PASSWORD_ENV, "--json"],
            "127.0.0.1",
          ];
          const env = { [PASSWORD_ENV]: "not-for-an-unknown-host" };
          const acceptNew = await runDoctor(args("accept-new"), { env });
          assert.equal(acceptNew.code, 1, acceptNew.stdout + acceptNew.stderr);
          assert.deepEqual(server.auths, ["none"], "a credential went to an unknown host key");
          const diagnosis = parsed(acceptNew);
          assert.equal(diagnosis.ok, false);
          assert.equal(stepOf(diagnosis, "host_key").status, "warn");
          assert.deepEqual(stepOf(diagnosis, "auth_methods").data?.methods, ["publickey", "password"]);
          const auth = stepOf(diagnosis, "auth");
          assert.equal(auth.status, "warn");
          const planned = `would record the key, then try key ${key}, password, keyboard-interactive`;
          assert.ok(auth.detail.endsWith(planned), auth.detail);
          assert.match(diagnosis.verdict, /was not verified: no credential was sent/);
          server.auths.length = 0;
          const strict = await runDoctor(args("strict"), { env });
          assert.equal(strict.code, 1, strict.stdout + strict.stderr);
          assert.deepEqual(server.auths, []);
          assert.equal(stepOf(parsed(strict), "host_key").status, "fail");
          await assert.rejects(Deno.lstat(kh), Deno.errors.NotFound, "the doctor wrote known_hosts");
        },
      );

      await t.step("a server that lets anyone in with `none`: never ok", async () => {
        const server = await start("none", { auth: (ctx) => ctx.accept() });
        const kh = await knownHosts(dir.path, "kh_none", server);
        const [withKey, withNothing] = await Promise.all([
          runDoctor([...base(kh, server.port), "-l", USER, "-i", key, "--json", "127.0.0.1"]),
          runDoctor([...base(kh, server.port), "-l", USER, "--json", "127.0.0.1"]),
        ]);
        assert.equal(withKey.code, 1, withKey.stdout + withKey.stderr);
        const warned = parsed(withKey);
        assert.equal(warned.ok, false);
        assert.equal(stepOf(warned, "auth").status, "warn");
        assert.match(warned.verdict, /was not verified: the server let doctor-fault in without authentication/);
        assert.equal(withNothing.code, 1, withNothing.stdout + withNothing.stderr);
        const failed = parsed(withNothing);
        assert.equal(stepOf(failed, "auth").status, "fail");
        assert.match(stepOf(failed, "auth").detail, /ssh_connect never sends none, and has nothing to offer/);
      });

      await t.step("a jump host that drops while the target says goodbye: the doctor still ends", async () => {
        const hop = await start("hop", { auth: (ctx) => ctx.accept(), relay: true });
        const target = await start("target", {
          auth: (ctx) => ctx.method === "publickey" ? ctx.accept() : ctx.reject(["publickey"]),
          // Logged in: the hop stops reading (the target's goodbye never passes), then drops 300 ms later.
          onReady: () => {
            const socket = hop.sockets.at(-1)!;
            socket.pause();
            setTimeout(() => socket.destroy(), 300);
          },
        });
        const kh = await knownHosts(dir.path, "kh_jump", hop, target);
        const result = await runDoctor([
          ...base(kh, target.port),
          ...["-l", USER, "-i", key, "--jump", `${USER}@127.0.0.1:${hop.port}`, "--json", "127.0.0.1"],
        ]);
        const diagnosis = parsed(result);
        assert.equal(stepOf(diagnosis, "auth").status, "ok", JSON.stringify(diagnosis, null, 1));
        // The hop let the doctor in with `none` and has no credential of its own: ssh_connect would stop there.
        assert.match(stepOf(diagnosis, "auth", 1).detail, /ssh_connect never sends none, and has nothing to offer/);
      });

      await t.step("a narrowed --allow-net: a finding naming it, not a crash", async () => {
        const server = await start("net", { auth: (ctx) => ctx.reject(["publickey"]) });
        const other = freePort();
        const flags = [
          "--allow-read",
          "--allow-write",
          "--allow-sys=hostname,uid",
          "--allow-env=HOME,USERPROFILE,SSH_AUTH_SOCK,USER,LOGNAME,USERNAME,MCP_REMOTE_SSH_TOKEN,MCP_REMOTE_SSH_PASSWORD*",
          `--allow-net=localhost:${server.port}`,
        ];
        const kh = await knownHosts(dir.path, "kh_net", server);
        const [allowed, refused] = await Promise.all([
          runDoctor([...base(kh, server.port), "-l", USER, "-i", key, "--json", "localhost"], { flags }),
          runDoctor([...base(kh, other), "-l", USER, "-i", key, "--json", "localhost"], { flags }),
        ]);
        assert.equal(allowed.code, 1, allowed.stdout + allowed.stderr);
        const reached = parsed(allowed);
        assert.equal(stepOf(reached, "dns").status, "skip");
        assert.match(stepOf(reached, "dns").detail, /--allow-net names localhost only with its port/);
        assert.equal(stepOf(reached, "tcp").status, "ok");
        assert.equal(refused.code, 1, refused.stdout + refused.stderr);
        const dns = stepOf(parsed(refused), "dns");
        assert.equal(dns.status, "fail");
        assert.equal(dns.data?.code, "HOST_NOT_ALLOWED");
        assert.match(dns.detail, new RegExp(`localhost:${other} is outside .*--allow-net`));
      });

      await t.step("the ssh-agent's keys: fingerprints only, the untried ones counted, no comment", async () => {
        const tries = new Map<ssh2.Connection, number>();
        const server = await start("agent", {
          // Refuses the first key, then hangs up, as sshd does at MaxAuthTries.
          auth: (ctx, client) => {
            if (ctx.method !== "publickey") return ctx.reject(["publickey"]);
            tries.set(client, (tries.get(client) ?? 0) + 1);
            if (tries.get(client)! > 1) return client.end();
            ctx.reject(["publickey"]);
          },
        });
        const comment = "someone.private@laptop.example";
        const keys = await Promise.all(
          [1, 2, 3].map((i) => clientKey(dir.path, `agent${i}`, `${comment}-${i}`)),
        );
        await using agent = await startAgent(keys);
        const kh = await knownHosts(dir.path, "kh_agent", server);
        const args = [...base(kh, server.port), "-l", USER, "127.0.0.1"];
        const env = { SSH_AUTH_SOCK: agent.socket };
        const [text, json] = await Promise.all([runDoctor(args, { env }), runDoctor(["--json", ...args], { env })]);
        assert.ok(!(text.stdout + json.stdout).includes(comment), "a key comment reached the output");
        const auth = stepOf(parsed(json), "auth");
        const attempts = (auth.data?.attempts ?? []) as {
          method: string;
          key?: string;
          result: string;
          more?: number;
        }[];
        assert.deepEqual(attempts.map((a) => `${a.method} ${a.result} ${a.more ?? "-"}`), [
          "agent refused -",
          "agent unanswered -",
          "agent not tried 1",
          "password not given -",
        ]);
        assert.match(attempts[0].key ?? "", /^ssh-ed25519 SHA256:\S+$/);
        assert.match(text.stdout, /- 1 ssh-agent key: not tried/);
      });

      await t.step("a signature that does not match the host key: the host key step fails", async () => {
        const server = await start("forged", { forgedSignature: true, auth: (ctx) => ctx.reject(["publickey"]) });
        const kh = await knownHosts(dir.path, "kh_sig", server);
        const result = await runDoctor([...base(kh, server.port), "-l", USER, "-i", key, "--json", "127.0.0.1"]);
        assert.equal(result.code, 1, result.stdout + result.stderr);
        const diagnosis = parsed(result);
        const failed = diagnosis.steps.filter((s) => s.status === "fail");
        assert.deepEqual(failed.map((s) => s.step), ["host_key"], JSON.stringify(diagnosis, null, 1));
        assert.match(failed[0].detail, /signature with that key did not verify/);
        assert.deepEqual(server.auths, []);
      });
    } finally {
      await Promise.all(faults.map((f) => f.close()));
    }
  },
);

Deno.test({
  name: "ssh_diagnose: two at a time, ssh_connect's checks, not read-only, audited with where it went",
  ignore: skip,
}, async (t) => {
  await using dir = await tempDir("mcp-diagnose-");
  // Holds every `none` until released: each diagnosis stays connected meanwhile.
  const held: ssh2.AuthContext[] = [];
  let holding = true;
  const server = await startFault(dir.path, "held", {
    auth: (ctx) => holding && ctx.method === "none" ? held.push(ctx) : ctx.reject(["publickey"]),
  });
  const silent = net.createServer((socket) => socket.on("error", () => {}));
  const silentSockets: net.Socket[] = [];
  silent.on("connection", (socket) => silentSockets.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  try {
    const kh = await knownHosts(dir.path, "kh", server);
    const key = await clientKey(dir.path, "client");
    const args = { host: "127.0.0.1", port: server.port, username: USER, private_key_path: key };

    await t.step("a third diagnosis while two log in: SESSION_LIMIT, nothing sent", async () => {
      await using mcp = await inProcess(["--known-hosts", kh, "--ssh-config", "none"]);
      const calls = [1, 2, 3].map(() => call(mcp.client, "ssh_diagnose", args));
      const first = await Promise.race(calls);
      assert.equal(first.code, "SESSION_LIMIT", first.text);
      await waitFor(() => held.length === 2, "two diagnoses waiting at `none`");
      holding = false;
      for (const ctx of held) ctx.reject(["publickey"]);
      const results = await Promise.all(calls);
      assert.deepEqual(results.map((r) => r.code ?? "ok").sort(), ["SESSION_LIMIT", "ok", "ok"]);
      assert.deepEqual(server.auths.filter((m) => m === "none").length, 2);
    });

    await t.step("under -P: fingerprint and connect_timeout as ssh_connect's, annotations, audit lines", async () => {
      const log = `${dir.path}/audit.jsonl`;
      await using mcp = await startServer({ args: ["--known-hosts", kh, "--ssh-config", "none", "--audit-log", log] });
      const listed = (await mcp.client.listTools()).tools.find((tool) => tool.name === "ssh_diagnose");
      assert.equal(listed?.annotations?.readOnlyHint, false);
      assert.equal(listed?.annotations?.idempotentHint, false);
      const wrong = `SHA256:${"A".repeat(43)}`;
      const mismatch = await call(mcp.client, "ssh_diagnose", { ...args, host_key_fingerprint: wrong });
      assert.equal(mismatch.structured.ok, false, mismatch.text);
      const failed = mismatch.structured.steps.find((s: Step) => s.status === "fail");
      assert.equal(failed?.step, "host_key");
      const expected = `presented ssh-ed25519 ${server.fingerprint}, expected ${wrong}`;
      assert.ok(failed?.detail.includes(expected), failed?.detail);
      const right = await call(mcp.client, "ssh_diagnose", { ...args, host_key_fingerprint: server.fingerprint });
      const hostKey = right.structured.steps.findLast((s: Step) => s.step === "host_key");
      assert.equal(hostKey?.status, "ok", right.text);
      const silentPort = (silent.address() as net.AddressInfo).port;
      const quiet = await call(mcp.client, "ssh_diagnose", { ...args, port: silentPort, connect_timeout: 2 });
      const banner = quiet.structured.steps.find((s: Step) => s.status === "fail");
      assert.equal(banner?.step, "banner", quiet.text);
      assert.match(banner?.detail ?? "", /no SSH banner within 2 s/);
      // Each line is written before its call's result goes out.
      const lines = (await Deno.readTextFile(log)).split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
      const diagnoses = lines.filter((l) => l.tool === "ssh_diagnose");
      assert.equal(diagnoses.length, 3);
      assert.deepEqual(
        diagnoses.map((l) => `${l.host} ${l.port} ${l.user}`),
        [server.port, server.port, silentPort].map((port) => `127.0.0.1 ${port} ${USER}`),
      );
    });
  } finally {
    for (const socket of silentSockets) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
    await server.close();
  }
});
