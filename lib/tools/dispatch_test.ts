import assert from "node:assert/strict";
// @ts-types="@modelcontextprotocol/sdk/client/index"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="@modelcontextprotocol/sdk/inMemory"
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { z } from "zod";
import { SshMcpError } from "../errors.ts";
import { neutralisedText, ToolServer, unsendableFields } from "./dispatch.ts";

Deno.test("unsendableFields() names every field with NUL, nested names included, except data fields", () => {
  assert.deepEqual(unsendableFields("ssh_execute", { command: "ls", stdin: "a\0b" }), []);
  const found = unsendableFields("ssh_execute", {
    command: "a\0",
    cwd: "/\0",
    env: { "A\0": "x", B: "\0" },
  });
  assert.deepEqual(found.map((f) => f.split(":")[0]), ["command", "cwd", 'env."A\\u0000"', "env.B"]);
  // The data field of one tool is not the data field of another.
  assert.equal(unsendableFields("ssh_sudo_execute", { command: "id", stdin: "\0" }).length, 1);
  assert.match(unsendableFields("ssh_sudo_execute", { password: "a\r\nb" })[0], /password: must be one line/);
  // A tool name from Object.prototype has no table entry of its own.
  assert.equal(unsendableFields("constructor", { x: "\0" }).length, 1);
});

// What a remote side can print to act on a reader: a screen clear, an OSC 52
// clipboard write, an OSC 0 title, a C1 CSI, a bidi override and a lone CR.
const HOSTILE = "\x1b[2J\x1b]52;c;cm0gLXJm\x07\x1b]0;t\x07\u009b31m\u202eexe.txt\rok";
const SHOWN = "\\x1b[2J\\x1b]52;c;cm0gLXJm\\x07\\x1b]0;t\\x07\\x9b31m\\u202eexe.txt\\x0dok";

async function connected(): Promise<Client> {
  const server = new ToolServer({ name: "t", version: "0" });
  server.registerTool("echo", {
    inputSchema: { text: z.string().max(5).describe("Text") },
    outputSchema: { text: z.string() },
  }, ({ text }) => Promise.resolve({ content: [{ type: "text", text }], structuredContent: { text } }));
  server.registerTool(
    "liar",
    { inputSchema: {}, outputSchema: { n: z.number() } },
    () => Promise.resolve({ content: [{ type: "text", text: "x" }], structuredContent: { n: "not a number" } }),
  );
  server.registerTool(
    "remote",
    { inputSchema: { fail: z.boolean() }, outputSchema: { out: z.string() } },
    ({ fail }) => {
      if (fail) {
        throw new SshMcpError("SFTP_NO_SUCH_FILE", `No such file: /tmp/x${HOSTILE}`, { hint: `Check ${HOSTILE}` });
      }
      return Promise.resolve({
        content: [{ type: "text", text: `out: ${HOSTILE}` }],
        structuredContent: { out: HOSTILE },
      });
    },
  );
  const [a, b] = InMemoryTransport.createLinkedPair();
  await server.connect(a);
  const client = new Client({ name: "c", version: "0" });
  await client.connect(b);
  return client;
}

Deno.test("ToolServer answers Object.prototype names as unknown tools, coded", async () => {
  const client = await connected();
  for (const name of ["toString", "constructor", "__proto__", "hasOwnProperty", "nope"]) {
    const r = await client.callTool({ name, arguments: {} });
    assert.equal(r.isError, true);
    assert.equal((r._meta as { code?: string }).code, "INVALID_ARGUMENT", name);
    assert.match(JSON.stringify(r.content), /Unknown tool/);
  }
  await client.close();
});

Deno.test("ToolServer codes argument errors, naming the field, and runs valid calls", async () => {
  const client = await connected();
  const ok = await client.callTool({ name: "echo", arguments: { text: "hi" } });
  assert.deepEqual(ok.structuredContent, { text: "hi" });
  const long = await client.callTool({ name: "echo", arguments: { text: "toolong" } });
  assert.equal((long._meta as { code?: string }).code, "INVALID_ARGUMENT");
  assert.match(JSON.stringify(long.content), /Invalid arguments for echo: text: /);
  const nul = await client.callTool({ name: "echo", arguments: { text: "a\0" } });
  assert.match(JSON.stringify(nul.content), /text: contains NUL/);
  const bad = await client.callTool({ name: "liar", arguments: {} });
  assert.equal((bad._meta as { code?: string }).code, "INTERNAL");
  await client.close();
});

Deno.test("ToolServer answers arguments that are not an object with -32602, not -32603", async () => {
  const client = await connected();
  await assert.rejects(
    client.request(
      { method: "tools/call", params: { name: "echo", arguments: "x" as unknown as Record<string, unknown> } },
      z.object({}).loose(),
    ),
    (error: { code?: number }) => error.code === -32602,
  );
  await client.close();
});

Deno.test("ToolServer shows remote text escaped in results and errors, and keeps structuredContent exact", async () => {
  const client = await connected();
  const ok = await client.callTool({ name: "remote", arguments: { fail: false } });
  assert.deepEqual(ok.content, [{ type: "text", text: `out: ${SHOWN}` }]);
  assert.deepEqual(ok.structuredContent, { out: HOSTILE });
  const failed = await client.callTool({ name: "remote", arguments: { fail: true } });
  assert.equal(failed.isError, true);
  assert.deepEqual(failed.content, [{
    type: "text",
    text: `[SFTP_NO_SUCH_FILE] No such file: /tmp/x${SHOWN}\nHint: Check ${SHOWN}`,
  }]);
  assert.equal((failed._meta as { hint?: string }).hint, `Check ${SHOWN}`);
  assert.equal((failed._meta as { code?: string }).code, "SFTP_NO_SUCH_FILE");
  // A tool name is the client's, but it is quoted back in an error: JSON.stringify leaves U+202E raw.
  const unknown = await client.callTool({ name: "x\u202e", arguments: {} });
  assert.match(JSON.stringify(unknown.content), /Unknown tool \\"x\\\\u202e\\"/);
  await client.close();
});

Deno.test("neutralisedText() returns a clean result as the same object and leaves other content alone", () => {
  const clean = { content: [{ type: "text" as const, text: "fine\n" }], structuredContent: { a: "\x1b" } };
  assert.equal(neutralisedText(clean), clean);
  const image = { type: "image" as const, data: "AAAA", mimeType: "image/png" };
  const mixed = neutralisedText({ content: [image, { type: "text", text: "\x07" }], _meta: { code: "X" } });
  assert.deepEqual(mixed, { content: [image, { type: "text", text: "\\x07" }], _meta: { code: "X" } });
});
