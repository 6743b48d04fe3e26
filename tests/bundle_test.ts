/**
 * The desktop bundle (.mcpb) and the MCP Registry entry (server.json), checked with the tools
 * of their owners: the manifest with the validator of `@anthropic-ai/mcpb`, the bundle packed
 * and unpacked by that package and started with the command its `getMcpConfigForManifest`
 * builds (the substitution of `${__dirname}` and `${user_config.*}` an installing app does),
 * and server.json with Ajv against the registry's schema (tests/fixtures, see
 * packaging/README.md).
 *
 * `deno compile` cannot run here, so the bundle holds a stand-in executable: a shell script
 * that runs main.ts with the production permission set (`-P`), given the arguments unchanged.
 */

import assert from "node:assert/strict";
import { getMcpConfigForManifest, packExtension, unpackExtension, validateManifest } from "@anthropic-ai/mcpb";
// @ts-types="@modelcontextprotocol/sdk/client/index"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="@modelcontextprotocol/sdk/client/stdio"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import denoJson from "../deno.json" with { type: "json" };
import serverJson from "../server.json" with { type: "json" };
import { parseFlags } from "../lib/cli.ts";
import { MANIFEST_URL, platformOf, stageBundle } from "../packaging/mcpb/stage.ts";
import { releaseServerJson, serverJsonProblems } from "../packaging/server_json.ts";
import { runArgs } from "./fixtures/mcp.ts";

const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
];

/**
 * Runs `fn` with console.log captured (mcpb's validator reports there, even when packing is
 * asked to be silent); returns what it logged.
 */
async function captureLog<T>(fn: () => T | Promise<T>): Promise<{ result: T; log: string }> {
  const lines: string[] = [];
  const original = console.log;
  console.log = (...args: unknown[]) => lines.push(args.join(" "));
  try {
    return { result: await fn(), log: lines.join("\n") };
  } finally {
    console.log = original;
  }
}

async function readManifest(): Promise<{ version: string; tools: { name: string }[] }> {
  return JSON.parse(await Deno.readTextFile(MANIFEST_URL));
}

Deno.test("the bundle manifest passes mcpb's own validator, with deno.json's version", async () => {
  const { result, log } = await captureLog(() => validateManifest(MANIFEST_URL.pathname));
  assert.equal(result, true, log);
  assert.equal((await readManifest()).version, denoJson.version);
});

Deno.test("the manifest staged for each release target validates and names that target's OS only", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mcpb-stage-" });
  try {
    const binary = `${dir}/bin`;
    await Deno.writeTextFile(binary, "stand-in");
    for (const target of TARGETS) {
      const out = `${dir}/${target}`;
      const manifest = await stageBundle({ target, binary, outDir: out, repo: "someone/mcp-remote-ssh" });
      const { result, log } = await captureLog(() => validateManifest(`${out}/manifest.json`));
      assert.equal(result, true, `${target}: ${log}`);
      const platform = platformOf(target);
      assert.deepEqual((manifest.compatibility as { platforms: string[] }).platforms, [platform]);
      const file = platform === "win32" ? "mcp-remote-ssh.exe" : "mcp-remote-ssh";
      assert.equal((await Deno.stat(`${out}/server/${file}`)).isFile, true);
      const text = await Deno.readTextFile(`${out}/manifest.json`);
      assert.doesNotMatch(text, /OWNER/);
      assert.match(text, /github\.com\/someone\/mcp-remote-ssh/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseFlags() takes local directories after --, and an empty bundle setting as not given", () => {
  assert.deepEqual(parseFlags(["--", "/a", "-b"]).allowLocalDirs, ["/a", "-b"]);
  assert.deepEqual(parseFlags(["--allow-local-dir", "/a", "--", "/b"]).allowLocalDirs, ["/a", "/b"]);
  assert.deepEqual(parseFlags(["--"]).allowLocalDirs, []);
  const empty = parseFlags(["--host-key-policy=", "--ssh-config=", "--"]);
  assert.equal(empty.hostKeyPolicy, undefined);
  assert.deepEqual(empty.sshConfigs, []);
  assert.equal(parseFlags(["--host-key-policy=accept-new"]).hostKeyPolicy, "accept-new");
  // Before `--` a bare word is still a mistake.
  assert.throws(() => parseFlags(["/a"]), /Unexpected argument "\/a": local directories go after --/);
  assert.throws(() => parseFlags(["--read-only", "yes"]), /Unexpected argument "yes"/);
});

/** A packed and unpacked bundle around the stand-in, and a HOME with an ssh_config. */
interface Installed extends AsyncDisposable {
  dir: string;
  unpacked: string;
  home: string;
}

async function install(): Promise<Installed> {
  const dir = await Deno.makeTempDir({ prefix: "mcpb-bundle-" });
  const standIn = `${dir}/stand-in`;
  const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  const command = [Deno.execPath(), ...runArgs("main.ts")].map(quote).join(" ");
  await Deno.writeTextFile(standIn, `#!/bin/sh\nexec ${command} "$@"\n`, { mode: 0o755 });
  await stageBundle({ target: "x86_64-unknown-linux-gnu", binary: standIn, outDir: `${dir}/stage` });
  const packed = await captureLog(() =>
    packExtension({ extensionPath: `${dir}/stage`, outputPath: `${dir}/b.mcpb`, silent: true })
  );
  assert.equal(packed.result, true, `mcpb pack failed: ${packed.log}`);
  const unpacked = `${dir}/unpacked`;
  assert.equal(await unpackExtension({ mcpbPath: `${dir}/b.mcpb`, outputDir: unpacked, silent: true }), true);
  const home = `${dir}/home`;
  await Deno.mkdir(`${home}/.ssh`, { recursive: true });
  await Deno.writeTextFile(`${home}/.ssh/config`, "Host from-home-config\n  HostName 127.0.0.1\n");
  return { dir, unpacked, home, [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
}

/** The command, arguments and environment an app builds from the unpacked manifest. */
async function mcpConfig(installed: Installed, userConfig: Record<string, string | string[]>) {
  const manifest = JSON.parse(await Deno.readTextFile(`${installed.unpacked}/manifest.json`));
  const config = await getMcpConfigForManifest({
    manifest,
    extensionPath: installed.unpacked,
    systemDirs: { HOME: installed.home, DESKTOP: installed.home, DOCUMENTS: installed.home, DOWNLOADS: installed.home },
    userConfig,
    pathSeparator: "/",
  });
  assert.ok(config, "getMcpConfigForManifest gave no configuration");
  for (const arg of config.args ?? []) assert.doesNotMatch(arg, /\$\{/, `unsubstituted argument ${arg}`);
  return config;
}

/** Starts the server as the app would, and returns the client with what the tests ask of it. */
async function start(
  installed: Installed,
  config: { command: string; args?: string[]; env?: Record<string, string> },
  cwd = installed.home,
) {
  const transport = new StdioClientTransport({
    command: config.command,
    args: config.args,
    env: {
      ...config.env,
      HOME: installed.home,
      PATH: Deno.env.get("PATH") ?? "",
      // Only for the stand-in's `deno run`: its module cache stays where it was.
      DENO_DIR: Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`,
    },
    cwd,
    stderr: "inherit",
  });
  const client = new Client({ name: "bundle-test", version: "0" });
  await client.connect(transport);
  const text = (r: unknown) => ((r as { content: { text: string }[] }).content ?? []).map((c) => c.text).join("\n");
  return {
    client,
    toolNames: async () => (await client.listTools()).tools.map((t) => t.name).sort(),
    hosts: async () => text(await client.callTool({ name: "ssh_list_sessions", arguments: {} })),
    // Local paths are checked before the session is looked up, so the refusal names the allowed roots.
    uploadRefusal: async () =>
      text(
        await client.callTool({
          name: "ssh_upload_file",
          arguments: { session_id: "none", local_path: "/etc/hostname", remote_path: "/tmp/x" },
        }),
      ),
    [Symbol.asyncDispose]: () => client.close(),
  };
}

Deno.test("a packed bundle starts as its manifest says, with the settings it was given", async () => {
  await using installed = await install();
  const local = [`${installed.dir}/work one`, `${installed.dir}/-work-two`];
  for (const d of local) await Deno.mkdir(d);
  const sshConfig = `${installed.dir}/chosen_config`;
  await Deno.writeTextFile(sshConfig, "Host from-chosen-config\n  HostName 127.0.0.1\n");
  const config = await mcpConfig(installed, {
    local_dirs: local,
    host_key_policy: "accept-new",
    ssh_config: sshConfig,
  });
  assert.equal(config.command, `${installed.unpacked}/server/mcp-remote-ssh`);
  assert.deepEqual(config.args, [
    "--host-key-policy=accept-new",
    `--ssh-config=${sshConfig}`,
    "--no-working-dir",
    "--",
    ...local,
  ]);
  await using server = await start(installed, config);
  const manifest = await readManifest();
  assert.deepEqual(await server.toolNames(), manifest.tools.map((t) => t.name).sort(), "manifest tools != tools/list");
  const hosts = await server.hosts();
  assert.match(hosts, /from-chosen-config/);
  assert.doesNotMatch(hosts, /from-home-config/);
  const refusal = await server.uploadRefusal();
  assert.match(refusal, /PATH_NOT_ALLOWED/);
  for (const d of local) assert.ok(refusal.includes(await Deno.realPath(d)), refusal);
});

Deno.test("a packed bundle starts with its optional settings left empty", async () => {
  await using installed = await install();
  // Never configured: the manifest's defaults apply.
  const defaults = await mcpConfig(installed, {});
  assert.deepEqual(defaults.args, ["--host-key-policy=strict", "--ssh-config=", "--no-working-dir", "--"]);
  // Configured, then cleared: every value empty.
  const cleared = await mcpConfig(installed, { local_dirs: [], host_key_policy: "", ssh_config: "" });
  assert.deepEqual(cleared.args, ["--host-key-policy=", "--ssh-config=", "--no-working-dir", "--"]);
  // Started where the app likes, here the bundle's own directory (outside HOME, so without
  // --no-working-dir it would be a local root the user never chose).
  await using server = await start(installed, cleared, installed.unpacked);
  assert.ok((await server.toolNames()).includes("ssh_execute"));
  // An empty ssh_config setting means ~/.ssh/config.
  assert.match(await server.hosts(), /from-home-config/);
  // No folder given: no local files, whatever the working directory.
  const refusal = await server.uploadRefusal();
  assert.match(refusal, /no local roots are configured/);
  assert.match(refusal, /--no-working-dir/);
});

Deno.test("server.json matches the registry's schema, with deno.json's version and a bundle per release target", async () => {
  assert.deepEqual(await serverJsonProblems(serverJson), []);
  assert.equal(serverJson.version, denoJson.version);
  const release = await Deno.readTextFile(new URL("../.github/workflows/release.yml", import.meta.url));
  const built = [...release.matchAll(/^ {10}- ([\w-]+)$/gm)].map((m) => m[1]);
  assert.deepEqual(built, TARGETS, "release.yml builds other targets than this test knows");
  const urls = serverJson.packages.map((p) => p.identifier);
  assert.deepEqual(
    urls,
    TARGETS.map((t) =>
      `https://github.com/OWNER/mcp-remote-ssh/releases/download/v${denoJson.version}/mcp-remote-ssh-${t}.mcpb`
    ),
  );
  for (const p of serverJson.packages) assert.equal(p.version, denoJson.version);
});

Deno.test("the release's server.json gets the repository and each bundle's sha256, and still matches the schema", async () => {
  const sha256 = new Map(TARGETS.map((t, i) => [`mcp-remote-ssh-${t}.mcpb`, String(i).repeat(64)]));
  const version = denoJson.version;
  const doc = releaseServerJson(serverJson, { repo: "someone/ssh-server", version, sha256 });
  assert.deepEqual(await serverJsonProblems(doc), []);
  assert.equal(doc.name, "io.github.someone/ssh-server");
  const packages = doc.packages as { identifier: string; fileSha256: string }[];
  assert.deepEqual(packages.map((p) => p.fileSha256), TARGETS.map((_, i) => String(i).repeat(64)));
  assert.match(packages[0].identifier, /^https:\/\/github\.com\/someone\/ssh-server\/releases\/download\/v/);
  assert.doesNotMatch(JSON.stringify(doc), /OWNER/);
  // deno.json bumped, server.json not: its URLs would name the old release.
  assert.throws(
    () => releaseServerJson(serverJson, { repo: "someone/ssh-server", version: "9.9.9", sha256 }),
    /server.json is at version .*, the release is 9\.9\.9/,
  );
  const stalePackage = structuredClone(serverJson);
  stalePackage.packages[1].identifier = stalePackage.packages[1].identifier.replace(`/v${version}/`, "/v0.0.1/");
  assert.throws(
    () => releaseServerJson(stalePackage, { repo: "someone/ssh-server", version, sha256 }),
    /is not of /,
  );
  sha256.delete(`mcp-remote-ssh-${TARGETS[2]}.mcpb`);
  assert.throws(() => releaseServerJson(serverJson, { repo: "someone/ssh-server", version, sha256 }), /did not build/);
});

Deno.test("the registry schema refuses what the registry refuses", async () => {
  const problems = await serverJsonProblems({
    ...serverJson,
    description: "x".repeat(101),
    packages: [{ ...serverJson.packages[0], fileSha256: "not-hex", version: "latest" }],
  });
  assert.match(problems.join("\n"), /\/description: must NOT have more than 100 characters/);
  assert.match(problems.join("\n"), /\/packages\/0\/fileSha256: must match pattern/);
  assert.match(problems.join("\n"), /\/packages\/0\/version: must NOT be valid/);
});
