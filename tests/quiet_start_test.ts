/**
 * A normal start prints nothing on stderr: clients show a server's stderr in their logs, and a warning
 * there that the user cannot act on reads as a fault. Run the ways the README tells users to run it.
 *
 * @module
 */

import assert from "node:assert/strict";
// @ts-types="@modelcontextprotocol/sdk/client/index"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="@modelcontextprotocol/sdk/client/stdio"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { ROOT, serverEnv } from "./fixtures/mcp.ts";

const README = await Deno.readTextFile(`${ROOT}README.md`);

/** The code block under `## Quick start`, which a test below runs as written. */
function quickStartBlock(): string {
  const section = README.split("\n## Quick start\n")[1]?.split("\n## ")[0];
  assert.ok(section !== undefined, "README has a Quick start section");
  const block = section.split("```sh\n")[1]?.split("```")[0];
  assert.ok(block !== undefined, "the Quick start section has a sh block");
  return block;
}

Deno.test("the README's quick start runs the server: it answers, and stderr stays empty", async () => {
  const line = quickStartBlock().split("\n").find((l) => !l.startsWith("#") && /\btask\b.* start$/.test(l));
  assert.ok(line !== undefined, "the quick start has a line that starts the server");
  const home = await Deno.makeTempDir({ prefix: "mcp-quiet-" });
  try {
    const out = await new Deno.Command("sh", {
      args: ["-c", line],
      cwd: ROOT,
      // npm's weekly "new version of npm available" notice is npm's, shown whatever it runs: off here,
      // so what is asserted is what Deno and the server print. npm's own cache stays the user's, so
      // npx does not fetch Deno again for the empty HOME.
      env: {
        ...serverEnv(home),
        npm_config_update_notifier: "false",
        npm_config_cache: Deno.env.get("npm_config_cache") ?? `${Deno.env.get("HOME")}/.npm`,
      },
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    const replies = stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(replies.find((r) => r.id === 1)?.result?.serverInfo?.name, "mcp-remote-ssh");
    assert.ok((replies.find((r) => r.id === 2)?.result?.tools?.length ?? 0) > 10, stdout.slice(0, 500));
    assert.equal(stderr, "", "a normal start writes nothing to stderr");
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("the checkout command of the client snippets starts silently from any directory", async () => {
  // The README's "From a checkout" snippet, with the checkout's real path, started as a desktop client
  // starts it: from `/`, talking MCP through the SDK's client.
  const args = ["run", "-q", "-P", "--v8-flags=--max-semi-space-size=1", "--config", "DIR/deno.json", "DIR/main.ts"];
  assert.ok(
    README.includes(JSON.stringify(args.map((a) => a.replace("DIR", "/path/to/mcp-remote-ssh"))).replaceAll(",", ", ")),
    "README shows this command",
  );
  const home = await Deno.makeTempDir({ prefix: "mcp-quiet-" });
  const transport = new StdioClientTransport({
    command: Deno.execPath(),
    args: args.map((a) => a.replace("DIR/", ROOT)),
    env: serverEnv(home),
    cwd: "/",
    stderr: "pipe",
  });
  let stderr = "";
  transport.stderr?.on("data", (chunk: Uint8Array) => stderr += new TextDecoder().decode(chunk));
  const client = new Client({ name: "quiet-start", version: "0" });
  try {
    await client.connect(transport);
    const { tools } = await client.listTools();
    assert.ok(tools.length > 10);
  } finally {
    await client.close();
    await Deno.remove(home, { recursive: true });
  }
  assert.equal(stderr, "", "a normal start writes nothing to stderr");
});

Deno.test("every npm package with install scripts is denied them by name, so Deno has nothing to warn about", async () => {
  // ssh2's install script builds an optional native crypto binding and cpu-features is an optional
  // native add-on ssh2 uses to order ciphers: under Deno neither can load (no --allow-ffi), ssh2 runs
  // on node:crypto, and the cipher order is ours (lib/ssh/connect.ts). Denying them is the decision;
  // a new dependency with scripts must be decided on too, not warned about at a user's first start.
  const lock = JSON.parse(await Deno.readTextFile(`${ROOT}deno.lock`));
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  const withScripts = Object.entries(lock.npm as Record<string, { scripts?: boolean }>)
    .filter(([, entry]) => entry.scripts === true)
    .map(([id]) => id.replace(/@[^@]+$/, ""));
  assert.ok(withScripts.includes("ssh2"), `deno.lock lists ssh2 as having scripts: ${withScripts}`);
  const denied: string[] = config.allowScripts?.deny ?? [];
  assert.deepEqual(withScripts.filter((name) => !denied.includes(`npm:${name}`)), []);
  assert.equal(config.nodeModulesDir, "none", "no node_modules: scripts could not run anyway");
});
