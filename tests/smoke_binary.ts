/**
 * Smoke check of a built server, as a user's MCP client would start it:
 * `--version` must print the version in deno.json, then an MCP `initialize`
 * and `tools/list` over stdio must answer with every core tool, and neither
 * may write a byte to stderr (a normal start is quiet: issue 20; the binary
 * can only be checked here, where it is built).
 *
 *   deno run -A tests/smoke_binary.ts ./mcp-remote-ssh-x86_64-unknown-linux-gnu
 *   deno run -A tests/smoke_binary.ts deno run -q -P main.ts  (the same checks on the source)
 *
 * The release workflow runs it on each binary, on a native runner, before
 * anything is published. Exits non-zero on any failure.
 */

// @ts-types="@modelcontextprotocol/sdk/client/index"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="@modelcontextprotocol/sdk/client/stdio"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import denoJson from "../deno.json" with { type: "json" };

const CORE_TOOLS = [
  "ssh_connect",
  "ssh_list_sessions",
  "ssh_close_session",
  "ssh_execute",
  "ssh_sudo_execute",
  "ssh_shell_open",
  "ssh_shell_send",
  "ssh_shell_read",
  "ssh_shell_close",
  "ssh_read_remote_file",
  "ssh_write_remote_file",
  "ssh_list_remote_dir",
  "ssh_upload_file",
  "ssh_download_file",
  "ssh_forward_port",
  "ssh_list_forwards",
  "ssh_close_forward",
];

const [command, ...args] = Deno.args;
if (command === undefined) {
  console.error("usage: smoke_binary.ts COMMAND [ARGS...]");
  Deno.exit(2);
}

const version = await new Deno.Command(command, { args: [...args, "--version"], stdout: "piped", stderr: "piped" })
  .output();
const printed = new TextDecoder().decode(version.stdout).trim();
if (version.code !== 0 || printed !== `mcp-remote-ssh ${denoJson.version}`) {
  console.error(`--version printed ${JSON.stringify(printed)} (exit ${version.code}), want ${denoJson.version}`);
  Deno.exit(1);
}
const stderrs = [new TextDecoder().decode(version.stderr)];

const home = await Deno.makeTempDir({ prefix: "mcp-smoke-" });
const transport = new StdioClientTransport({
  command,
  args: [...args, "--known-hosts", `${home}/known_hosts`],
  env: {
    HOME: home,
    USERPROFILE: home,
    PATH: Deno.env.get("PATH") ?? "",
    // Only for `deno run` on the source: its module cache stays where it was.
    DENO_DIR: Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME") ?? home}/.cache/deno`,
  },
  stderr: "pipe",
});
const serverStderr: string[] = [];
transport.stderr?.on("data", (chunk: Uint8Array) => serverStderr.push(new TextDecoder().decode(chunk)));
const client = new Client({ name: "mcp-remote-ssh-smoke", version: "0" });
const timer = setTimeout(() => {
  console.error("no answer within 30 s");
  Deno.exit(1);
}, 30_000);
await client.connect(transport);
const { tools } = await client.listTools();
clearTimeout(timer);
await client.close();
await Deno.remove(home, { recursive: true });
const names = new Set(tools.map((t) => t.name));
const missing = CORE_TOOLS.filter((t) => !names.has(t));
const server = client.getServerVersion();
if (missing.length > 0 || server?.version !== denoJson.version) {
  console.error(`missing tools: ${missing.join(", ") || "none"}; server version ${server?.version}`);
  Deno.exit(1);
}
stderrs.push(serverStderr.join(""));
if (stderrs.some((text) => text !== "")) {
  console.error(`a normal start wrote to stderr:\n--version: ${stderrs[0]}\nserver: ${stderrs[1]}`);
  Deno.exit(1);
}
console.log(`ok: ${printed}, ${tools.length} tools, stderr empty`);
