/**
 * End to end, under the shipped permission set: local roots are only ones a
 * user chose. A server started in `/` or in the home directory with nothing
 * configured refuses local files; a client that declares the roots capability
 * decides the roots, and its `list_changed` notification moves them;
 * configured roots win over the client's; `local_roots: []` stays off.
 */

import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";
// @ts-types="@modelcontextprotocol/sdk/client/index"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="@modelcontextprotocol/sdk/client/stdio"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
// @ts-types="@modelcontextprotocol/sdk/client/streamableHttp"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
// @ts-types="@modelcontextprotocol/sdk/shared/transport"
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
// @ts-types="@modelcontextprotocol/sdk/types"
import { ListRootsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { call, callOk, type CallResult, connectWithKey, runArgs, startServer } from "./fixtures/mcp.ts";
import { exists, tempDir } from "./fixtures/process.ts";
import { type Sshd, sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable();

/** A remote file to download, and a local file to upload, in every case below. */
async function remoteFile(client: Client, sid: string): Promise<string> {
  const path = `/tmp/mcp-roots-${crypto.randomUUID()}`;
  await callOk(client, "ssh_write_remote_file", { session_id: sid, remote_path: path, content: "remote\n" });
  return path;
}

function download(client: Client, sid: string, remote: string, local: string): Promise<CallResult> {
  return call(client, "ssh_download_file", { session_id: sid, remote_path: remote, local_path: local });
}

function assertNoRoots(r: CallResult, what: string): void {
  assert.equal(r.isError, true, `${what}: ${r.text}`);
  assert.equal(r.code, "PATH_NOT_ALLOWED", `${what}: ${r.text}`);
  assert.match(r.text, /no local roots are configured/, what);
  assert.match(r.text, /--allow-local-dir DIR/, what);
  assert.match(r.text, /"local_roots"/, what);
  assert.match(r.text, /client that sends roots/, what);
}

/** Polls the server's stderr for a line that start-up logs asynchronously. */
async function waitForLog(stderr: () => string, pattern: RegExp): Promise<void> {
  for (let i = 0; i < 200 && !pattern.test(stderr()); i++) await new Promise((r) => setTimeout(r, 50));
  assert.match(stderr(), pattern);
}

Deno.test(
  { name: "a server started in / or in the home directory with no roots refuses local files", ignore: skip },
  async (t) => {
    await using sshd = await startSshd();
    await using base = await tempDir("mcp-roots-");
    const kh = await sshd.writeKnownHosts(`${base.path}/kh`);

    // What a desktop client's default working directory exposes: the user's files, written with overwrite.
    const refuses = async (cwd: string, victimDir: string, env: Record<string, string> = {}) => {
      const victim = `${victimDir}/.bashrc-${crypto.randomUUID()}`;
      await Deno.writeTextFile(victim, "mine\n");
      await using server = await startServer({ args: ["--known-hosts", kh, "--log-level", "info"], cwd, env });
      const c = server.client;
      const sid = await connectWithKey(c, sshd);
      const remote = await remoteFile(c, sid);
      try {
        const down = await call(c, "ssh_download_file", {
          session_id: sid,
          remote_path: remote,
          local_path: victim,
          overwrite: true,
        });
        assertNoRoots(down, `download with cwd ${cwd}`);
        assert.equal(await Deno.readTextFile(victim), "mine\n", "the local file must be untouched");
        const up = await call(c, "ssh_upload_file", {
          session_id: sid,
          local_path: victim,
          remote_path: `${remote}.up`,
        });
        assertNoRoots(up, `upload with cwd ${cwd}`);
        const listed = await callOk(c, "ssh_execute", { session_id: sid, command: `ls ${remote}.up || true` });
        assert.equal(listed.structured.stdout, "", "nothing must have been uploaded");
        // The client declared no roots, so none can ever come: the write permission goes.
        await waitForLog(server.stderr, /No local roots possible and strict host keys: write permission dropped/);
      } finally {
        await callOk(c, "ssh_manage_remote", { action: "remove", session_id: sid, remote_path: remote });
      }
    };

    await t.step("cwd / (as desktop clients start servers)", () => refuses("/", base.path));
    await t.step("cwd is the server's HOME", async () => {
      await using home = await tempDir("mcp-roots-home-");
      await refuses(home.path, home.path, { HOME: home.path });
    });
    await t.step("cwd is above the server's HOME", async () => {
      await using above = await tempDir("mcp-roots-above-");
      await Deno.mkdir(`${above.path}/me`);
      await refuses(above.path, `${above.path}/me`, { HOME: `${above.path}/me` });
    });
    await t.step("control: any other cwd is still the root of last resort", async () => {
      await using cwd = await tempDir("mcp-roots-cwd-");
      await using server = await startServer({ args: ["--known-hosts", kh], cwd: cwd.path });
      const c = server.client;
      const sid = await connectWithKey(c, sshd);
      const remote = await remoteFile(c, sid);
      try {
        await callOk(c, "ssh_download_file", { session_id: sid, remote_path: remote, local_path: "got.txt" });
        assert.equal(await Deno.readTextFile(`${cwd.path}/got.txt`), "remote\n");
        const outside = await download(c, sid, remote, `${base.path}/outside`);
        assert.equal(outside.code, "PATH_NOT_ALLOWED", outside.text);
      } finally {
        await callOk(c, "ssh_manage_remote", { action: "remove", session_id: sid, remote_path: remote });
      }
    });
  },
);

/** An SDK client that declares roots and answers roots/list with `roots()` (plus two that must be skipped). */
async function rootsClient(transport: Transport, roots: () => string[]): Promise<Client> {
  const client = new Client(
    { name: "mcp-remote-ssh-roots-tests", version: "0" },
    { capabilities: { roots: { listChanged: true } } },
  );
  client.setRequestHandler(ListRootsRequestSchema, () => ({
    roots: [
      // Only local file:// roots count; the others are ignored, not fatal.
      { uri: "https://example.invalid/project", name: "not a file" },
      { uri: pathToFileURL(`/nonexistent-${crypto.randomUUID()}`).href, name: "gone" },
      ...roots().map((dir) => ({ uri: pathToFileURL(dir).href, name: "workspace" })),
    ],
  }));
  await client.connect(transport);
  return client;
}

/** A server (shipped permissions, cwd `/`) driven by a client that declares roots and answers roots/list. */
async function startWithRoots(
  args: string[],
  roots: () => string[],
): Promise<{ client: Client; stderr: () => string; home: string } & AsyncDisposable> {
  const home = await tempDir("mcp-roots-home-");
  const transport = new StdioClientTransport({
    command: Deno.execPath(),
    args: runArgs("main.ts", args),
    env: {
      HOME: home.path,
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      DENO_DIR: Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`,
      NO_COLOR: "1",
    },
    cwd: "/",
    stderr: "pipe",
  });
  let stderr = "";
  transport.stderr?.on("data", (chunk: Uint8Array) => (stderr += new TextDecoder().decode(chunk)));
  const client = await rootsClient(transport, roots);
  const close = async () => {
    await client.close();
    await home[Symbol.asyncDispose]();
  };
  return { client, stderr: () => stderr, home: home.path, [Symbol.asyncDispose]: close };
}

async function withSession(sshd: Sshd, client: Client, body: (sid: string, remote: string) => Promise<void>) {
  const sid = await connectWithKey(client, sshd);
  const remote = await remoteFile(client, sid);
  try {
    await body(sid, remote);
  } finally {
    await callOk(client, "ssh_manage_remote", { action: "remove", session_id: sid, remote_path: remote });
  }
}

Deno.test(
  { name: "a client's roots are the local roots, and list_changed moves them", ignore: skip },
  async (t) => {
    await using sshd = await startSshd();
    await using base = await tempDir("mcp-roots-");
    const kh = await sshd.writeKnownHosts(`${base.path}/kh`);
    const a = `${base.path}/a`;
    const b = `${base.path}/b`;
    const configured = `${base.path}/configured`;
    for (const dir of [a, b, configured]) await Deno.mkdir(dir);

    await t.step("the client's root is used, another directory refused; after list_changed the reverse", async () => {
      let roots = [a];
      await using server = await startWithRoots(["--known-hosts", kh, "--log-level", "debug"], () => roots);
      const c = server.client;
      await withSession(sshd, c, async (sid, remote) => {
        await callOk(c, "ssh_download_file", { session_id: sid, remote_path: remote, local_path: `${a}/1` });
        assert.equal(await Deno.readTextFile(`${a}/1`), "remote\n");
        const other = await download(c, sid, remote, `${b}/1`);
        assert.equal(other.code, "PATH_NOT_ALLOWED", other.text);
        assert.match(other.text, /outside the allowed local roots/);
        assert.equal(exists(`${b}/1`), false);

        roots = [b];
        await server.client.sendRootsListChanged();
        await callOk(c, "ssh_download_file", { session_id: sid, remote_path: remote, local_path: `${b}/2` });
        assert.equal(await Deno.readTextFile(`${b}/2`), "remote\n");
        const old = await download(c, sid, remote, `${a}/2`);
        assert.equal(old.code, "PATH_NOT_ALLOWED", old.text);
        assert.equal(exists(`${a}/2`), false);
        const up = await call(c, "ssh_upload_file", {
          session_id: sid,
          local_path: `${a}/1`,
          remote_path: `${remote}.u`,
        });
        assert.equal(up.code, "PATH_NOT_ALLOWED", up.text);

        // A client whose roots are all gone or not local has none.
        roots = [];
        await server.client.sendRootsListChanged();
        assertNoRoots(await download(c, sid, remote, `${b}/3`), "no usable client roots");
        assert.equal(exists(`${b}/3`), false);
      });
      assert.match(server.stderr(), /ignoring the client's root "https:\/\/example\.invalid\/project"/);
      assert.match(server.stderr(), /skipping the client's root "file:\/\/\/nonexistent-/);
      // Roots may arrive at any time, so the write permission is kept.
      assert.doesNotMatch(server.stderr(), /write permission dropped/);
    });

    await t.step("a client root that is / or the home directory is skipped", async () => {
      let roots = ["/"];
      await using server = await startWithRoots(["--known-hosts", kh], () => roots);
      const c = server.client;
      await withSession(sshd, c, async (sid, remote) => {
        assertNoRoots(await download(c, sid, remote, `${a}/slash`), "client root /");
        assert.equal(exists(`${a}/slash`), false);
        roots = [server.home, a];
        await server.client.sendRootsListChanged();
        const home = await download(c, sid, remote, `${server.home}/.bashrc`);
        assert.equal(home.code, "PATH_NOT_ALLOWED", home.text);
        assert.equal(exists(`${server.home}/.bashrc`), false);
        await callOk(c, "ssh_download_file", { session_id: sid, remote_path: remote, local_path: `${a}/narrow` });
      });
      assert.match(server.stderr(), /skipping the client's root "file:\/\/\/": "\/" is the root of the file system/);
      assert.match(server.stderr(), /skipping the client's root "file:\/\/\/[^"]*": "[^"]*" is the home directory/);
    });

    await t.step("configured roots win over the client's", async () => {
      await using server = await startWithRoots(["--known-hosts", kh, "--allow-local-dir", configured], () => [a]);
      const c = server.client;
      await withSession(sshd, c, async (sid, remote) => {
        await callOk(c, "ssh_download_file", { session_id: sid, remote_path: remote, local_path: `${configured}/1` });
        const refused = await download(c, sid, remote, `${a}/configured-1`);
        assert.equal(refused.code, "PATH_NOT_ALLOWED", refused.text);
        assert.equal(exists(`${a}/configured-1`), false);
      });
    });

    await t.step("local_roots: [] stays off whatever the client sends", async () => {
      const config = `${base.path}/off.json`;
      await Deno.writeTextFile(config, JSON.stringify({ local_roots: [] }));
      await using server = await startWithRoots(["--known-hosts", kh, "--config", config], () => [a]);
      const c = server.client;
      await withSession(sshd, c, async (sid, remote) => {
        const r = await download(c, sid, remote, `${a}/off-1`);
        assertNoRoots(r, "local_roots: []");
        assert.match(r.text, /turned off/);
        assert.equal(exists(`${a}/off-1`), false);
      });
    });
  },
);

Deno.test(
  { name: "over HTTP the client's roots are ignored: they name the client's machine", ignore: skip },
  async () => {
    await using sshd = await startSshd();
    await using base = await tempDir("mcp-roots-http-");
    const kh = await sshd.writeKnownHosts(`${base.path}/kh`);
    const a = `${base.path}/a`;
    await Deno.mkdir(a);
    await Deno.mkdir(`${base.path}/home`);
    const token = crypto.randomUUID();
    const proc = new Deno.Command(Deno.execPath(), {
      args: runArgs("main.ts", ["--transport", "streamable-http", "--port", "0", "--known-hosts", kh]),
      env: {
        HOME: `${base.path}/home`,
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
        DENO_DIR: Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`,
        NO_COLOR: "1",
        MCP_REMOTE_SSH_TOKEN: token,
      },
      clearEnv: true,
      cwd: "/",
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const lines = proc.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let stderr = "";
    let url: string | undefined;
    while (url === undefined) {
      const { value, done } = await lines.read();
      assert.equal(done, false, `the server exited before listening:\n${stderr}`);
      stderr += value;
      url = stderr.match(/listening on (http:\/\/\S+)/)?.[1];
    }
    const drain = (async () => {
      while (!(await lines.read()).done) { /* keep the pipe flowing */ }
    })();
    const connect = (roots: string[]) =>
      rootsClient(
        new StreamableHTTPClientTransport(new URL(url), {
          requestInit: { headers: { Authorization: `Bearer ${token}` } },
        }),
        () => roots,
      );
    try {
      const client = await connect([a]);
      try {
        await withSession(sshd, client, async (sid, remote) => {
          // The server runs in `/` and has no configured roots, so nothing is left.
          assertNoRoots(await download(client, sid, remote, `${a}/x`), "client roots over HTTP");
          assert.equal(exists(`${a}/x`), false);
        });
      } finally {
        await client.close();
      }
    } finally {
      proc.kill("SIGTERM");
      await proc.status;
      await drain;
    }
  },
);
