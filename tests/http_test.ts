/**
 * End to end: the HTTP transports. The SDK client over streamable HTTP and
 * over SSE runs commands; raw fetch shows every refusal at the gate; two
 * HTTP clients cannot reach each other's SSH sessions; a non-loopback bind
 * without TLS or without a token refuses to start; over HTTPS the SDK client
 * works and plain HTTP does not; the session cap answers 503; a session that
 * never completes initialize is dropped; SIGTERM ends the server cleanly.
 */

import assert from "node:assert/strict";
// @ts-types="@modelcontextprotocol/sdk/client/index"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="@modelcontextprotocol/sdk/client/streamableHttp"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
// @ts-types="@modelcontextprotocol/sdk/client/sse"
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { call, callOk, connectWithKey, ROOT, runArgs } from "./fixtures/mcp.ts";
import { sshdAvailable, startSshd } from "./fixtures/sshd.ts";
import { delay, run as runProcess, tempDir } from "./fixtures/process.ts";

const skip = !sshdAvailable();
const TOKEN = "t-" + crypto.randomUUID().replaceAll("-", "");

interface HttpServer extends AsyncDisposable {
  url: string;
  port: number;
  proc: Deno.ChildProcess;
  stderr(): string;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number>;
}

/** main.ts run as users run it, with only the given environment (and its own HOME). */
function serverCommand(args: string[], env: Record<string, string>, home: string): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: runArgs("main.ts", args),
    env: {
      HOME: home,
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      DENO_DIR: Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`,
      NO_COLOR: "1",
      ...env,
    },
    clearEnv: true,
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  });
}

/** Spawns main.ts with an HTTP transport as users run it; resolves once it listens. */
async function startHttp(
  args: string[],
  env: Record<string, string> = { MCP_REMOTE_SSH_TOKEN: TOKEN },
): Promise<HttpServer> {
  const home = await Deno.makeTempDir({ prefix: "mcp-http-home-" });
  const proc = serverCommand(args, env, home).spawn();
  let stderr = "";
  const watch: { onLine: (() => void) | null } = { onLine: null };
  const pump = (async () => {
    for await (const chunk of proc.stderr.pipeThrough(new TextDecoderStream())) {
      stderr += chunk;
      watch.onLine?.();
    }
  })();
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${stderr}`)), 20_000);
    watch.onLine = () => {
      const m = stderr.match(/listening on (https?:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    proc.status.then((s) => {
      clearTimeout(timer);
      reject(new Error(`server exited ${s.code} before listening:\n${stderr}`));
    });
  });
  let stopped: Promise<number> | null = null;
  const stop = () =>
    stopped ??= (async () => {
      try {
        proc.kill("SIGTERM");
      } catch {
        // already gone
      }
      const { code } = await proc.status;
      await pump;
      await Deno.remove(home, { recursive: true }).catch(() => {});
      return code;
    })();
  return {
    url,
    port: Number(new URL(url).port),
    proc,
    stderr: () => stderr,
    stop,
    async [Symbol.asyncDispose]() {
      await stop();
    },
  };
}

/**
 * Runs main.ts with `args` and expects it to refuse to start: resolves with
 * its exit code and stderr once it exits; if it starts listening instead, it
 * is stopped at once and the test fails (no listener left on a wide address).
 */
async function refusal(args: string[], env: Record<string, string>): Promise<{ code: number; stderr: string }> {
  await using home = await tempDir("mcp-http-home-");
  const proc = serverCommand(args, env, home.path).spawn();
  let stderr = "";
  let listening = false;
  for await (const chunk of proc.stderr.pipeThrough(new TextDecoderStream())) {
    stderr += chunk;
    if (/listening on/.test(stderr)) {
      listening = true;
      proc.kill("SIGTERM");
    }
  }
  const { code } = await proc.status;
  assert.ok(!listening, `the server started listening instead of refusing:\n${stderr}`);
  return { code, stderr };
}

/** A self-signed P-256 server certificate for 127.0.0.1 and localhost, made with openssl into `dir`. */
async function selfSignedCert(dir: string): Promise<{ cert: string; key: string; pem: string }> {
  const cert = `${dir}/cert.pem`;
  const key = `${dir}/key.pem`;
  await runProcess("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-subj",
    "/CN=localhost",
    "-addext",
    "subjectAltName=IP:127.0.0.1,DNS:localhost",
    // rustls (Deno's fetch) refuses a CA certificate as the server's own.
    "-addext",
    "basicConstraints=critical,CA:FALSE",
    "-days",
    "2",
    "-keyout",
    key,
    "-out",
    cert,
  ]);
  return { cert, key, pem: await Deno.readTextFile(cert) };
}

/** A raw streamable-HTTP `initialize` that never sends `notifications/initialized`. */
async function rawInitialize(
  url: string,
  id: number,
  http?: Deno.HttpClient,
): Promise<{ status: number; sessionId: string | null; retryAfter: string | null; body: string }> {
  const init = {
    jsonrpc: "2.0",
    id,
    method: "initialize",
    params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "0" } },
  };
  const r = await fetch(url, {
    method: "POST",
    headers: {
      authorization: `Bearer ${TOKEN}`,
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
    },
    body: JSON.stringify(init),
    ...(http ? { client: http } : {}),
  });
  return {
    status: r.status,
    sessionId: r.headers.get("mcp-session-id"),
    retryAfter: r.headers.get("retry-after"),
    body: await r.text(),
  };
}

/** Whether the server still knows streamable-HTTP session `sessionId` (404 once it is gone). */
async function sessionKnown(url: string, sessionId: string): Promise<boolean> {
  const r = await fetch(url, {
    method: "POST",
    headers: {
      authorization: `Bearer ${TOKEN}`,
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-session-id": sessionId,
      "mcp-protocol-version": "2025-06-18",
    },
    body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 0 } }),
  });
  await r.body?.cancel();
  return r.status !== 404;
}

/**
 * Connects the SDK client; `http` is the fetch client to use (one that
 * trusts a test certificate, for HTTPS).
 */
async function connectClient(
  kind: "streamable-http" | "sse",
  url: string,
  token = TOKEN,
  http?: Deno.HttpClient,
): Promise<Client> {
  const headers = { Authorization: `Bearer ${token}` };
  const send: typeof fetch = (input, init) => fetch(input, { ...init, ...(http ? { client: http } : {}) });
  const transport = kind === "sse"
    ? new SSEClientTransport(new URL(url), {
      requestInit: { headers },
      fetch: send,
      eventSourceInit: {
        fetch: (input, init) => send(input, { ...init, headers: { ...init?.headers, ...headers } }),
      },
    })
    : new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers }, fetch: send });
  const client = new Client({ name: "http-test", version: "0" });
  await client.connect(transport);
  return client;
}

for (const kind of ["streamable-http", "sse"] as const) {
  Deno.test({ name: `the SDK client over ${kind} runs commands with real results`, ignore: skip }, async () => {
    await using sshd = await startSshd();
    await using tmp = await tempDir("mcp-http-");
    const dir = tmp.path;
    const kh = await sshd.writeKnownHosts(`${dir}/kh`);
    await using server = await startHttp(["--transport", kind, "--port", "0", "--known-hosts", kh]);
    assert.doesNotMatch(server.stderr(), new RegExp(TOKEN), "the configured token was printed");
    const c = await connectClient(kind, server.url);
    try {
      const sid = await connectWithKey(c, sshd);
      const ok = await callOk(c, "ssh_execute", { session_id: sid, command: "echo out; echo err >&2; exit 3" });
      assert.equal(ok.structured.stdout, "out\n");
      assert.equal(ok.structured.stderr, "err\n");
      assert.equal(ok.structured.exit_code, 3);
      const killed = await callOk(c, "ssh_execute", { session_id: sid, command: "kill -9 $$" });
      assert.equal(killed.structured.signal, "SIGKILL");
      const slow = await callOk(c, "ssh_execute", { session_id: sid, command: "echo a; sleep 600", timeout: 2 });
      assert.equal(slow.structured.timed_out, true);
      assert.equal(slow.structured.stdout, "a\n");
      const stdin = await callOk(c, "ssh_execute", { session_id: sid, command: "cat", stdin: "piped in" });
      assert.equal(stdin.structured.stdout, "piped in");
      const big = await callOk(c, "ssh_execute", { session_id: sid, command: "head -c 3000000 /dev/zero | wc -c" });
      assert.equal(big.structured.stdout.trim(), "3000000");
      const bad = await call(c, "ssh_execute", { session_id: "s-nope", command: "true" });
      assert.equal(bad.code, "SESSION_NOT_FOUND");
    } finally {
      await c.close();
    }
    assert.equal(await server.stop(), 0, `exit code after SIGTERM; stderr:\n${server.stderr()}`);
  });
}

Deno.test({ name: "the HTTP gate refuses bad requests before anything runs", ignore: skip }, async (t) => {
  await using tmp = await tempDir("mcp-http-gate-");
  const dir = tmp.path;
  const canary = `${dir}/pwned`;
  await using server = await startHttp([
    "--transport",
    "streamable-http",
    "--port",
    "0",
    "--known-hosts",
    `${dir}/kh`,
    "--allow-origin",
    "http://localhost:6274",
  ]);
  const init = {
    jsonrpc: "2.0",
    id: 1,
    method: "initialize",
    params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "0" } },
  };
  const base = {
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
  };
  const post = async (headers: Record<string, string>, body: BodyInit = JSON.stringify(init), url = server.url) => {
    const r = await fetch(url, { method: "POST", headers: { ...base, ...headers }, body });
    await r.body?.cancel();
    return r.status;
  };
  const auth = { authorization: `Bearer ${TOKEN}` };

  await t.step("a well-formed request with the token is accepted (control)", async () => {
    assert.equal(await post(auth), 200);
    assert.equal(await post({ ...auth, origin: "http://localhost:6274" }), 200, "an allowed origin");
  });
  await t.step("no token, a wrong token, or another scheme: 401", async () => {
    assert.equal(await post({}), 401);
    assert.equal(await post({ authorization: `Bearer ${TOKEN}x` }), 401);
    assert.equal(await post({ authorization: `Bearer ${TOKEN.slice(0, -1)}` }), 401);
    assert.equal(await post({ authorization: `Basic ${btoa(`user:${TOKEN}`)}` }), 401);
    assert.equal(await post({ authorization: "Bearer" }), 401);
  });
  await t.step("a token in the query string is refused even when it is right", async () => {
    for (const name of ["access_token", "token", "auth"]) {
      const url = `${server.url}?${name}=${TOKEN}`;
      assert.equal(await post({}, undefined, url), 400, name);
      assert.equal(await post(auth, undefined, url), 400, `${name} with the header too`);
    }
  });
  await t.step("foreign and null origins: 403, even with the token", async () => {
    assert.equal(await post({ ...auth, origin: "https://evil.example" }), 403);
    assert.equal(await post({ ...auth, origin: "null" }), 403);
    assert.equal(await post({ ...auth, origin: "http://localhost:6274.evil.example" }), 403);
  });
  await t.step("a Host that is not this server (DNS rebinding): 403", async () => {
    // fetch sets Host itself; a raw request can say anything.
    const raw = async (host: string) => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      const body = JSON.stringify(init);
      const request = `POST /mcp HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${TOKEN}\r\n` +
        `Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n` +
        `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`;
      await conn.write(new TextEncoder().encode(request));
      const buf = new Uint8Array(256);
      const n = await conn.read(buf);
      conn.close();
      return Number(new TextDecoder().decode(buf.subarray(0, n ?? 0)).split(" ")[1]);
    };
    assert.equal(await raw(`evil.example:${server.port}`), 403);
    assert.equal(await raw(`127.0.0.1.evil.example:${server.port}`), 403);
    assert.equal(await raw(`127.0.0.1:${server.port + 1}`), 403);
    assert.ok(
      [400, 403].includes(await raw(`127.0.0.1:${server.port}.`)),
      "an unparsable Host is refused, not a 500",
    );
    assert.equal(await raw(`127.0.0.1:${server.port}`), 200, "control");
    assert.equal(await raw(`localhost:${server.port}`), 200, "control");
  });
  await t.step("a 100 MB body: 413", async () => {
    const huge = new Uint8Array(100 * 1024 * 1024).fill(0x20);
    assert.equal(await post(auth, huge), 413);
  });
  await t.step("a bad MCP-Protocol-Version: 400; an unknown session: 404", async () => {
    assert.equal(await post({ ...auth, "mcp-protocol-version": "1999-01-01" }), 400);
    const list = { jsonrpc: "2.0", id: 2, method: "tools/list" };
    assert.equal(await post({ ...auth, "mcp-session-id": "0".repeat(64) }, JSON.stringify(list)), 404);
  });
  await t.step("nothing ran: no canary, and no token in the log", () => {
    assert.throws(() => Deno.statSync(canary));
    assert.doesNotMatch(server.stderr(), new RegExp(TOKEN));
  });
});

Deno.test({ name: "two HTTP clients cannot see or use each other's SSH sessions", ignore: skip }, async () => {
  await using sshd = await startSshd();
  await using tmp = await tempDir("mcp-http-iso-");
  const dir = tmp.path;
  const kh = await sshd.writeKnownHosts(`${dir}/kh`);
  await using server = await startHttp(["--transport", "streamable-http", "--port", "0", "--known-hosts", kh]);
  const a = await connectClient("streamable-http", server.url);
  const b = await connectClient("streamable-http", server.url);
  try {
    const sidA = await connectWithKey(a, sshd);
    await callOk(a, "ssh_shell_open", { session_id: sidA });
    const fwd = (await callOk(a, "ssh_forward_port", { session_id: sidA, direction: "dynamic" })).structured;
    const listB = await callOk(b, "ssh_list_sessions");
    assert.deepEqual(listB.structured.sessions, []);
    assert.deepEqual((await callOk(b, "ssh_list_forwards")).structured.forwards, []);
    for (
      const [tool, args] of [
        ["ssh_execute", { session_id: sidA, command: `touch ${dir}/pwned` }],
        ["ssh_shell_send", { session_id: sidA, data: `touch ${dir}/pwned` }],
        ["ssh_close_forward", { session_id: sidA, forward_id: fwd.forward_id }],
        ["ssh_close_session", { session_id: sidA }],
      ] as const
    ) {
      const r = await call(b, tool, args);
      assert.equal(r.code, "SESSION_NOT_FOUND", `${tool}: ${r.text}`);
    }
    assert.throws(() => Deno.statSync(`${dir}/pwned`));
    const stillA = await callOk(a, "ssh_execute", { session_id: sidA, command: "echo mine" });
    assert.equal(stillA.structured.stdout, "mine\n");

    // Ending A's HTTP session closes what it owned: its SSH connection and its forward's port.
    const before = (await sshd.childPids()).length;
    await (a.transport as StreamableHTTPClientTransport).terminateSession();
    const freed = await (async () => {
      for (let i = 0; i < 50; i++) {
        try {
          Deno.listen({ hostname: "127.0.0.1", port: fwd.listen.port }).close();
          return true;
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      return false;
    })();
    assert.ok(freed, "the forward's port is still taken after the HTTP session ended");
    let after = before;
    for (let i = 0; i < 50 && after >= before; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = (await sshd.childPids()).length;
    }
    assert.ok(after < before, "the SSH connection of the ended HTTP session is still up");
  } finally {
    await a.close().catch(() => {});
    await b.close();
  }
});

Deno.test({ name: "HTTP start-up refuses unsafe or bad settings", ignore: skip }, async () => {
  await using tmp = await tempDir("mcp-http-start-");
  const dir = tmp.path;
  const run = async (args: string[], env: Record<string, string> = {}) => {
    const out = await serverCommand(["--known-hosts", `${dir}/kh`, ...args], env, dir).output();
    return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
  };
  const wide = await run(["--transport", "streamable-http", "--host", "0.0.0.0", "--port", "0"]);
  assert.equal(wide.code, 2);
  assert.match(wide.stderr, /refusing to listen on 0\.0\.0\.0 without TLS/);
  const short = await run(["--transport", "sse", "--port", "0"], { MCP_REMOTE_SSH_TOKEN: "short" });
  assert.equal(short.code, 2);
  assert.match(short.stderr, /at least 16 characters/);
  const port = await run(["--transport", "sse", "--port", "99999"]);
  assert.equal(port.code, 2);
  const stdioHost = await run(["--host", "127.0.0.1"]);
  assert.equal(stdioHost.code, 2);

  // On loopback without a token, one is generated and printed once, with the client configuration.
  await using generated = await startHttp([
    "--transport",
    "streamable-http",
    "--port",
    "0",
    "--known-hosts",
    `${dir}/kh`,
  ], {});
  const printed = generated.stderr().match(/"Authorization": "Bearer ([^"]+)"/);
  assert.ok(printed, generated.stderr());
  assert.equal(generated.stderr().split(printed[1]).length - 1, 1, "the token was printed more than once");
  const c = await connectClient("streamable-http", generated.url, printed[1]);
  assert.ok((await c.listTools()).tools.length > 20);
  await c.close();
});

Deno.test({ name: "an idle HTTP session is closed with its SSH sessions", ignore: skip }, async () => {
  await using sshd = await startSshd();
  await using tmp = await tempDir("mcp-http-idle-");
  const dir = tmp.path;
  const kh = await sshd.writeKnownHosts(`${dir}/kh`);
  const config = `${dir}/config.json`;
  await Deno.writeTextFile(config, JSON.stringify({ http_idle_timeout: 1 }));
  await using server = await startHttp([
    "--transport",
    "streamable-http",
    "--port",
    "0",
    "--known-hosts",
    kh,
    "--config",
    config,
  ]);
  const c = await connectClient("streamable-http", server.url);
  try {
    const before = (await sshd.childPids()).length;
    const sid = await connectWithKey(c, sshd);
    // Three idle timeouts long: a command in flight keeps its session.
    const long = await callOk(c, "ssh_execute", { session_id: sid, command: "sleep 3; echo done" });
    assert.equal(long.structured.stdout, "done\n");
    assert.ok((await sshd.childPids()).length > before);
    let now = Infinity;
    for (let i = 0; i < 100 && now > before; i++) {
      await new Promise((r) => setTimeout(r, 100));
      now = (await sshd.childPids()).length;
    }
    assert.equal(now, before, "the SSH connection outlived its idle HTTP session");
    await assert.rejects(c.listTools(), /404|not found/i);
  } finally {
    await c.close().catch(() => {});
  }

  // A cancelled call gets no answer from the server; it must not keep the session alive.
  const d = await connectClient("streamable-http", server.url);
  try {
    const before = (await sshd.childPids()).length;
    const sid = await connectWithKey(d, sshd);
    const ac = new AbortController();
    const pending = d.callTool(
      { name: "ssh_execute", arguments: { session_id: sid, command: "sleep 30" } },
      undefined,
      {
        signal: ac.signal,
      },
    );
    await new Promise((r) => setTimeout(r, 300));
    ac.abort();
    await assert.rejects(pending);
    let now = Infinity;
    for (let i = 0; i < 100 && now > before; i++) {
      await new Promise((r) => setTimeout(r, 100));
      now = (await sshd.childPids()).length;
    }
    assert.equal(now, before, "a cancelled call kept its HTTP session (and SSH connection) alive");
  } finally {
    await d.close().catch(() => {});
  }
});

Deno.test("a non-loopback bind without TLS refuses to start and names the TLS flags", async () => {
  await using tmp = await tempDir("mcp-http-tls-");
  const dir = tmp.path;
  const env = { MCP_REMOTE_SSH_TOKEN: TOKEN };
  for (const transport of ["streamable-http", "sse"]) {
    const r = await refusal(
      ["--transport", transport, "--host", "0.0.0.0", "--port", "0", "--known-hosts", `${dir}/kh`],
      env,
    );
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /refusing to listen on 0\.0\.0\.0 without TLS/);
    assert.match(r.stderr, /--tls-cert FILE and --tls-key FILE/);
  }
  const { cert, key } = await selfSignedCert(dir);
  const base = ["--transport", "streamable-http", "--port", "0", "--known-hosts", `${dir}/kh`];
  const half = await refusal([...base, "--tls-cert", cert], env);
  assert.equal(half.code, 2);
  assert.match(half.stderr, /--tls-cert and --tls-key go together/);
  const config = `${dir}/config.json`;
  await Deno.writeTextFile(config, JSON.stringify({ http_tls_key: key }));
  const halfConfig = await refusal([...base, "--host", "0.0.0.0", "--config", config], env);
  assert.equal(halfConfig.code, 2);
  assert.match(halfConfig.stderr, /http_tls_cert and http_tls_key go together/);
  const missing = await refusal([...base, "--tls-cert", `${dir}/nope.pem`, "--tls-key", key], env);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /Cannot read the TLS certificate/);
  const swapped = await refusal([...base, "--tls-cert", key, "--tls-key", cert], env);
  assert.equal(swapped.code, 2);
  assert.match(swapped.stderr, /holds no PEM certificate/);
  // TLS does not replace the token beyond loopback.
  const noToken = await refusal([...base, "--host", "0.0.0.0", "--tls-cert", cert, "--tls-key", key], {});
  assert.equal(noToken.code, 2);
  assert.match(noToken.stderr, /without a token/);
});

Deno.test("over HTTPS the SDK client runs tools, and plain HTTP to the same port gets nothing", async () => {
  await using tmp = await tempDir("mcp-http-tls-");
  const dir = tmp.path;
  const { cert, key, pem } = await selfSignedCert(dir);
  const tls = ["--tls-cert", cert, "--tls-key", key, "--known-hosts", `${dir}/kh`];
  // No token configured: the generated one is printed with an https client configuration.
  await using server = await startHttp(["--transport", "streamable-http", "--port", "0", ...tls], {});
  assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+\/mcp$/);
  const printed = server.stderr().match(/"Authorization": "Bearer ([^"]+)"/);
  assert.ok(printed, server.stderr());
  assert.match(server.stderr(), /"url": "https:\/\/127\.0\.0\.1:\d+\/mcp"/);
  const http = Deno.createHttpClient({ caCerts: [pem] });
  try {
    const c = await connectClient("streamable-http", server.url, printed[1], http);
    const listed = await callOk(c, "ssh_list_sessions");
    assert.deepEqual(listed.structured.sessions, []);
    await c.close();
    // HTTP/2 carries the Host as :authority; the DNS-rebinding check must read it there too.
    // The refusals are GETs: a 403 sent before a request body is read ends an HTTP/2 stream
    // with RST_STREAM, which curl may report as a failure (exit 92) instead of the status.
    const initialize = JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "curl", version: "0" } },
    });
    const curl = async (version: string, host: string, body?: string) =>
      (await runProcess("curl", [
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        version,
        "--cacert",
        cert,
        "-H",
        `Host: ${host}`,
        "-H",
        `Authorization: Bearer ${printed[1]}`,
        "-H",
        "content-type: application/json",
        "-H",
        "accept: application/json, text/event-stream",
        ...(body === undefined ? [] : ["-d", body]),
        server.url,
      ])).stdout;
    assert.equal(await curl("--http2", `evil.example:${server.port}`), "2 403");
    assert.equal(await curl("--http1.1", `evil.example:${server.port}`), "1.1 403");
    assert.equal(await curl("--http2", `localhost:${server.port}`, initialize), "2 200", "control");
    assert.equal(await curl("--http1.1", `localhost:${server.port}`, initialize), "1.1 200", "control");
    await assert.rejects(
      fetch(server.url.replace("https:", "http:"), { method: "POST", body: "{}" }).then((r) => r.body?.cancel()),
      "plain HTTP to the TLS port was answered",
    );
    await assert.rejects(
      fetch(server.url, { method: "POST", body: "{}" }).then((r) => r.body?.cancel()),
      "a client that does not trust the certificate got an answer",
    );
  } finally {
    http.close();
  }

  // SSE too, and beyond loopback once TLS is on (reached here through 127.0.0.1).
  await using wide = await startHttp(["--transport", "sse", "--host", "0.0.0.0", "--port", "0", ...tls]);
  assert.match(wide.url, /^https:\/\/0\.0\.0\.0:\d+\/sse$/);
  const http2 = Deno.createHttpClient({ caCerts: [pem] });
  try {
    const c = await connectClient("sse", `https://127.0.0.1:${wide.port}/sse`, TOKEN, http2);
    assert.deepEqual((await callOk(c, "ssh_list_sessions")).structured.sessions, []);
    await c.close();
  } finally {
    http2.close();
  }
});

Deno.test("beyond the session cap initialize gets 503 with Retry-After, and a DELETE frees a slot", async () => {
  await using tmp = await tempDir("mcp-http-cap-");
  const dir = tmp.path;
  const config = `${dir}/config.json`;
  await Deno.writeTextFile(config, JSON.stringify({ http_max_sessions: 2 }));
  const common = ["--port", "0", "--known-hosts", `${dir}/kh`, "--config", config];
  await using server = await startHttp(["--transport", "streamable-http", ...common]);
  const a = await connectClient("streamable-http", server.url);
  const b = await connectClient("streamable-http", server.url);
  const clients = [a, b];
  try {
    const refused = await rawInitialize(server.url, 7);
    assert.equal(refused.status, 503);
    assert.ok(Number(refused.retryAfter) > 0, `Retry-After: ${refused.retryAfter}`);
    assert.equal(refused.sessionId, null);
    const body = JSON.parse(refused.body);
    assert.equal(body.jsonrpc, "2.0");
    assert.equal(body.id, 7);
    assert.equal(body.error.code, -32000);
    assert.match(body.error.message, /Too many HTTP sessions: 2 are open/);
    await assert.rejects(connectClient("streamable-http", server.url), /503|Too many HTTP sessions/);

    await (a.transport as StreamableHTTPClientTransport).terminateSession();
    const c = await connectClient("streamable-http", server.url);
    clients.push(c);
    assert.ok((await c.listTools()).tools.length > 20);
    assert.ok((await b.listTools()).tools.length > 20, "an existing session suffered from the refusals");
    assert.equal((await rawInitialize(server.url, 8)).status, 503, "the freed slot was counted twice");
  } finally {
    for (const c of clients) await c.close().catch(() => {});
  }

  // An SSE stream is a session too.
  await Deno.writeTextFile(config, JSON.stringify({ http_max_sessions: 1 }));
  await using sse = await startHttp(["--transport", "sse", ...common]);
  const s = await connectClient("sse", sse.url);
  try {
    const r = await fetch(sse.url, { headers: { authorization: `Bearer ${TOKEN}` } });
    const text = await r.text();
    assert.equal(r.status, 503, text);
    assert.ok(r.headers.get("retry-after"));
  } finally {
    await s.close();
  }
});

Deno.test("a session that never completes initialize is dropped and frees its slot", async () => {
  await using tmp = await tempDir("mcp-http-init-");
  const dir = tmp.path;
  const config = `${dir}/config.json`;
  await Deno.writeTextFile(config, JSON.stringify({ http_max_sessions: 2, http_init_timeout: 2 }));
  await using server = await startHttp([
    "--transport",
    "streamable-http",
    "--port",
    "0",
    "--known-hosts",
    `${dir}/kh`,
    "--config",
    config,
    "--log-level",
    "info",
  ]);
  // Opened first: a session that completed its handshake outlives the deadline. The deadline
  // leaves the SDK client's own handshake ample time on a loaded machine.
  const done = await connectClient("streamable-http", server.url);
  const clients = [done];
  try {
    const half = await rawInitialize(server.url, 1);
    assert.equal(half.status, 200, half.body);
    assert.ok(half.sessionId);
    assert.equal((await rawInitialize(server.url, 2)).status, 503, "the cap counts half-open sessions");
    let known = true;
    for (let i = 0; i < 200 && known; i++) {
      await delay(100);
      known = await sessionKnown(server.url, half.sessionId);
    }
    assert.ok(!known, "the half-open session was never dropped");
    assert.match(server.stderr(), /initialize not completed in time/);
    assert.ok((await done.listTools()).tools.length > 20, "the initialized session was dropped too");
    const next = await connectClient("streamable-http", server.url);
    clients.push(next);
    assert.deepEqual((await callOk(next, "ssh_list_sessions")).structured.sessions, []);
  } finally {
    for (const c of clients) await c.close().catch(() => {});
  }
});

Deno.test({ name: "over HTTP the audit log names each client's session, in one chain", ignore: skip }, async () => {
  await using sshd = await startSshd();
  await using tmp = await tempDir("mcp-http-audit-");
  const dir = tmp.path;
  const kh = await sshd.writeKnownHosts(`${dir}/kh`);
  const log = `${dir}/audit.jsonl`;
  await using server = await startHttp([
    "--transport",
    "streamable-http",
    "--port",
    "0",
    "--known-hosts",
    kh,
    "--audit-log",
    log,
  ]);
  const a = await connectClient("streamable-http", server.url);
  const b = await connectClient("streamable-http", server.url);
  try {
    const sid = await connectWithKey(a, sshd);
    await callOk(a, "ssh_execute", { session_id: sid, command: "true" });
    await callOk(b, "ssh_list_sessions");
    const ids = [a, b].map((c) => (c.transport as StreamableHTTPClientTransport).sessionId);
    const lines = (await Deno.readTextFile(log)).trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => [l.tool, l.transport_session]), [
      ["ssh_connect", ids[0]],
      ["ssh_execute", ids[0]],
      ["ssh_list_sessions", ids[1]],
    ]);
    assert.notEqual(ids[0], ids[1]);
    // One chain across the two clients' instances.
    assert.equal(lines[2].prev, lines[1].hash);
  } finally {
    await a.close();
    await b.close();
  }
});
