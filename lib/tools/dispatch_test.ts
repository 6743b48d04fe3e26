import assert from "node:assert/strict";
// @ts-types="@modelcontextprotocol/sdk/client/index"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="@modelcontextprotocol/sdk/inMemory"
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { z } from "zod";
import { ToolServer, unsendableFields } from "./dispatch.ts";

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
