import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { TOOLSETS } from "../lib/toolsets.ts";
import { inProcess, listTools, modelVisibleBytes } from "./fixtures/tool_list.ts";
import { startServer } from "./fixtures/mcp.ts";

const SNAPSHOT = fileURLToPath(new URL("./tools_list.snapshot.json", import.meta.url));

/**
 * What every turn of every conversation pays for the whole tool list, every
 * toolset on. The later tools (jobs, hosts, guardrails) must fit in it too.
 */
const BUDGET_BYTES = 14_000;

/** The reference server's tools: users switching to this one keep calling them by these names. */
const REFERENCE_TOOLS = [
  "ssh_connect",
  "ssh_list_sessions",
  "ssh_close_session",
  "ssh_execute",
  "ssh_sudo_execute",
  "ssh_shell_open",
  "ssh_shell_send",
  "ssh_shell_read",
  "ssh_shell_send_control",
  "ssh_shell_wait",
  "ssh_upload_file",
  "ssh_download_file",
  "ssh_read_remote_file",
  "ssh_write_remote_file",
  "ssh_list_remote_dir",
  "ssh_forward_port",
  "ssh_list_forwards",
  "ssh_close_forward",
];

Deno.test("tools/list matches the checked-in snapshot (update: deno task snapshot)", async () => {
  const tools = await listTools();
  const text = JSON.stringify(tools, null, 1) + "\n";
  if (Deno.args.includes("--update")) await Deno.writeTextFile(SNAPSHOT, text);
  const expected = await Deno.readTextFile(SNAPSHOT);
  assert.equal(
    text,
    expected,
    "tools/list changed: review the change, then run `deno task snapshot` and commit tests/tools_list.snapshot.json",
  );
});

Deno.test(`the model-visible tool list, every toolset on, is at most ${BUDGET_BYTES} bytes`, async () => {
  const tools = await listTools();
  const total = tools.reduce((sum, t) => sum + modelVisibleBytes(t), 0);
  const biggest = tools.map((t) => `${t.name} ${modelVisibleBytes(t)}`).sort((a, b) =>
    Number(b.split(" ")[1]) - Number(a.split(" ")[1])
  ).slice(0, 5);
  assert.ok(total <= BUDGET_BYTES, `${total} bytes for ${tools.length} tools; biggest: ${biggest.join(", ")}`);
  // Every reference name is still there for users who switch.
  const names = new Set(tools.map((t) => t.name));
  assert.deepEqual(REFERENCE_TOOLS.filter((n) => !names.has(n)), []);
});

Deno.test("no listed schema carries what only costs bytes: $schema, length caps, session_id prose", async () => {
  const tools = await listTools();
  const text = JSON.stringify(tools.map((t) => t.inputSchema));
  assert.doesNotMatch(text, /\$schema|maxLength|9007199254740991/);
  for (const tool of tools) {
    const sessionId = (tool.inputSchema.properties as Record<string, { description?: string }> | undefined)
      ?.session_id;
    assert.equal(sessionId?.description, undefined, `${tool.name}: session_id is described once, in instructions`);
  }
});

Deno.test("--toolsets keeps connect and the sets named; each tool belongs to exactly one set", async () => {
  const all = (await listTools()).map((t) => t.name);
  const seen = new Set<string>();
  for (const set of TOOLSETS) {
    const names = (await listTools(["--toolsets", set])).map((t) => t.name);
    assert.ok(names.includes("ssh_connect"), `${set}: connect is always on`);
    for (const name of names) {
      if (
        !["ssh_connect", "ssh_list_sessions", "ssh_close_session", "ssh_diagnose"].includes(name) || set === "connect"
      ) {
        assert.ok(!seen.has(name) || set === "connect", `${name} is in two toolsets`);
        seen.add(name);
      }
    }
  }
  assert.deepEqual([...seen].sort(), [...all].sort(), "every tool is reachable through some toolset");
  const exec = (await listTools(["--toolsets", "exec"])).map((t) => t.name);
  assert.deepEqual(exec, [
    "ssh_connect",
    "ssh_list_sessions",
    "ssh_close_session",
    "ssh_diagnose",
    "ssh_execute",
    "ssh_sudo_execute",
    "ssh_output_read",
    "ssh_execute_many",
  ]);
  // The config file's list applies when no flag is given; the flag wins over it.
  const fromFile = (await listTools([], { toolsets: ["forward"] })).map((t) => t.name);
  assert.ok(fromFile.includes("ssh_forward_port") && !fromFile.includes("ssh_execute"));
  const flagWins = (await listTools(["--toolsets", "exec"], { toolsets: ["forward"] })).map((t) => t.name);
  assert.ok(flagWins.includes("ssh_execute") && !flagWins.includes("ssh_forward_port"));
});

Deno.test("what can change or end things says so: close_session and writes are destructive, connect is not read-only", async () => {
  const tools = new Map((await listTools()).map((t) => [t.name, t.annotations]));
  assert.equal(tools.get("ssh_close_session")?.destructiveHint, true);
  assert.equal(tools.get("ssh_close_session")?.readOnlyHint, false);
  assert.equal(tools.get("ssh_connect")?.readOnlyHint, false, "accept-new writes known_hosts");
  for (const name of ["ssh_execute", "ssh_write_remote_file", "ssh_manage_remote", "ssh_upload_file"]) {
    assert.equal(tools.get(name)?.destructiveHint, true, name);
  }
  assert.equal(tools.get("ssh_read_remote_file")?.readOnlyHint, true);
});

Deno.test("the listed env schema says its values are strings", async () => {
  const execute = (await listTools()).find((t) => t.name === "ssh_execute")!;
  const env = (execute.inputSchema.properties as Record<string, { additionalProperties?: { type?: string } }>).env;
  assert.equal(env.additionalProperties?.type, "string");
});

Deno.test("an unknown toolset is refused at start, naming the known ones", async () => {
  await assert.rejects(() => listTools(["--toolsets", "exec,shel"]), /Unknown toolset "shel": use connect, exec/);
});

Deno.test("--read-only offers the session tools and those that change nothing, no way to run a command", async () => {
  const tools = await listTools(["--read-only"]);
  const names = tools.map((t) => t.name);
  // Sessions must be opened and closed to do anything; everything else changes nothing.
  assert.deepEqual(names, [
    "ssh_connect",
    "ssh_list_sessions",
    "ssh_close_session",
    "ssh_diagnose",
    "ssh_read_remote_file",
    "ssh_list_remote_dir",
    "ssh_stat_remote",
  ]);
  for (const tool of tools.filter((t) => !["ssh_connect", "ssh_close_session", "ssh_diagnose"].includes(t.name))) {
    assert.equal(tool.annotations?.readOnlyHint, true, tool.name);
  }
  // A tool left out cannot be called by name either.
  await using server = await inProcess(["--read-only"]);
  const result = await server.client.callTool({ name: "ssh_execute", arguments: { session_id: "x", command: "id" } });
  assert.equal(result.isError, true);
  assert.match(JSON.stringify(result.content), /\[INVALID_ARGUMENT\] Unknown tool \\"ssh_execute\\"/);
  // The same from the config file; a file cannot be overridden towards writing by leaving the flag out.
  const fromFile = await listTools([], { read_only: true });
  assert.deepEqual(fromFile.map((t) => t.name), names);
});

Deno.test("the shipped server (deno run -P) applies --read-only and --toolsets", async () => {
  await using server = await startServer({ args: ["--read-only", "--toolsets", "files"] });
  const names = (await server.client.listTools()).tools.map((t) => t.name);
  assert.ok(names.includes("ssh_read_remote_file"), names.join());
  assert.ok(!names.includes("ssh_write_remote_file") && !names.includes("ssh_list_forwards"), names.join());
});
