/**
 * End to end: the process itself. Stdout carries only MCP messages; stdin
 * EOF, SIGTERM and SIGINT end the server and every SSH connection it holds.
 */

import assert from "node:assert/strict";
import { ROOT, runArgs } from "./fixtures/mcp.ts";
import { type Sshd, sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable();
const denoJson = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));

function spawnServer(args: string[], home: string): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: runArgs("main.ts", args),
    env: {
      HOME: home,
      NO_COLOR: "1",
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      DENO_DIR: Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`,
    },
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Minimal JSON-RPC over the child's stdio, so the test controls stdin itself. */
class RawClient {
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #lines: AsyncIterator<string>;
  #buffered = "";
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  stdoutLines: string[] = [];
  constructor(readonly child: Deno.ChildProcess) {
    this.#writer = child.stdin.getWriter();
    this.#reader = child.stdout.getReader();
    this.#lines = this.#readLines();
  }
  async *#readLines(): AsyncGenerator<string> {
    const dec = new TextDecoder();
    while (true) {
      const { value, done } = await this.#reader.read();
      if (done) return;
      this.#buffered += dec.decode(value, { stream: true });
      let nl;
      while ((nl = this.#buffered.indexOf("\n")) >= 0) {
        const line = this.#buffered.slice(0, nl);
        this.#buffered = this.#buffered.slice(nl + 1);
        this.stdoutLines.push(line);
        yield line;
      }
    }
  }
  async send(message: unknown): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(JSON.stringify(message) + "\n"));
  }
  async request(id: number, method: string, params: unknown): Promise<{ result?: unknown; error?: unknown }> {
    await this.send({ jsonrpc: "2.0", id, method, params });
    while (true) {
      const next = await this.#lines.next();
      if (next.done) throw new Error("Server closed stdout before answering");
      const msg = JSON.parse(next.value);
      if (msg.id === id) return msg;
    }
  }
  async initialize(): Promise<void> {
    await this.request(1, "initialize", {
      protocolVersion: "2025-06-18",
      capabilities: {},
      clientInfo: { name: "raw", version: "0" },
    });
    await this.send({ jsonrpc: "2.0", method: "notifications/initialized" });
  }
  async cancelStdout(): Promise<void> {
    await this.#reader.cancel();
  }
  async closeStdin(): Promise<void> {
    await this.#writer.close();
  }
  async drain(): Promise<void> {
    for (let n = await this.#lines.next(); !n.done; n = await this.#lines.next()) { /* collect */ }
  }
}

async function waitFor(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

async function withConnectedServer(
  sshd: Sshd,
  stop: (client: RawClient) => Promise<void>,
): Promise<{ code: number; stderr: string; stdoutLines: string[] }> {
  const home = await Deno.makeTempDir({ prefix: "mcp-life-" });
  try {
    const kh = await sshd.writeKnownHosts(`${home}/kh`);
    const child = spawnServer(["--known-hosts", kh, "--log-level", "info"], home);
    const stderrText = new Response(child.stderr).text();
    const client = new RawClient(child);
    await client.initialize();
    const r = await client.request(2, "tools/call", {
      name: "ssh_connect",
      arguments: { host: sshd.host, port: sshd.port, username: sshd.user, private_key_path: sshd.keys.ed25519.path },
    }) as { result: { isError?: boolean; content: { text: string }[] } };
    assert.ok(!r.result.isError, r.result.content[0].text);
    await waitFor("the SSH connection", async () => (await sshd.childPids()).length > 0);
    await stop(client);
    const drained = client.drain();
    const status = await Promise.race([
      child.status,
      new Promise<never>((_, rej) => setTimeout(() => rej(new Error("server did not exit")), 15_000)),
    ]);
    await drained;
    await waitFor("sshd to see the connection closed", async () => (await sshd.childPids()).length === 0);
    return { code: status.code, stderr: await stderrText, stdoutLines: client.stdoutLines };
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

Deno.test({ name: "the server exits and closes its SSH connections", ignore: skip }, async (t) => {
  await using sshd = await startSshd();

  await t.step("on stdin EOF", async () => {
    const r = await withConnectedServer(sshd, (c) => c.closeStdin());
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Shutting down: stdin closed/);
    for (const line of r.stdoutLines) assert.equal(JSON.parse(line).jsonrpc, "2.0", line);
  });

  await t.step("when the client stops reading stdout", async () => {
    const home = await Deno.makeTempDir({ prefix: "mcp-life-" });
    try {
      const kh = await sshd.writeKnownHosts(`${home}/kh`);
      const child = spawnServer(["--known-hosts", kh, "--log-level", "info"], home);
      const stderr = new Response(child.stderr).text();
      const client = new RawClient(child);
      await client.initialize();
      await client.cancelStdout();
      // The answer to this request meets a closed pipe.
      await client.send({ jsonrpc: "2.0", id: 9, method: "tools/list" }).catch(() => {});
      const status = await Promise.race([
        child.status,
        new Promise<never>((_, rej) => setTimeout(() => rej(new Error("server did not exit")), 15_000)),
      ]);
      await client.closeStdin().catch(() => {});
      const log = await stderr;
      assert.equal(status.code, 0, log);
      assert.match(log, /Shutting down: stdout closed/);
      assert.doesNotMatch(log, /Uncaught/);
    } finally {
      await Deno.remove(home, { recursive: true });
    }
  });

  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    await t.step(`on ${signal}`, async () => {
      const r = await withConnectedServer(sshd, (c) => {
        c.child.kill(signal);
        return Promise.resolve();
      });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`Shutting down: ${signal}`));
    });
  }
});

Deno.test("--version prints the version from deno.json, --help the flags, bad flags exit 2", async () => {
  const run = async (...args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: runArgs("main.ts", args),
      stdin: "null",
    }).output();
    return {
      code: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
    };
  };
  const v = await run("--version");
  assert.equal(v.code, 0);
  assert.equal(v.stdout.trim(), `mcp-remote-ssh ${denoJson.version}`);
  const h = await run("--help");
  assert.equal(h.code, 0);
  for (const flag of ["--transport", "--config", "--known-hosts", "--host-key-policy", "--log-level"]) {
    assert.ok(h.stdout.includes(flag), flag);
  }
  const bad = await run("--no-such-flag");
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /no-such-flag/);
  assert.equal(bad.stdout, "");
  const badPolicy = await run("--host-key-policy", "off");
  assert.equal(badPolicy.code, 2);
});
