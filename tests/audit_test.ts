/**
 * End to end, under the shipped permission set, against a real sshd: the
 * audit log records exactly one line per tool call (failures, refusals and
 * cancellations included), keeps secrets out, verifies with `verify-audit`
 * (and points at an edited line), and fails calls closed when it cannot be
 * written.
 */

import assert from "node:assert/strict";
import { call, callOk, connectWithKey, ROOT, runArgs, serverEnv, startServer } from "./fixtures/mcp.ts";
import { sshdAvailable, startSshd } from "./fixtures/sshd.ts";
import { AuditLog } from "../lib/audit/mod.ts";
import { auditCalls, drainAuditCalls } from "../lib/tools/record.ts";
import type { SessionRegistry } from "../lib/sessions.ts";
// @ts-types="@modelcontextprotocol/sdk/types"
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
// @ts-types="@modelcontextprotocol/sdk/client/index"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="@modelcontextprotocol/sdk/client/streamableHttp"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const skip = !sshdAvailable();

// deno-lint-ignore no-explicit-any
type Line = Record<string, any>;

async function lines(path: string): Promise<Line[]> {
  const text = await Deno.readTextFile(path).catch(() => "");
  return text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
}

/** Waits until the log holds `n` lines (a cancelled call's line is written after the client gave up on it). */
async function waitLines(path: string, n: number): Promise<Line[]> {
  for (let i = 0; i < 200; i++) {
    const got = await lines(path);
    if (got.length >= n) return got;
    await new Promise((r) => setTimeout(r, 50));
  }
  return await lines(path);
}

/** `mcp-remote-ssh verify-audit FILE`, as users run it (deno run -P). */
async function verify(path: string): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: runArgs("main.ts", ["verify-audit", path]),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
}

Deno.test(
  { name: "every tool call is one audit line, secrets never written, the chain verifies", ignore: skip },
  async (t) => {
    await using sshd = await startSshd();
    const dir = await Deno.makeTempDir({ prefix: "mcp-audit-" });
    const log = `${dir}/audit.jsonl`;
    const canary = `canary-${crypto.randomUUID()}`;
    try {
      const kh = await sshd.writeKnownHosts(`${dir}/kh`);
      await using server = await startServer({ args: ["--known-hosts", kh, "--audit-log", log] });
      const c = server.client;
      let calls = 0;
      const counted = async <T>(p: Promise<T>) => {
        calls++;
        return await p;
      };

      await t.step("successes, failures and refusals each leave one line", async () => {
        const sid = await counted(connectWithKey(c, sshd));
        await counted(
          callOk(c, "ssh_execute", { session_id: sid, command: "echo hi; exit 3", stdin: "x".repeat(5000) }),
        );
        assert.equal(
          (await counted(call(c, "ssh_execute", { session_id: "s-0000000000000000", command: "true" }))).code,
          "SESSION_NOT_FOUND",
        );
        assert.equal((await counted(call(c, "ssh_execute", { session_id: sid }))).code, "INVALID_ARGUMENT");
        assert.equal((await counted(call(c, "no_such_tool", { password: canary }))).code, "INVALID_ARGUMENT");
        await counted(
          call(c, "ssh_connect", {
            host: sshd.host,
            port: sshd.port,
            username: sshd.passwordUser ?? sshd.user,
            password: canary,
          }),
        );
        await counted(call(c, "ssh_connect", {
          host: sshd.host,
          port: sshd.port,
          username: sshd.user,
          private_key_path: sshd.keys.ed25519.path,
          passphrase: canary,
        }));
        await counted(call(c, "ssh_sudo_execute", { session_id: sid, command: "true", password: canary }));
        await counted(callOk(c, "ssh_list_sessions"));
        const got = await waitLines(log, calls);
        assert.equal(got.length, calls, "not one line per call");
        const exec = got[1];
        assert.equal(exec.tool, "ssh_execute");
        assert.equal(exec.outcome, "ok");
        assert.equal(exec.exit_code, 3);
        assert.equal(exec.bytes_out, 3);
        assert.equal(exec.host, "127.0.0.1");
        assert.equal(exec.port, sshd.port);
        assert.equal(exec.user, sshd.user);
        assert.equal(exec.ssh_session, got[0].ssh_session);
        assert.equal(exec.transport_session, "stdio");
        assert.deepEqual(exec.arguments.stdin.bytes, 5000, "large data is its length and hash");
        assert.equal(got[2].code, "SESSION_NOT_FOUND");
        assert.equal(got[3].code, "INVALID_ARGUMENT");
        assert.equal(got[4].tool, "no_such_tool");
        assert.equal(got[0].tool, "ssh_connect");
        assert.equal(got[0].ssh_session, exec.ssh_session);
      });

      await t.step("a cancelled call leaves its line", async () => {
        const before = (await lines(log)).length;
        const sid = (await lines(log))[0].ssh_session;
        const ac = new AbortController();
        const pending = c.callTool(
          { name: "ssh_execute", arguments: { session_id: sid, command: "sleep 30" } },
          undefined,
          {
            signal: ac.signal,
          },
        );
        setTimeout(() => ac.abort(), 300);
        await assert.rejects(pending);
        const got = await waitLines(log, before + 1);
        assert.equal(got.length, before + 1);
        assert.equal(got.at(-1)!.code, "CANCELLED");
        // The handler may still end later (the remote sleep is killed): that must not add a second line.
        await new Promise((r) => setTimeout(r, 1000));
        assert.equal((await lines(log)).length, before + 1, "a second line for the cancelled call");
      });

      await t.step("secrets in ssh_execute's env and in a URL of its command are redacted", async () => {
        const sid = (await lines(log))[0].ssh_session;
        await counted(callOk(c, "ssh_execute", {
          session_id: sid,
          command: `true https://u:${canary}@127.0.0.1/`,
          env: { DB_PASSWORD: canary, SSHPASS: canary, DATABASE_URL: `postgres://u:${canary}@h/db` },
        }));
        const got = (await lines(log)).at(-1)!;
        assert.deepEqual(got.arguments.env, {
          DB_PASSWORD: "[redacted]",
          SSHPASS: "[redacted]",
          DATABASE_URL: "postgres://u:[redacted]@h/db",
        });
        assert.equal(got.arguments.command, "true https://u:[redacted]@127.0.0.1/");
      });

      await t.step("arguments of 11 MB are recorded by size and digest in a short line", async () => {
        const junk = Array(36000).fill("x".repeat(300));
        assert.equal((await counted(call(c, "no_such_tool", { junk }))).code, "INVALID_ARGUMENT");
        const raw = await Deno.readTextFile(log);
        const last = raw.trimEnd().split("\n").at(-1)!;
        assert.ok(last.length < 2048, `a line of ${last.length} bytes`);
        const { arguments: args } = JSON.parse(last);
        assert.deepEqual(Object.keys(args), ["bytes", "sha256", "keys"]);
        assert.ok(args.bytes > 10_000_000);
        assert.deepEqual(args.keys, ["junk"]);
        await assert.rejects(Deno.lstat(`${log}.1`), Deno.errors.NotFound, "the log rotated");
      });

      await t.step("the canary is nowhere in the file, not even hashed", async () => {
        const raw = await Deno.readTextFile(log);
        const hex = Array.from(
          new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canary))),
          (b) => b.toString(16).padStart(2, "0"),
        ).join("");
        for (const form of [canary, hex, btoa(canary)]) assert.ok(!raw.includes(form), `found ${form}`);
        assert.ok(raw.includes('"password":"[redacted]"'));
        assert.ok(raw.includes('"passphrase":"[redacted]"'));
        const mode = (await Deno.stat(log)).mode! & 0o777;
        assert.equal(mode, 0o600);
      });

      await t.step("verify-audit passes, and points at an edited line", async () => {
        const ok = await verify(log);
        assert.equal(ok.code, 0, ok.out);
        const text = await Deno.readTextFile(log);
        const all = text.split("\n");
        all[3] = all[3].replace('"outcome":"error"', '"outcome":"ok"');
        await Deno.writeTextFile(`${dir}/edited.jsonl`, all.join("\n"));
        const bad = await verify(`${dir}/edited.jsonl`);
        assert.equal(bad.code, 1, bad.out);
        assert.match(bad.out, /edited\.jsonl:4\b/);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test({ name: "an audit log that cannot be written fails calls closed, and recovers", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const dir = await Deno.makeTempDir({ prefix: "mcp-audit-closed-" });
  const logDir = `${dir}/logs`;
  const log = `${logDir}/audit.jsonl`;
  try {
    const kh = await sshd.writeKnownHosts(`${dir}/kh`);
    await using server = await startServer({ args: ["--known-hosts", kh, "--audit-log", log] });
    const c = server.client;
    // No directory yet: the log cannot be opened, so nothing runs.
    const refused = await call(c, "ssh_connect", {
      host: sshd.host,
      port: sshd.port,
      username: sshd.user,
      private_key_path: sshd.keys.ed25519.path,
    });
    assert.equal(refused.code, "AUDIT_FAILED", refused.text);
    assert.match(server.stderr(), /Audit log .*every tool call is refused/);

    // The directory appears: the next refusal is recorded, and that reopens the server.
    await Deno.mkdir(logDir);
    assert.equal((await call(c, "ssh_list_sessions")).code, "AUDIT_FAILED");
    const sid = await connectWithKey(c, sshd);
    await callOk(c, "ssh_execute", { session_id: sid, command: `touch ${dir}/ran1` });
    assert.deepEqual((await lines(log)).map((l) => l.code ?? l.outcome), ["AUDIT_FAILED", "ok", "ok"]);

    // The directory goes away mid-run: the call that ran says so, and the next one does not run.
    await Deno.remove(logDir, { recursive: true });
    const ran = await call(c, "ssh_execute", { session_id: sid, command: `touch ${dir}/ran2` });
    assert.equal(ran.code, "AUDIT_FAILED");
    assert.match(ran.text, /ran, but its audit record could not be written/);
    const next = await call(c, "ssh_execute", { session_id: sid, command: `touch ${dir}/ran3` });
    assert.equal(next.code, "AUDIT_FAILED");
    assert.match(next.text, /nothing runs unrecorded/);
    await assert.rejects(Deno.lstat(`${dir}/ran3`), Deno.errors.NotFound, "a call ran unrecorded");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({ name: "the audit line carries the approval decision and the policy refusal", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const dir = await Deno.makeTempDir({ prefix: "mcp-audit-approval-" });
  const log = `${dir}/audit.jsonl`;
  try {
    const kh = await sshd.writeKnownHosts(`${dir}/kh`);
    const config = `${dir}/config.json`;
    await Deno.writeTextFile(
      config,
      JSON.stringify({ host_policies: [{ match: "*", approval: "destructive", allow_forwards: false }] }),
    );
    await using server = await startServer({ args: ["--known-hosts", kh, "--audit-log", log, "--config", config] });
    const c = server.client;
    const sid = await connectWithKey(c, sshd);
    assert.equal((await call(c, "ssh_execute", { session_id: sid, command: "true" })).code, "APPROVAL_UNAVAILABLE");
    assert.equal((await call(c, "ssh_forward_port", { session_id: sid, direction: "dynamic" })).code, "POLICY_DENIED");
    await callOk(c, "ssh_stat_remote", { session_id: sid, remote_path: "/" });
    const got = await lines(log);
    assert.deepEqual(
      got.map((l) => [l.tool, l.code ?? l.outcome, l.approval]),
      [
        ["ssh_connect", "ok", "not_required"],
        ["ssh_execute", "APPROVAL_UNAVAILABLE", "unavailable"],
        ["ssh_forward_port", "POLICY_DENIED", undefined],
        ["ssh_stat_remote", "ok", "not_required"],
      ],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Resolves once `path` exists. */
async function appears(path: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await Deno.lstat(path).then(() => true, () => false)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${path} never appeared`);
}

for (const how of ["the client disconnects", "the server gets SIGTERM"] as const) {
  Deno.test(
    { name: `a call still running when ${how} leaves its line, and only one`, ignore: skip },
    async () => {
      await using sshd = await startSshd();
      const dir = await Deno.makeTempDir({ prefix: "mcp-audit-drain-" });
      const log = `${dir}/audit.jsonl`;
      try {
        const kh = await sshd.writeKnownHosts(`${dir}/kh`);
        // Where the remote command (the test user when run as root) may leave its marks.
        const marks = `${dir}/marks`;
        await Deno.mkdir(marks);
        await Deno.chmod(dir, 0o711);
        await Deno.chmod(marks, 0o1777);
        const server = await startServer({ args: ["--known-hosts", kh, "--audit-log", log] });
        try {
          const sid = await connectWithKey(server.client, sshd);
          const pending = server.client.callTool({
            name: "ssh_execute",
            arguments: { session_id: sid, command: `touch ${marks}/started; sleep 3; touch ${marks}/ended` },
          });
          pending.catch(() => {}); // the client goes before the answer does
          await appears(`${marks}/started`);
          if (how === "the server gets SIGTERM") Deno.kill(server.pid!, "SIGTERM");
        } finally {
          // Ends stdin and waits for the process to exit (the SDK's client kills it after 2 s + 2 s).
          await server.close();
        }
        const got = await lines(log);
        assert.deepEqual(got.map((l) => l.tool), ["ssh_connect", "ssh_execute"], "the running call left no line");
        const exec = got[1];
        assert.equal(exec.outcome, "error");
        assert.equal(typeof exec.code, "string");
        assert.match(exec.arguments.command, /sleep 3/);
        // The process is gone: nothing can add a line now, but look again all the same.
        await new Promise((r) => setTimeout(r, 1000));
        assert.equal((await lines(log)).length, 2);
        assert.equal((await verify(log)).code, 0);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  );
}

// A guard more than a proof of the drain: it passed without it too, since the HTTP server's shutdown
// (http.finished) waited for the call's open response, and so for its line.
Deno.test({ name: "over HTTP a call still running at SIGTERM leaves its line", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const dir = await Deno.makeTempDir({ prefix: "mcp-audit-http-drain-" });
  const log = `${dir}/audit.jsonl`;
  const token = `t-${crypto.randomUUID()}`;
  const home = await Deno.makeTempDir({ prefix: "mcp-home-" });
  try {
    const kh = await sshd.writeKnownHosts(`${dir}/kh`);
    const marks = `${dir}/marks`;
    await Deno.mkdir(marks);
    await Deno.chmod(dir, 0o711);
    await Deno.chmod(marks, 0o1777);
    const proc = new Deno.Command(Deno.execPath(), {
      args: runArgs("main.ts", [
        "--transport",
        "streamable-http",
        "--port",
        "0",
        "--known-hosts",
        kh,
        "--audit-log",
        log,
      ]),
      env: { ...serverEnv(home), MCP_REMOTE_SSH_TOKEN: token },
      clearEnv: true,
      cwd: ROOT,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let stderr = "";
    let url: string | undefined;
    const reader = proc.stderr.pipeThrough(new TextDecoderStream()).getReader();
    const pump = (async () => {
      for (let r = await reader.read(); !r.done; r = await reader.read()) stderr += r.value;
    })();
    try {
      for (let i = 0; i < 800 && url === undefined; i++) {
        url = stderr.match(/listening on (http:\/\/\S+)/)?.[1];
        if (url === undefined) await new Promise((r) => setTimeout(r, 25));
      }
      assert.ok(url !== undefined, `the server did not start:\n${stderr}`);
      const headers = { Authorization: `Bearer ${token}` };
      const client = new Client({ name: "audit-test", version: "0" });
      await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }));
      try {
        const sid = await connectWithKey(client, sshd);
        const pending = client.callTool({
          name: "ssh_execute",
          arguments: { session_id: sid, command: `touch ${marks}/started; sleep 3; touch ${marks}/ended` },
        });
        pending.catch(() => {});
        await appears(`${marks}/started`);
        proc.kill("SIGTERM");
        assert.equal((await proc.status).code, 0, stderr);
      } finally {
        await client.close().catch(() => {});
      }
    } finally {
      try {
        proc.kill("SIGKILL");
      } catch {
        // already gone
      }
      await proc.status;
      await pump;
    }
    const got = await lines(log);
    assert.deepEqual(got.map((l) => l.tool), ["ssh_connect", "ssh_execute"], "the running call left no line");
    assert.equal(got[1].outcome, "error");
    assert.equal((await verify(log)).code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(home, { recursive: true });
  }
});

// In process: a call that never ends cannot be made on a real server without waiting out its shutdown bound.
const noSessions = { find: () => undefined } as unknown as SessionRegistry;
const stdioExtra = { signal: new AbortController().signal };

Deno.test("drainAuditCalls() waits for a running call's own line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mcp-audit-wait-" });
  try {
    const log = await AuditLog.open({ path: `${dir}/audit.jsonl` });
    const observe = auditCalls(log, { sessions: noSessions });
    const { promise, resolve } = Promise.withResolvers<CallToolResult>();
    const call = observe({ name: "ssh_execute", args: { command: "true" }, extra: stdioExtra }, () => promise);
    const drained = drainAuditCalls(log, { timeoutMs: 60_000 });
    setTimeout(() => resolve({ content: [], structuredContent: { exit_code: 0 } }), 100);
    assert.equal(await drained, 0);
    await call;
    await log.close();
    const got = await lines(`${dir}/audit.jsonl`);
    assert.deepEqual(got.map((l) => [l.tool, l.outcome, l.exit_code, l.note]), [["ssh_execute", "ok", 0, undefined]]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("drainAuditCalls() records a call still running after its bound once, as CANCELLED", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mcp-audit-abandon-" });
  try {
    const log = await AuditLog.open({ path: `${dir}/audit.jsonl` });
    const observe = auditCalls(log, { sessions: noSessions });
    await observe({ name: "ssh_list_sessions", args: {}, extra: stdioExtra }, () => Promise.resolve({ content: [] }));
    const { promise, resolve } = Promise.withResolvers<CallToolResult>();
    const stuck = observe({ name: "ssh_execute", args: { command: "sleep 600" }, extra: stdioExtra }, () => promise);
    assert.equal(await drainAuditCalls(log, { timeoutMs: 50 }), 1);
    // It ends after all: its own line would be a second record of one call.
    resolve({ content: [], structuredContent: { exit_code: 0 } });
    await stuck;
    await log.close();
    const got = await lines(`${dir}/audit.jsonl`);
    assert.deepEqual(got.map((l) => [l.tool, l.code ?? l.outcome]), [["ssh_list_sessions", "ok"], [
      "ssh_execute",
      "CANCELLED",
    ]]);
    assert.equal(got[1].arguments.command, "sleep 600");
    assert.match(got[1].note, /still running when the server shut down/);
    assert.equal((await verify(`${dir}/audit.jsonl`)).code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
