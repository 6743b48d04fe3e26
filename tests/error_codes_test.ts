/**
 * A walk over every {@linkcode ErrorCode}: each one is reachable and reaches the agent with a
 * hint. Most are triggered here for real, through the server started with the shipped
 * permission set (`deno run -P`) and driven by the SDK client, with and without a real sshd;
 * the rest need an elaborate fault (a tamper proxy, a full disk, a frozen peer, a raced file)
 * that another test stages already: for those the walk names that test and checks that it
 * exists and asserts the code. Every code is in exactly one of the two tables.
 *
 * DNS_FAILED is proven without DNS traffic: the server runs in a network namespace of its own
 * (`unshare -n`) that has no route to the machine's resolver, so the lookup fails at once and
 * nothing leaves the namespace.
 *
 * @module
 */

import assert from "node:assert/strict";
// @ts-types="@modelcontextprotocol/sdk/client/index"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="@modelcontextprotocol/sdk/client/stdio"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { DEFAULT_HINTS, type ErrorCode, SshMcpError, toToolResult } from "../lib/errors.ts";
import { execCommand } from "../lib/ssh/exec.ts";
import { callOk, connectWithKey, ROOT, runArgs, serverEnv, startServer } from "./fixtures/mcp.ts";
import { startInProcessServer } from "./fixtures/in_process.ts";
import { findInPath } from "./fixtures/process.ts";
import { openConnection, type Sshd, sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const ALL_CODES = Object.keys(DEFAULT_HINTS) as ErrorCode[];

/** A test elsewhere that stages the fault and asserts the code. */
interface Elsewhere {
  file: string;
  /** The `Deno.test` or `t.step` name (or its literal start) that asserts the code. */
  name: string;
}

/** Codes whose trigger is an elaborate fault another test stages already. */
const ELSEWHERE: Partial<Record<ErrorCode, Elsewhere>> = {
  SSH_CONFIG_REFUSED: {
    file: "tests/ssh_config_test.ts",
    name: "ProxyCommand is refused with its file and line, and only for its host",
  },
  SSH_CONFIG_INVALID: { file: "tests/ssh_config_test.ts", name: "a group-writable config is refused like ssh does" },
  INTEGRITY_FAILED: { file: "tests/integrity_test.ts", name: "a bit flipped on an established session" },
  CONNECTION_LOST: { file: "tests/faults_test.ts", name: "a frozen peer is reported lost by keepalive" },
  CHANNEL_OPEN_FAILED: {
    file: "tests/channel_slots_test.ts",
    name: "a channel the server refuses gives its slot back",
  },
  EXEC_UNSUPPORTED: { file: "tests/remote_probe_test.ts", name: "a sudo password is never sent to a forced command" },
  SUDO_PASSWORD_WRONG: { file: "tests/sudo_test.ts", name: "a wrong password is SUDO_PASSWORD_WRONG" },
  SUDO_NOT_ALLOWED: { file: "tests/sudo_test.ts", name: "an account not in sudoers is SUDO_NOT_ALLOWED" },
  SUDO_PASSWORD_REQUIRED: { file: "tests/sudo_test.ts", name: "no password where sudo needs one" },
  SHELL_CLOSED: { file: "tests/shell_test.ts", name: "Ctrl+D ends a shell with its exit status" },
  SFTP_UNAVAILABLE: { file: "tests/files_test.ts", name: "a server without an sftp subsystem gives SFTP_UNAVAILABLE" },
  SFTP_LOGIN_OUTPUT: { file: "tests/sftp_noise_test.ts", name: "login output before SFTP gives SFTP_LOGIN_OUTPUT" },
  SFTP_PERMISSION_DENIED: { file: "tests/files_test.ts", name: "permission denied is a clear error" },
  SFTP_TIMEOUT: { file: "tests/deadlines_test.ts", name: "file calls and shell opens, which have no timeout" },
  SFTP_CHANNEL_RESET: { file: "lib/ssh/sftp_request_test.ts", name: "a request the server never answers fails" },
  FILE_EXISTS: { file: "tests/files_test.ts", name: "create refuses to clobber" },
  NOT_A_REGULAR_FILE: { file: "tests/special_files_test.ts", name: "remote FIFOs and devices are refused" },
  BINARY_FILE: { file: "tests/files_test.ts", name: "binary can be refused" },
  EDIT_NO_MATCH: { file: "tests/files_test.ts", name: "edits need an exact, unique match" },
  EDIT_AMBIGUOUS: { file: "tests/files_test.ts", name: "edits need an exact, unique match" },
  PRECONDITION_FAILED: { file: "tests/files_test.ts", name: "edits need an exact, unique match" },
  REMOTE_DISK_FULL: { file: "tests/transfer_faults_test.ts", name: "a full disk on either side is a coded error" },
  LOCAL_DISK_FULL: { file: "tests/transfer_faults_test.ts", name: "a full disk on either side is a coded error" },
  FORWARD_REFUSED: { file: "tests/forward_refused_test.ts", name: "fails with FORWARD_REFUSED and frees its port" },
  FORWARD_LIMIT: { file: "tests/forward_test.ts", name: "forward requests that are not allowed are refused clearly" },
  BIND_FAILED: { file: "tests/forward_test.ts", name: "forward requests that are not allowed are refused clearly" },
  INTERNAL: { file: "lib/tools/dispatch_test.ts", name: "ToolServer codes argument errors, naming the field" },
  HOST_NOT_ALLOWED: {
    file: "tests/guardrails_test.ts",
    name: "another port, another spelling of an address, an alias",
  },
  POLICY_DENIED: { file: "tests/guardrails_test.ts", name: "a read-only host refuses every tool that could change it" },
  APPROVAL_DECLINED: { file: "tests/guardrails_test.ts", name: "decline and cancel refuse with APPROVAL_DECLINED" },
  AUDIT_FAILED: { file: "tests/audit_test.ts", name: "an audit log that cannot be written fails calls closed" },
  APPROVAL_UNAVAILABLE: {
    file: "tests/guardrails_test.ts",
    name: "approval fails closed for a client that cannot elicit",
  },
};

/** A coded tool error as the client sees it. */
interface Coded {
  code: string | undefined;
  hint: string | undefined;
  text: string;
}

async function failing(client: Client, name: string, args: Record<string, unknown>): Promise<Coded> {
  const r = await client.callTool({ name, arguments: args });
  const text = (r.content as { text?: string }[]).map((c) => c.text ?? "").join("\n");
  assert.equal(r.isError, true, `${name} did not fail: ${text.slice(0, 500)}`);
  const meta = r._meta as { code?: string; hint?: string } | undefined;
  return { code: meta?.code, hint: meta?.hint, text };
}

/** Asserts the code, and that the hint is in `_meta` and in the text. */
function assertCoded(r: Coded, code: ErrorCode): void {
  assert.equal(r.code, code, r.text);
  assert.ok(r.hint !== undefined && r.hint.length > 0, `${code} came without a hint: ${r.text}`);
  assert.ok(r.text.startsWith(`[${code}] `), r.text);
  assert.ok(r.text.endsWith(`\nHint: ${r.hint}`), r.text);
}

/** What a live trigger gets. */
interface Ctx {
  client: Client;
  sshd: Sshd;
  /** A session on `sshd` by key. */
  sid: string;
  dir: string;
}

type Trigger = (ctx: Ctx) => Promise<Coded>;

/** Codes triggered here against the server, no sshd needed (a listener or nothing on loopback). */
const WITHOUT_SSHD: Partial<Record<ErrorCode, (client: Client, dir: string) => Promise<Coded>>> = {
  INVALID_ARGUMENT: (c) => failing(c, "ssh_connect", { host: "127.0.0.1", port: 65536, username: "u" }),
  SESSION_NOT_FOUND: (c) => failing(c, "ssh_execute", { session_id: "no-such-session", command: "true" }),
  CONNECT_REFUSED: async (c) => {
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = probe.addr.port;
    probe.close();
    return await failing(c, "ssh_connect", { host: "127.0.0.1", port, username: "u", password: "p" });
  },
  CONNECT_TIMEOUT: async (c) => {
    // Accepts and never speaks: no SSH banner arrives within the deadline.
    using silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const held: Deno.Conn[] = [];
    const accepting = (async () => {
      for await (const conn of silent) held.push(conn);
    })().catch(() => {});
    try {
      return await failing(c, "ssh_connect", {
        host: "127.0.0.1",
        port: silent.addr.port,
        username: "u",
        password: "p",
        connect_timeout: 1,
      });
    } finally {
      for (const conn of held) conn.close();
      silent.close();
      await accepting;
    }
  },
  HANDSHAKE_FAILED: async (c) => {
    // An SSH-1 server: a banner, but no protocol in common.
    using old = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const held: Deno.Conn[] = [];
    const serving = (async () => {
      for await (const conn of old) {
        held.push(conn);
        await conn.write(new TextEncoder().encode("SSH-1.5-OpenSSH_1.2.3\r\n"));
      }
    })().catch(() => {});
    try {
      return await failing(c, "ssh_connect", { host: "127.0.0.1", port: old.addr.port, username: "u", password: "p" });
    } finally {
      for (const conn of held) conn.close();
      old.close();
      await serving;
    }
  },
  KEY_UNREADABLE: (c, dir) =>
    failing(c, "ssh_connect", { host: "127.0.0.1", port: 22, username: "u", private_key_path: `${dir}/no-such-key` }),
  AUTH_METHOD_MISSING: (c) => failing(c, "ssh_connect", { host: "127.0.0.1", port: 22, username: "u" }),
};

/** Codes triggered here against a real sshd. */
const WITH_SSHD: Partial<Record<ErrorCode, Trigger>> = {
  HOST_KEY_UNKNOWN: async ({ sshd, dir }) => {
    await using server = await startInProcessServer({
      args: ["--known-hosts", await emptyFile(`${dir}/empty_known_hosts`)],
    });
    return await failing(server.client, "ssh_connect", keyLogin(sshd));
  },
  HOST_KEY_MISMATCH: async ({ sshd, dir }) => {
    // The client key posing as the server's: the right type, the wrong key.
    const other = (await Deno.readTextFile(`${sshd.keys.ed25519.path}.pub`)).split(" ").slice(0, 2).join(" ");
    const kh = `${dir}/mismatch_known_hosts`;
    await Deno.writeTextFile(kh, `[${sshd.host}]:${sshd.port} ${other}\n`);
    await using server = await startInProcessServer({ args: ["--known-hosts", kh] });
    return await failing(server.client, "ssh_connect", keyLogin(sshd));
  },
  HOST_KEY_REVOKED: async ({ sshd, dir }) => {
    const kh = `${dir}/revoked_known_hosts`;
    const lines = sshd.hostKeys.map((k) => `@revoked [${sshd.host}]:${sshd.port} ${k.publicKeyLine}\n`);
    await Deno.writeTextFile(kh, lines.join(""));
    await using server = await startInProcessServer({ args: ["--known-hosts", kh] });
    return await failing(server.client, "ssh_connect", keyLogin(sshd));
  },
  KNOWN_HOSTS_WRITE_FAILED: async ({ sshd, dir }) => {
    // Its directory is a regular file: no one, root included, can create the file.
    const notDir = await emptyFile(`${dir}/not-a-directory`);
    await using server = await startInProcessServer({
      args: ["--known-hosts", `${notDir}/known_hosts`, "--host-key-policy", "accept-new"],
    });
    return await failing(server.client, "ssh_connect", keyLogin(sshd));
  },
  AUTH_FAILED: ({ client, sshd }) =>
    failing(client, "ssh_connect", { ...keyLogin(sshd), private_key_path: sshd.keys.unauthorized.path }),
  KEY_PASSPHRASE_REQUIRED: ({ client, sshd }) =>
    failing(client, "ssh_connect", { ...keyLogin(sshd), private_key_path: sshd.keys.passphrase.path }),
  KEY_PASSPHRASE_WRONG: ({ client, sshd }) =>
    failing(client, "ssh_connect", {
      ...keyLogin(sshd),
      private_key_path: sshd.keys.passphrase.path,
      passphrase: "not the passphrase",
    }),
  SESSION_LIMIT: async ({ sshd, dir }) => {
    const config = `${dir}/one_session.json`;
    await Deno.writeTextFile(config, JSON.stringify({ max_sessions: 1 }));
    await using server = await startInProcessServer({
      args: ["--known-hosts", await sshd.writeKnownHosts(), "--config", config],
    });
    await callOk(server.client, "ssh_connect", keyLogin(sshd));
    return await failing(server.client, "ssh_connect", keyLogin(sshd));
  },
  CWD_FAILED: ({ client, sid }) =>
    failing(client, "ssh_execute", { session_id: sid, command: "true", cwd: "/no/such/directory" }),
  SHELL_NOT_FOUND: ({ client, sid }) => failing(client, "ssh_shell_read", { session_id: sid, shell_id: "no-such" }),
  SHELL_LIMIT: async ({ client, sshd }) => {
    // A session of its own, closed afterwards: the shells would hold the shared one's channels, and
    // the cases after this one (job scripts bounded at 20 s, SFTP) would queue for what is left.
    const sid = await connectWithKey(client, sshd);
    try {
      for (let i = 0;; i++) {
        const r = await client.callTool({ name: "ssh_shell_open", arguments: { session_id: sid } });
        if (r.isError) return await failing(client, "ssh_shell_open", { session_id: sid });
        assert.ok(i < 64, "no shell limit was reached");
      }
    } finally {
      await callOk(client, "ssh_close_session", { session_id: sid });
    }
  },
  SFTP_NO_SUCH_FILE: ({ client, sid }) =>
    failing(client, "ssh_read_remote_file", { session_id: sid, remote_path: "/no/such/file" }),
  IS_A_DIRECTORY: ({ client, sid }) => failing(client, "ssh_read_remote_file", { session_id: sid, remote_path: "/" }),
  FILE_TOO_LARGE: async ({ client, sid, dir }) => {
    const big = `${dir}/big`;
    await callOk(client, "ssh_execute", { session_id: sid, command: `truncate -s 17M ${big}` });
    return await failing(client, "ssh_read_remote_file", { session_id: sid, remote_path: big, line_start: 1 });
  },
  PATH_NOT_ALLOWED: ({ client, sid }) =>
    failing(client, "ssh_upload_file", { session_id: sid, local_path: "/etc/passwd", remote_path: "/tmp/x" }),
  FORWARD_NOT_FOUND: ({ client, sid }) =>
    failing(client, "ssh_close_forward", { session_id: sid, forward_id: "no-such" }),
  INPUT_BLOCKED: async ({ client, sshd }) => {
    // A program that never reads: the terminal's buffer, the channel window, then ours fill up. Raw mode
    // without echo: a canonical terminal discards input past its line buffer and echoes it, so the
    // input would drain as output as fast as the emulator draws it (how fast is up to the machine).
    const sid = await connectWithKey(client, sshd); // its own, for the shell left blocked with a full buffer
    const shell = await callOk(client, "ssh_shell_open", { session_id: sid });
    const shellId = shell.structured.shell_id;
    await callOk(client, "ssh_shell_send", {
      session_id: sid,
      shell_id: shellId,
      data: "stty raw -echo; exec sleep 600",
    });
    const chunk = "x".repeat(1_000_000);
    for (let i = 0;; i++) {
      const args = { session_id: sid, shell_id: shellId, data: chunk, enter: false };
      const r = await client.callTool({ name: "ssh_shell_send", arguments: args });
      if (r.isError) return await failing(client, "ssh_shell_send", args);
      assert.ok(i < 64, "64 MB were taken by a program that reads nothing");
    }
  },
  NOT_A_DIRECTORY: async ({ client, sid, dir }) => {
    await callOk(client, "ssh_execute", { session_id: sid, command: `touch ${dir}/plain` });
    return await failing(client, "ssh_manage_remote", {
      action: "mkdir",
      session_id: sid,
      remote_path: `${dir}/plain/sub`,
      parents: true,
    });
  },
  SFTP_FAILURE: async ({ client, sid, dir }) => {
    // OpenSSH's sftp-server answers a non-empty rmdir with SSH_FX_FAILURE.
    await callOk(client, "ssh_execute", { session_id: sid, command: `mkdir -p ${dir}/full/x` });
    return await failing(client, "ssh_manage_remote", {
      action: "remove",
      session_id: sid,
      remote_path: `${dir}/full`,
    });
  },
  OUTPUT_NOT_FOUND: ({ client, sid }) => failing(client, "ssh_output_read", { session_id: sid, output_id: "o-none" }),
  JOB_NOT_FOUND: ({ client, sid }) =>
    failing(client, "ssh_job", { session_id: sid, action: "wait", job_id: "j-000000000000" }),
  JOB_RUNNING: async ({ client, sid }) => {
    const job = await callOk(client, "ssh_execute", { session_id: sid, command: "sleep 3021", background: true });
    try {
      return await failing(client, "ssh_job", { session_id: sid, action: "remove", job_id: job.structured.job_id });
    } finally {
      const id = job.structured.job_id;
      const cancel = await callOk(client, "ssh_job", { session_id: sid, action: "cancel", job_id: id });
      // On a loaded machine the cancel's check can outlast its script's bound (it then says "not confirmed"):
      // the TERM was sent, so wait for the end before removing.
      if (cancel.structured.confirmed !== true) {
        await callOk(client, "ssh_job", { session_id: sid, action: "wait", job_id: id, timeout: 120 }, {
          timeout: 150_000,
        });
      }
      await callOk(client, "ssh_job", { session_id: sid, action: "remove", job_id: id });
    }
  },
  // A job that made part of its own directory undeletable: its remove fails on the host.
  JOB_FAILED: async ({ client, sid }) => {
    const job = await callOk(client, "ssh_execute", {
      session_id: sid,
      command: 'cd ~/.cache/mcp-remote-ssh/jobs/"$MCP_REMOTE_SSH_JOB" && mkdir -p keep/x && chmod 500 keep',
      background: true,
    });
    const id = job.structured.job_id;
    await callOk(client, "ssh_job", { session_id: sid, action: "wait", job_id: id });
    try {
      return await failing(client, "ssh_job", { session_id: sid, action: "remove", job_id: id });
    } finally {
      // The failed remove took what it could (meta included): the rest goes by hand.
      const dir = `~/.cache/mcp-remote-ssh/jobs/${id}`;
      await callOk(client, "ssh_execute", { session_id: sid, command: `chmod 700 ${dir}/keep && rm -rf ${dir}` });
    }
  },
  PARENT_MISSING: ({ client, sid, dir }) =>
    failing(client, "ssh_write_remote_file", { session_id: sid, remote_path: `${dir}/no/such/file`, content: "x" }),
  LIMIT_EXCEEDED: async ({ sshd, dir, client, sid }) => {
    const deep = `${dir}/deep`;
    await callOk(client, "ssh_execute", { session_id: sid, command: `mkdir -p ${deep}/${"d/".repeat(70)}` });
    const local = `${dir}/local`;
    await Deno.mkdir(local);
    await using server = await startServer({
      args: ["--known-hosts", await sshd.writeKnownHosts(), "--allow-local-dir", local],
    });
    const s2 = await connectWithKey(server.client, sshd);
    return await failing(server.client, "ssh_download_file", {
      session_id: s2,
      remote_path: deep,
      local_path: `${local}/deep`,
      recursive: true,
    });
  },
};

/**
 * FORWARD_TARGET_FAILED is never a tool error: a forward to a target that refuses is still
 * opened, and the failure is the forward's warning (the next connection may find a listener).
 */
async function forwardTargetFailed({ client, sid }: Ctx): Promise<string> {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedPort = probe.addr.port;
  probe.close();
  const r = await callOk(client, "ssh_forward_port", { session_id: sid, remote_port: closedPort });
  await callOk(client, "ssh_close_forward", { session_id: sid, forward_id: r.structured.forward_id });
  return r.text;
}

function keyLogin(sshd: Sshd): Record<string, unknown> {
  return { host: sshd.host, port: sshd.port, username: sshd.user, private_key_path: sshd.keys.ed25519.path };
}

async function emptyFile(path: string): Promise<string> {
  await Deno.writeTextFile(path, "");
  return path;
}

/** The text of the test or step named `name` in `source`: from its name to the next test or step. */
function testBody(source: string, name: string): string | null {
  const at = source.indexOf(name);
  if (at < 0) return null;
  const rest = source.slice(at + name.length);
  const next = rest.search(/Deno\.test\(|t\.step\(/);
  return next < 0 ? rest : rest.slice(0, next);
}

Deno.test("every error code is proven reachable exactly once: by a trigger here or by a named test", () => {
  const here = [
    ...Object.keys(WITHOUT_SSHD),
    ...Object.keys(WITH_SSHD),
    "DNS_FAILED",
    "AGENT_UNAVAILABLE",
    "FORWARD_TARGET_FAILED",
    "CANCELLED",
  ];
  const there = Object.keys(ELSEWHERE);
  const all = [...here, ...there].sort();
  assert.deepEqual(all, [...ALL_CODES].sort(), "a code is unproven, or proven twice");
  for (const code of ALL_CODES) assert.ok(DEFAULT_HINTS[code].length > 10, code);
});

Deno.test("each code proven elsewhere is asserted by the test named for it", async () => {
  for (const [code, where] of Object.entries(ELSEWHERE)) {
    const source = await Deno.readTextFile(`${ROOT}${where.file}`);
    const body = testBody(source, where.name);
    assert.ok(body !== null, `${where.file} has no test "${where.name}" (proof of ${code})`);
    assert.match(body, new RegExp(`\\b${code}\\b`), `${where.file} "${where.name}" does not assert ${code}`);
  }
});

Deno.test("codes that need no sshd reach the client coded, with a hint", async (t) => {
  await using server = await startInProcessServer(); // no SSH_AUTH_SOCK
  const dir = await Deno.makeTempDir({ prefix: "mcp-codes-" });
  try {
    for (const [code, trigger] of Object.entries(WITHOUT_SSHD)) {
      await t.step(code, async () => assertCoded(await trigger(server.client, dir), code as ErrorCode));
    }
    await t.step("AGENT_UNAVAILABLE", async () => {
      await using agentless = await startInProcessServer({ env: { SSH_AUTH_SOCK: `${dir}/no-such-agent.sock` } });
      const r = await failing(agentless.client, "ssh_connect", { host: "127.0.0.1", port: 22, username: "u" });
      assertCoded(r, "AGENT_UNAVAILABLE");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const unshare = Deno.uid() === 0 && findInPath("unshare") !== null;

Deno.test({
  name: "an unresolvable host name is DNS_FAILED naming the name (server in a namespace with no network)",
  ignore: !unshare,
  fn: async () => {
    const home = await Deno.makeTempDir({ prefix: "mcp-home-" });
    const transport = new StdioClientTransport({
      command: findInPath("unshare")!,
      args: ["--net", Deno.execPath(), ...runArgs("main.ts")],
      env: serverEnv(home),
      cwd: ROOT,
      stderr: "pipe",
    });
    transport.stderr?.on("data", () => {});
    const client = new Client({ name: "mcp-remote-ssh-tests", version: "0" });
    await client.connect(transport);
    try {
      const name = "db1.mcp-remote-ssh-test.invalid";
      const r = await failing(client, "ssh_connect", { host: name, port: 22, username: "u", password: "p" });
      assertCoded(r, "DNS_FAILED");
      assert.match(r.text, new RegExp(`Cannot resolve host name ${name.replaceAll(".", "\\.")}: `));
    } finally {
      await client.close();
      await Deno.remove(home, { recursive: true });
    }
  },
});

Deno.test(
  { name: "codes that need an sshd reach the client coded, with a hint", ignore: !sshdAvailable() },
  async (t) => {
    await using sshd = await startSshd();
    await using server = await startInProcessServer({ args: ["--known-hosts", await sshd.writeKnownHosts()] });
    const dir = await Deno.makeTempDir({ prefix: "mcp-codes-" });
    await Deno.chmod(dir, 0o777); // the login user writes here too
    try {
      const sid = await connectWithKey(server.client, sshd);
      const ctx: Ctx = { client: server.client, sshd, sid, dir };
      for (const [code, trigger] of Object.entries(WITH_SSHD)) {
        await t.step(code, async () => assertCoded(await trigger(ctx), code as ErrorCode));
      }
      await t.step("CANCELLED (in-process: over MCP a cancelled request gets no response to carry it)", async () => {
        await using conn = await openConnection(sshd);
        const cancel = new AbortController();
        const running = execCommand(conn, {
          command: "sleep 30",
          timeoutMs: 60_000,
          maxOutputBytes: 1024,
          signal: cancel.signal,
        });
        cancel.abort();
        const error = await running.then(() => null, (e: unknown) => e);
        assert.ok(error instanceof SshMcpError, String(error));
        const result = toToolResult(error);
        assertCoded({ ...result._meta, text: result.content[0].text }, "CANCELLED");
      });
      await t.step("FORWARD_TARGET_FAILED (a warning of the forward, not a tool error)", async () => {
        assert.match(await forwardTargetFailed(ctx), /Warning: .*could not connect to 127\.0\.0\.1:\d+: .*refused/);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
