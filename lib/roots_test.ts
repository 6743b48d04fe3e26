import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";
import { SshMcpError } from "./errors.ts";
import { silentLogger } from "./log.ts";
import { type ClientRootsCapability, LocalRoots, type RootsList, workingDirRoot } from "./roots.ts";

async function withTemp(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "mcp-roots-unit-" }));
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A stand-in for the SDK server: initialize with `capabilities`, then list_changed on demand. */
function fakeServer(roots: LocalRoots, capabilities: ClientRootsCapability | undefined) {
  let listChanged = () => {};
  const server: { getClientCapabilities(): ClientRootsCapability | undefined; oninitialized?: () => void } = {
    getClientCapabilities: () => capabilities,
  };
  roots.attach(server, (handler) => (listChanged = handler));
  return { initialized: () => server.oninitialized?.(), listChanged: () => listChanged() };
}

function fileRoots(...dirs: string[]): RootsList {
  return { roots: dirs.map((dir) => ({ uri: pathToFileURL(dir).href })) };
}

function assertNoRoots(error: unknown, why: RegExp): boolean {
  assert.ok(error instanceof SshMcpError);
  assert.equal(error.code, "PATH_NOT_ALLOWED");
  assert.match(error.message, why);
  assert.match(error.hint ?? "", /--allow-local-dir DIR/);
  return true;
}

const refused = { refused: "the working directory was not checked" };

Deno.test("workingDirRoot() refuses the file system root, the home directory and anything above it", async () => {
  await withTemp(async (dir) => {
    const home = `${dir}/home/me`;
    await Deno.mkdir(`${home}/project`, { recursive: true });
    await Deno.symlink(home, `${dir}/link-to-home`);
    assert.match((await workingDirRoot("/", home) as { refused: string }).refused, /root of the file system/);
    assert.match((await workingDirRoot(home, home) as { refused: string }).refused, /is the home directory/);
    assert.match(
      (await workingDirRoot(`${dir}/link-to-home`, home) as { refused: string }).refused,
      /is the home directory/,
      "real paths are compared",
    );
    assert.match((await workingDirRoot(`${dir}/home`, home) as { refused: string }).refused, /contains the home/);
    assert.match((await workingDirRoot(`${home}/project`, undefined) as { refused: string }).refused, /HOME/);
    assert.deepEqual(await workingDirRoot(`${home}/project`, home), { root: `${home}/project` });
    // A prefix sibling is not an ancestor; a home that does not exist is compared as written.
    assert.deepEqual(await workingDirRoot(`${dir}/home`, `${dir}/homex`), { root: `${dir}/home` });
  });
});

Deno.test("LocalRoots: configured roots win and the client is never asked", async () => {
  const roots = new LocalRoots({ configured: ["/srv/work"], off: false, workingDir: refused, logger: silentLogger });
  fakeServer(roots, { roots: { listChanged: true } }).initialized();
  assert.deepEqual(await roots.require(() => Promise.reject(new Error("must not be asked"))), ["/srv/work"]);
  assert.equal(roots.neverAny, false);
});

Deno.test("LocalRoots: local_roots [] stays off whatever the client sends", async () => {
  const roots = new LocalRoots({ configured: [], off: true, workingDir: { root: "/srv" }, logger: silentLogger });
  fakeServer(roots, { roots: {} }).initialized();
  await assert.rejects(roots.require(() => Promise.resolve(fileRoots("/tmp"))), (e) => assertNoRoots(e, /turned off/));
  assert.equal(roots.neverAny, true);
});

Deno.test("LocalRoots: without a client's roots, the working directory only when it was accepted", async () => {
  const accepted = new LocalRoots({ configured: [], off: false, workingDir: { root: "/srv" }, logger: silentLogger });
  fakeServer(accepted, {}).initialized();
  assert.deepEqual(await accepted.require(() => Promise.reject(new Error("no roots capability"))), ["/srv"]);

  const none = new LocalRoots({
    configured: [],
    off: false,
    workingDir: { refused: 'the working directory "/" is the root of the file system' },
    logger: silentLogger,
  });
  fakeServer(none, {}).initialized();
  await assert.rejects(none.require(() => Promise.resolve(fileRoots("/tmp"))), (e) => assertNoRoots(e, /"\/"/));
  assert.equal(none.neverAny, true);
});

Deno.test("LocalRoots: a client's file:// roots that exist are used, others skipped, and list_changed re-reads them", async () => {
  await withTemp(async (dir) => {
    await Deno.mkdir(`${dir}/a`);
    await Deno.mkdir(`${dir}/b`);
    await Deno.mkdir(`${dir}/home`);
    const roots = new LocalRoots({
      configured: [],
      off: false,
      workingDir: { root: dir },
      home: `${dir}/home`,
      logger: silentLogger,
    });
    const client = fakeServer(roots, { roots: { listChanged: true } });
    client.initialized();
    assert.equal(roots.neverAny, false);
    let asked = 0;
    let list: RootsList = {
      roots: [
        { uri: "https://example.invalid/x" },
        { uri: "not a uri" },
        { uri: pathToFileURL(`${dir}/missing`).href },
        // Too broad for anyone to have chosen on purpose: the disk, the home directory, above it.
        ...fileRoots("/", `${dir}/home`, dir).roots,
        ...fileRoots(`${dir}/a`, `${dir}/a/`).roots,
      ],
    };
    const ask = () => (asked++, Promise.resolve(list));
    // Concurrent calls share one request; the working directory is not a fallback.
    assert.deepEqual(await Promise.all([roots.require(ask), roots.require(ask)]), [[`${dir}/a`], [`${dir}/a`]]);
    assert.equal(asked, 1);
    assert.deepEqual(await roots.require(ask), [`${dir}/a`]);
    assert.equal(asked, 1, "the list is read again only after list_changed");

    list = fileRoots(`${dir}/b`);
    client.listChanged();
    assert.deepEqual(await roots.require(ask), [`${dir}/b`]);
    assert.deepEqual(roots.current(), [`${dir}/b`]);
    assert.equal(asked, 2);

    list = { roots: [] };
    client.listChanged();
    await assert.rejects(roots.require(ask), (e) => assertNoRoots(e, /empty roots list/));
    assert.deepEqual(roots.current(), []);
  });
});

Deno.test("LocalRoots: a client that cannot answer roots/list has no roots, and is asked again next time", async () => {
  await withTemp(async (dir) => {
    const roots = new LocalRoots({
      configured: [],
      off: false,
      workingDir: { root: dir },
      home: "/nonexistent-home",
      logger: silentLogger,
    });
    fakeServer(roots, { roots: {} }).initialized();
    await assert.rejects(
      roots.require(() => Promise.reject(new Error("Request timed out"))),
      (e) => assertNoRoots(e, /did not answer roots\/list: Request timed out/),
    );
    assert.deepEqual(await roots.require(() => Promise.resolve(fileRoots(dir))), [dir]);
  });
});

Deno.test("LocalRoots: a client that skipped notifications/initialized is still judged by its capabilities", async () => {
  await withTemp(async (dir) => {
    const roots = new LocalRoots({
      configured: [],
      off: false,
      workingDir: { root: "/srv" },
      home: "/nonexistent-home",
      logger: silentLogger,
    });
    fakeServer(roots, { roots: {} }); // initialize answered, no `initialized` notification
    assert.deepEqual(await roots.require(() => Promise.resolve(fileRoots(dir))), [dir]);
  });
});
