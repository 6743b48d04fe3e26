/**
 * End to end: the server answers `initialize` and `tools/list` without
 * having loaded ssh2 (and the repairs of lib/ssh2/) or the terminal
 * emulator, loads ssh2 at the first connection and xterm at the first
 * shell, and everything then works, under the shipped permission set
 * (`deno run -P`).
 *
 * What the process has loaded is read from V8 itself: the server runs with
 * the inspector on loopback, and every script V8 has parsed (ES modules and
 * CommonJS files alike) is reported by `Debugger.scriptParsed`. So a static
 * import that drags ssh2 back into start-up, from any file, fails this test.
 */

import assert from "node:assert/strict";
// @ts-types="@modelcontextprotocol/sdk/client/index"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="@modelcontextprotocol/sdk/client/stdio"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { callOk, connectWithKey, ROOT, RUN_FLAGS, serverEnv } from "./fixtures/mcp.ts";
import { sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable();
if (skip) console.warn("SKIP lazy loading tests: no sshd on this machine (apt-get install openssh-server)");

/** The scripts of ssh2 itself, and of our modules that exist only to drive it. */
const SSH2 = [/[\\/]ssh2[\\/]\d+\.\d+\.\d+[\\/]lib[\\/]/, /[\\/]lib[\\/]ssh2[\\/](client|ssh2|patches)\.ts$/];
/** The headless terminal emulator, and the module that wraps it. */
const XTERM = [/@xterm[\\/]headless/, /[\\/]lib[\\/]ssh[\\/]terminal\.ts$/];

const matching = (urls: Set<string>, patterns: RegExp[]) => [...urls].filter((u) => patterns.some((p) => p.test(u)));

/** Every script URL V8 has parsed in the server, kept up to date over the inspector. */
async function watchScripts(wsUrl: string): Promise<{ urls: Set<string>; settled(): Promise<void>; close(): void }> {
  const urls = new Set<string>();
  const ws = new WebSocket(wsUrl);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  let id = 0;
  const waiting = new Map<number, () => void>();
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.method === "Debugger.scriptParsed") urls.add(message.params.url);
    if (message.id !== undefined) waiting.get(message.id)?.();
  };
  const request = (method: string) =>
    new Promise<void>((resolve) => {
      const n = ++id;
      waiting.set(n, resolve);
      ws.send(JSON.stringify({ id: n, method }));
    });
  // The answer comes after the scriptParsed events of every script parsed so far.
  await request("Debugger.enable");
  return {
    urls,
    // A round trip: every script parsed before it has been reported when it returns.
    settled: () => request("Runtime.getIsolateId"),
    close: () => ws.close(),
  };
}

Deno.test({
  name: "ssh2 loads after the first tools/list and xterm at the first shell, not at start-up, and both then work",
  ignore: skip,
}, async () => {
  await using sshd = await startSshd();
  const kh = await sshd.writeKnownHosts();
  const home = await Deno.makeTempDir({ prefix: "mcp-home-" });
  // As the fixtures run it (tests/fixtures/mcp.ts runArgs), plus the inspector; without --quiet, which would
  // hide the inspector's address.
  const transport = new StdioClientTransport({
    command: Deno.execPath(),
    args: [
      "run",
      ...RUN_FLAGS,
      "--inspect=127.0.0.1:0",
      "--frozen",
      "--config",
      `${ROOT}deno.json`,
      `${ROOT}main.ts`,
      "--known-hosts",
      kh,
    ],
    env: serverEnv(home),
    cwd: ROOT,
    stderr: "pipe",
  });
  let stderr = "";
  const inspector = Promise.withResolvers<string>();
  transport.stderr?.on("data", (chunk: Uint8Array) => {
    stderr += new TextDecoder().decode(chunk);
    const ws = stderr.match(/ws:\/\/127\.0\.0\.1:\d+\/[\w-]+/);
    if (ws !== null) inspector.resolve(ws[0]);
  });
  const client = new Client({ name: "mcp-remote-ssh-tests", version: "0" }, { capabilities: {} });
  let scripts: Awaited<ReturnType<typeof watchScripts>> | undefined;
  try {
    await client.connect(transport);
    scripts = await watchScripts(await inspector.promise);
    await scripts.settled();
    // The check can see the server's modules at all (else an empty list would pass it).
    assert.ok([...scripts.urls].some((u) => /[\\/]lib[\\/]server\.ts$/.test(u)), stderr);
    assert.ok([...scripts.urls].some((u) => /@modelcontextprotocol[\\/]sdk/.test(u)), stderr);
    assert.deepEqual(matching(scripts.urls, SSH2), [], "ssh2 loaded before the tool list was asked for");
    assert.deepEqual(matching(scripts.urls, XTERM), [], "xterm loaded before the first shell");

    // After the first tools/list, ssh2 loads on its own (lib/tools/mod.ts preloadSsh2), before any connection.
    const { tools } = await client.listTools();
    assert.ok(tools.some((t) => t.name === "ssh_shell_open"));
    for (let waited = 0; matching(scripts.urls, SSH2).length === 0; waited += 100) {
      assert.ok(waited < 30_000, "ssh2 was not preloaded within 30 s of the tool list");
      await new Promise((r) => setTimeout(r, 100));
    }
    await scripts.settled();
    assert.deepEqual(matching(scripts.urls, XTERM), [], "xterm loaded before the first shell");

    const sid = await connectWithKey(client, sshd);
    assert.deepEqual(matching(scripts.urls, XTERM), [], "xterm loaded before the first shell");
    const echo = await callOk(client, "ssh_execute", { session_id: sid, command: "echo lazy-$((6*7))" });
    assert.equal(echo.structured.stdout, "lazy-42\n");
    assert.equal(echo.structured.exit_code, 0);

    const opened = await callOk(client, "ssh_shell_open", { session_id: sid });
    await scripts.settled();
    assert.notDeepEqual(matching(scripts.urls, XTERM), [], "the first shell loaded xterm");
    const shell_id = opened.structured.shell_id;
    await callOk(client, "ssh_shell_send", { session_id: sid, shell_id, data: "echo shell-$((40+2))" });
    const waited = await callOk(client, "ssh_shell_wait", {
      session_id: sid,
      shell_id,
      pattern: "shell-42",
      timeout: 20,
    });
    assert.equal(waited.structured.reason, "matched", waited.text);
    const screen = await callOk(client, "ssh_shell_read", { session_id: sid, shell_id, mode: "screen" });
    assert.match(screen.text, /shell-42/);
    await callOk(client, "ssh_close_session", { session_id: sid });
  } finally {
    scripts?.close();
    await client.close();
    await Deno.remove(home, { recursive: true }).catch(() => {});
  }
});
