/**
 * End to end: every JSON-RPC request gets an answer, as JSON-RPC 2.0 says,
 * from the real server run as users run it (`deno run -P`), over raw stdio
 * lines and raw HTTP POSTs: parse errors -32700 with id null, invalid
 * requests -32600, bad params -32602, batches refused, prototype names
 * answered as unknown tools; a malformed notification gets nothing; and the
 * server serves normally afterwards.
 */

import assert from "node:assert/strict";
import { ROOT, runArgs } from "./fixtures/mcp.ts";

/** How long one reply may take on a loaded machine; a request with none fails the test instead of hanging it. */
const REPLY_DEADLINE_MS = 20_000;

const INIT = {
  jsonrpc: "2.0",
  id: "init",
  method: "initialize",
  params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "0" } },
};

// deno-lint-ignore no-explicit-any
type Json = any;

/** main.ts over stdio, driven by raw lines. */
interface RawStdio extends AsyncDisposable {
  /** Writes one line (a newline is added). */
  send(line: string): Promise<void>;
  /** The next line the server writes, parsed; throws when none comes within the deadline. */
  next(what: string): Promise<Json>;
  stderr(): string;
}

async function startRawStdio(): Promise<RawStdio> {
  const home = await Deno.makeTempDir({ prefix: "mcp-jsonrpc-home-" });
  const proc = new Deno.Command(Deno.execPath(), {
    args: runArgs("main.ts"),
    env: {
      HOME: home,
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      DENO_DIR: Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`,
      NO_COLOR: "1",
    },
    clearEnv: true,
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = proc.stdin.getWriter();
  const lines = proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let stderr = "";
  const pumpErr = (async () => {
    for await (const chunk of proc.stderr.pipeThrough(new TextDecoderStream())) {
      stderr = (stderr + chunk).slice(-200_000);
    }
  })();
  let buffered = "";
  let reading: Promise<ReadableStreamReadResult<string>> | null = null;
  const next = async (what: string): Promise<Json> => {
    let timer = 0;
    const deadline = new Promise<never>((_, reject) => {
      timer = Number(setTimeout(
        () => reject(new Error(`no reply to ${what} within ${REPLY_DEADLINE_MS} ms\nserver stderr:\n${stderr}`)),
        REPLY_DEADLINE_MS,
      ));
    });
    try {
      while (!buffered.includes("\n")) {
        // A read still pending after a missed deadline is kept for the next call, so no line is lost.
        reading ??= lines.read();
        const { value, done } = await Promise.race([reading, deadline]);
        reading = null;
        if (done) throw new Error(`the server closed stdout before answering ${what}\n${stderr}`);
        buffered += value;
      }
    } finally {
      clearTimeout(timer);
    }
    const nl = buffered.indexOf("\n");
    const line = buffered.slice(0, nl);
    buffered = buffered.slice(nl + 1);
    return JSON.parse(line);
  };
  return {
    send: (line) => writer.write(new TextEncoder().encode(line + "\n")),
    next,
    stderr: () => stderr,
    async [Symbol.asyncDispose]() {
      await writer.close().catch(() => {});
      await lines.cancel().catch(() => {});
      const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
      await proc.status;
      clearTimeout(timer);
      await pumpErr;
      await Deno.remove(home, { recursive: true });
    },
  };
}

/** A request line and the error it must get: code and id (undefined: no reply at all). */
interface Case {
  name: string;
  line: string;
  code?: number;
  id?: string | number | null;
}

const CASES: Case[] = [
  { name: "text that is not JSON", line: "not json", code: -32700, id: null },
  { name: "a truncated object", line: '{"jsonrpc":"2.0","id":40,"method":"ping"', code: -32700, id: null },
  { name: "a wrong jsonrpc version", line: '{"jsonrpc":"1.0","id":41,"method":"ping"}', code: -32600, id: 41 },
  { name: "no jsonrpc member", line: '{"id":42,"method":"ping"}', code: -32600, id: 42 },
  { name: "a bare number", line: "5", code: -32600, id: null },
  { name: "an empty batch", line: "[]", code: -32600, id: null },
  { name: "an id of 1.5", line: '{"jsonrpc":"2.0","id":1.5,"method":"ping"}', code: -32600, id: 1.5 },
  // JSON.parse rounds it: answering the rounded number would name another request.
  { name: "an id of 2^53+1", line: '{"jsonrpc":"2.0","id":9007199254740993,"method":"ping"}', code: -32600, id: null },
  { name: "an object as id", line: '{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}', code: -32600, id: null },
  {
    name: "tools/call with params null",
    line: '{"jsonrpc":"2.0","id":43,"method":"tools/call","params":null}',
    code: -32600,
    id: 43,
  },
  {
    name: "tools/call with params []",
    line: '{"jsonrpc":"2.0","id":44,"method":"tools/call","params":[]}',
    code: -32602,
    id: 44,
  },
  {
    name: "tools/call with arguments that are not an object",
    line: '{"jsonrpc":"2.0","id":45,"method":"tools/call","params":{"name":"ssh_list_sessions","arguments":"x"}}',
    code: -32602,
    id: 45,
  },
  {
    name: "tools/call without a name",
    line: '{"jsonrpc":"2.0","id":"n","method":"tools/call","params":{"arguments":{}}}',
    code: -32602,
    id: "n",
  },
];

const PROTOTYPE_NAMES = ["toString", "constructor", "__proto__", "hasOwnProperty", "valueOf"];

function toolCall(id: number | string, name: string, args: unknown = {}): string {
  return JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } });
}

Deno.test("over stdio every JSON-RPC request gets an answer and the server keeps serving", async (t) => {
  await using server = await startRawStdio();
  await server.send(JSON.stringify(INIT));
  const init = await server.next("initialize");
  assert.equal(init.id, "init");
  assert.ok(init.result?.serverInfo, JSON.stringify(init));
  await server.send('{"jsonrpc":"2.0","method":"notifications/initialized"}');

  for (const c of CASES) {
    await t.step(`${c.name}: ${c.code} with id ${JSON.stringify(c.id)}`, async () => {
      await server.send(c.line);
      const reply = await server.next(c.name);
      assert.equal(reply.jsonrpc, "2.0");
      assert.deepEqual([reply.error?.code, reply.id], [c.code, c.id], JSON.stringify(reply));
    });
  }

  await t.step("a batch: each request in it is answered -32600 with its own id, the notification not", async () => {
    await server.send(JSON.stringify([
      { jsonrpc: "2.0", id: 50, method: "ping" },
      { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 1 } },
      { jsonrpc: "2.0", id: "b51", method: "tools/list" },
    ]));
    const reply = await server.next("a batch");
    assert.ok(Array.isArray(reply), JSON.stringify(reply));
    assert.deepEqual(reply.map((r: Json) => [r.id, r.error.code]), [[50, -32600], ["b51", -32600]]);
  });

  await t.step("a malformed notification gets no answer: the next line is the ping's", async () => {
    // Written in order: an answer to the notification would come before the ping's.
    await server.send('{"jsonrpc":"1.0","method":"notifications/initialized"}');
    await server.send('{"jsonrpc":"2.0","method":"notifications/initialized","params":null}');
    await server.send('{"jsonrpc":"2.0","id":60,"method":"ping"}');
    const reply = await server.next("ping after malformed notifications");
    assert.deepEqual([reply.id, reply.result], [60, {}], JSON.stringify(reply));
  });

  await t.step("tool names from Object.prototype are unknown tools, like any other", async () => {
    for (const [i, name] of [...PROTOTYPE_NAMES, "no_such_tool"].entries()) {
      await server.send(toolCall(70 + i, name));
      const reply = await server.next(`tools/call ${name}`);
      assert.equal(reply.id, 70 + i);
      assert.equal(reply.result?.isError, true, JSON.stringify(reply));
      assert.equal(reply.result._meta?.code, "INVALID_ARGUMENT", JSON.stringify(reply));
      assert.match(reply.result.content[0].text, /Unknown tool/, JSON.stringify(reply));
      assert.doesNotMatch(reply.result.content[0].text, /disabled/);
    }
  });

  await t.step("afterwards the server serves: ping, tools/list and a tool call", async () => {
    await server.send('{"jsonrpc":"2.0","id":80,"method":"ping"}');
    assert.deepEqual((await server.next("ping")).result, {});
    await server.send('{"jsonrpc":"2.0","id":81,"method":"tools/list"}');
    const list = await server.next("tools/list");
    assert.ok(list.result.tools.some((tool: Json) => tool.name === "ssh_execute"), JSON.stringify(list));
    await server.send(toolCall(82, "ssh_list_sessions"));
    const sessions = await server.next("ssh_list_sessions");
    assert.deepEqual(sessions.result.structuredContent, { sessions: [], hosts: [] }, JSON.stringify(sessions));
  });
});

/** main.ts serving streamable HTTP on a free loopback port, as users run it. */
async function startRawHttp(token: string): Promise<{ url: string } & AsyncDisposable> {
  const home = await Deno.makeTempDir({ prefix: "mcp-jsonrpc-http-home-" });
  const proc = new Deno.Command(Deno.execPath(), {
    args: runArgs("main.ts", ["--transport", "streamable-http", "--port", "0", "--known-hosts", `${home}/kh`]),
    env: {
      HOME: home,
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      DENO_DIR: Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`,
      NO_COLOR: "1",
      MCP_REMOTE_SSH_TOKEN: token,
    },
    clearEnv: true,
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  let onText = () => {};
  const pump = (async () => {
    for await (const chunk of proc.stderr.pipeThrough(new TextDecoderStream())) {
      stderr = (stderr + chunk).slice(-200_000);
      onText();
    }
  })();
  const stop = async () => {
    proc.kill("SIGTERM");
    await proc.status;
    await pump;
    await Deno.remove(home, { recursive: true });
  };
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start:\n${stderr}`)), 30_000);
      onText = () => {
        const m = stderr.match(/listening on (http:\/\/\S+)/);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      };
      proc.status.then(() => reject(new Error(`server exited before listening:\n${stderr}`)));
    });
    return { url, [Symbol.asyncDispose]: stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** The JSON-RPC messages of a streamable HTTP response: a JSON body, or the data lines of an event stream. */
async function messagesOf(response: Response): Promise<Json[]> {
  const text = await response.text();
  if (text.trim() === "") return [];
  if (response.headers.get("content-type")?.includes("text/event-stream")) {
    return text.split("\n").filter((l) => l.startsWith("data: ")).map((l) => JSON.parse(l.slice(6)));
  }
  const body = JSON.parse(text);
  return Array.isArray(body) ? [body] : [body];
}

Deno.test("over streamable HTTP every JSON-RPC request gets its JSON-RPC error code", async (t) => {
  const token = "t-" + crypto.randomUUID().replaceAll("-", "");
  await using server = await startRawHttp(token);
  const headers: Record<string, string> = {
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    authorization: `Bearer ${token}`,
  };
  const post = async (body: string, extra: Record<string, string> = {}) => {
    const response = await fetch(server.url, {
      method: "POST",
      headers: { ...headers, ...extra },
      body,
      signal: AbortSignal.timeout(REPLY_DEADLINE_MS),
    });
    return {
      status: response.status,
      sid: response.headers.get("mcp-session-id"),
      messages: await messagesOf(response),
    };
  };

  await t.step("before a session: a bad initialize gets -32602, not 'initialize first'", async () => {
    const r = await post('{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}');
    assert.equal(r.status, 400);
    assert.deepEqual([r.messages[0]?.error?.code, r.messages[0]?.id], [-32602, 1], JSON.stringify(r.messages));
  });

  const init = await post(JSON.stringify(INIT));
  assert.equal(init.status, 200);
  assert.ok(init.sid !== null);
  const session = { "mcp-session-id": init.sid!, "mcp-protocol-version": "2025-06-18" };
  assert.equal((await post('{"jsonrpc":"2.0","method":"notifications/initialized"}', session)).status, 202);

  for (const c of CASES) {
    await t.step(`${c.name}: ${c.code} with id ${JSON.stringify(c.id)}`, async () => {
      const r = await post(c.line, session);
      assert.equal(r.status, 400);
      const reply = r.messages[0];
      assert.deepEqual([reply?.error?.code, reply?.id], [c.code, c.id], JSON.stringify(r.messages));
    });
  }

  await t.step("a batch with an invalid request: each request answered, none run", async () => {
    const r = await post(
      JSON.stringify([{ jsonrpc: "2.0", id: 90, method: "ping" }, {
        jsonrpc: "2.0",
        id: 91,
        method: "ping",
        params: [],
      }]),
      session,
    );
    assert.equal(r.status, 400);
    assert.deepEqual(r.messages[0].map((m: Json) => [m.id, m.error.code]), [[90, -32600], [91, -32602]]);
  });

  await t.step("a batch of valid requests still runs (control: the SDK serves batches over HTTP)", async () => {
    const r = await post(
      JSON.stringify([{ jsonrpc: "2.0", id: 92, method: "ping" }, { jsonrpc: "2.0", id: 93, method: "ping" }]),
      session,
    );
    assert.equal(r.status, 200);
    assert.deepEqual(r.messages.map((m) => [m.id, m.result]).sort(), [[92, {}], [93, {}]]);
  });

  await t.step("tool names from Object.prototype are unknown tools", async () => {
    for (const name of PROTOTYPE_NAMES) {
      const r = await post(toolCall(100, name), session);
      assert.equal(r.status, 200);
      const reply = r.messages.find((m) => m.id === 100);
      assert.equal(reply?.result?._meta?.code, "INVALID_ARGUMENT", JSON.stringify(r.messages));
      assert.match(reply.result.content[0].text, /Unknown tool/);
    }
  });

  await t.step("afterwards the session serves: tools/list and a tool call", async () => {
    const list = await post('{"jsonrpc":"2.0","id":110,"method":"tools/list"}', session);
    assert.ok(list.messages.find((m) => m.id === 110)?.result.tools.length > 10, JSON.stringify(list.messages));
    const call = await post(toolCall(111, "ssh_list_sessions"), session);
    assert.deepEqual(call.messages.find((m) => m.id === 111)?.result.structuredContent, { sessions: [], hosts: [] });
  });
});
