// The route without /proc (macOS), forced here so that it is tested on Linux
// too. Races against it run under the shipped permission set in
// tests/confinement_chain_test.ts; these check the rule itself.

import assert from "node:assert/strict";
import fs from "node:fs";
import { join } from "node:path";
import { confinementSelfTest, forceConfinementRoute } from "./confined_route.ts";
import { chainProblem } from "./confined_chain.ts";
import { confinedFiles, createFile, LocalPathError, openReadFile, resolveRoots } from "./local_paths.ts";

// chown() to another user needs root; without it those cases are skipped.
const isRoot = Deno.build.os !== "windows" && Deno.uid() === 0;
const OTHER_UID = 54321;

interface Fixture extends AsyncDisposable {
  /** Real path of a fresh private temp dir holding `root`. */
  dir: string;
  root: string;
  roots: string[];
}

/** A private root with `a.txt`, and the chain route in force until disposed. */
async function fixture(): Promise<Fixture> {
  forceConfinementRoute("chain");
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "confined_" }));
  const root = join(dir, "root");
  await Deno.mkdir(root, { mode: 0o755 });
  await Deno.chmod(root, 0o755);
  await Deno.writeTextFile(join(root, "a.txt"), "inside");
  return {
    dir,
    root,
    roots: await resolveRoots([root], dir),
    async [Symbol.asyncDispose]() {
      forceConfinementRoute(null);
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** A directory with exactly `mode` (mkdir's is masked by the umask). */
async function mkdirMode(path: string, mode: number): Promise<void> {
  await Deno.mkdir(path);
  await Deno.chmod(path, mode);
}

async function notPrivate(attempt: () => Promise<unknown>, naming: string): Promise<LocalPathError> {
  let caught: unknown;
  try {
    await attempt();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof LocalPathError, `expected a LocalPathError (not-private), got ${caught}`);
  assert.equal(caught.problem, "not-private", caught.message);
  assert.ok(caught.message.includes(JSON.stringify(naming)), `${caught.message} does not name ${naming}`);
  assert.doesNotMatch(caught.message, /\.$/);
  return caught;
}

async function readThrough(path: string, roots: string[]): Promise<string> {
  const opened = await openReadFile(path, roots);
  try {
    return fs.readFileSync(opened.fd, "utf8");
  } finally {
    fs.closeSync(opened.fd);
  }
}

Deno.test("the chain route passes its self-test and takes the process's user from a file it creates", async () => {
  await using f = await fixture();
  const test = confinementSelfTest();
  assert.ok(test.ok, test.ok ? "" : test.reason);
  assert.equal(test.route, "chain");
  assert.equal(test.owner, (await Deno.lstat(join(f.root, "a.txt"))).uid);
  assert.equal(test.umask & ~0o777, 0);
});

Deno.test("the chain route reads, creates, renames, makes directories and lists in a private chain", async () => {
  await using f = await fixture();
  assert.equal(await readThrough(join(f.root, "a.txt"), f.roots), "inside");

  const files = confinedFiles(f.roots);
  const fd = await createFile(join(f.root, ".new"), f.roots);
  try {
    fs.writeSync(fd, "written");
  } finally {
    fs.closeSync(fd);
  }
  assert.equal((await Deno.lstat(join(f.root, ".new"))).mode! & 0o777, 0o600);
  await files.rename(join(f.root, ".new"), join(f.root, "b.txt"), false);
  assert.equal(await Deno.readTextFile(join(f.root, "b.txt")), "written");

  await files.mkdir(join(f.root, "sub"), 0o755);
  await files.mkdir(join(f.root, "sub", "deeper"), 0o700);
  await Deno.writeTextFile(join(f.root, "sub", "deeper", "c.txt"), "deep");
  assert.equal(await readThrough(join(f.root, "sub", "deeper", "c.txt"), f.roots), "deep");
  await files.symlink("c.txt", join(f.root, "sub", "deeper", "link"));

  const listed = await files.list(join(f.root, "sub", "deeper"));
  assert.deepEqual(listed.map((e) => [e.name, e.type, e.target]), [
    ["c.txt", "file", undefined],
    ["link", "symlink", "c.txt"],
  ]);
  assert.deepEqual((await files.list(f.root)).map((e) => e.name), ["a.txt", "b.txt", "sub"]);

  await files.removeTree(join(f.root, "sub"));
  await files.remove(join(f.root, "b.txt"));
  assert.deepEqual((await files.list(f.root)).map((e) => e.name), ["a.txt"]);
});

Deno.test("the chain route still refuses a final symlink and a parent that is a symlink", async () => {
  await using f = await fixture();
  await Deno.writeTextFile(join(f.dir, "secret.txt"), "outside");
  await Deno.symlink(join(f.dir, "secret.txt"), join(f.root, "link"));
  await Deno.symlink(f.dir, join(f.root, "up"));
  await assert.rejects(() => openReadFile(join(f.root, "link"), f.roots), LocalPathError);
  await assert.rejects(
    () => openReadFile(join(f.root, "up", "secret.txt"), f.roots),
    (e: unknown) => e instanceof LocalPathError && e.problem === "outside-roots",
  );
  await assert.rejects(
    () => createFile(join(f.root, "up", "planted"), f.roots),
    (e: unknown) => e instanceof LocalPathError && e.problem === "outside-roots",
  );
  await assert.rejects(() => Deno.lstat(join(f.dir, "planted")), Deno.errors.NotFound);
});

Deno.test("the chain route refuses a group-writable or world-writable directory on the way, naming it", async () => {
  await using f = await fixture();
  const shared = join(f.root, "shared");
  await mkdirMode(shared, 0o700);
  await mkdirMode(join(shared, "mine"), 0o700);
  await Deno.writeTextFile(join(shared, "mine", "f.txt"), "mine");
  const target = join(shared, "mine", "f.txt");
  assert.equal(await readThrough(target, f.roots), "mine");

  for (const [mode, who] of [[0o770, "its group"], [0o707, "everyone"], [0o777, "its group and everyone"]] as const) {
    await Deno.chmod(shared, mode);
    const error = await notPrivate(() => readThrough(target, f.roots), shared);
    assert.match(error.message, new RegExp(`writable by ${who} \\(mode 0${mode.toString(8)}\\)`));
    assert.match(error.message, /another user could swap its entries between the check and the use/);
    await notPrivate(() => createFile(join(shared, "mine", "new"), f.roots), shared);
    await notPrivate(() => confinedFiles(f.roots).mkdir(join(shared, "mine", "d"), 0o755), shared);
    await notPrivate(() => confinedFiles(f.roots).list(join(shared, "mine")), shared);
  }
  // The directory acted in counts as well.
  await Deno.chmod(shared, 0o700);
  await Deno.chmod(join(shared, "mine"), 0o775);
  await notPrivate(() => readThrough(target, f.roots), join(shared, "mine"));
  await assert.rejects(() => Deno.lstat(join(shared, "mine", "new")), Deno.errors.NotFound);
});

Deno.test("the chain route refuses a directory above the root that others can write", async () => {
  await using f = await fixture();
  // The walk starts at `/`: a writable directory above the root redirects a text path just as well.
  await Deno.chmod(f.dir, 0o777);
  await notPrivate(() => readThrough(join(f.root, "a.txt"), f.roots), f.dir);
  await Deno.chmod(f.dir, 0o700);
  assert.equal(await readThrough(join(f.root, "a.txt"), f.roots), "inside");
});

Deno.test("the chain route accepts a sticky world-writable directory whose next directory is ours", async () => {
  await using f = await fixture();
  const pub = join(f.root, "pub");
  await mkdirMode(pub, 0o1777);
  await mkdirMode(join(pub, "mine"), 0o700);
  await Deno.writeTextFile(join(pub, "mine", "f.txt"), "mine");
  assert.equal(await readThrough(join(pub, "mine", "f.txt"), f.roots), "mine");
  const fd = await createFile(join(pub, "mine", "new"), f.roots);
  fs.closeSync(fd);
  await confinedFiles(f.roots).mkdir(join(pub, "mine", "d"), 0o755);

  // Acting in the sticky directory itself: its entries may have been put there by another user.
  await Deno.writeTextFile(join(pub, "g.txt"), "theirs?");
  const error = await notPrivate(() => readThrough(join(pub, "g.txt"), f.roots), pub);
  assert.match(error.message, /\(mode 1777, sticky\)/);
  await notPrivate(() => createFile(join(pub, "new"), f.roots), pub);
  await assert.rejects(() => Deno.lstat(join(pub, "new")), Deno.errors.NotFound);
});

Deno.test("the chain route does not descend into a shared directory when it removes a tree", async () => {
  await using f = await fixture();
  await mkdirMode(join(f.root, "tree"), 0o755);
  await mkdirMode(join(f.root, "tree", "open"), 0o777);
  await Deno.writeTextFile(join(f.root, "tree", "open", "x"), "x");
  await notPrivate(() => confinedFiles(f.roots).removeTree(join(f.root, "tree")), join(f.root, "tree", "open"));
  assert.equal(await Deno.readTextFile(join(f.root, "tree", "open", "x")), "x");
});

Deno.test({
  name: "the chain route refuses a directory on the way that belongs to another user",
  ignore: !isRoot,
  async fn() {
    await using f = await fixture();
    const theirs = join(f.root, "theirs");
    await mkdirMode(theirs, 0o755);
    await Deno.writeTextFile(join(theirs, "f.txt"), "theirs");
    await Deno.chown(theirs, OTHER_UID, OTHER_UID);
    const error = await notPrivate(() => readThrough(join(theirs, "f.txt"), f.roots), theirs);
    assert.match(error.message, new RegExp(`belongs to another user \\(uid ${OTHER_UID}\\)`));

    // In a sticky directory, the next directory must be ours (or root's) too.
    const pub = join(f.root, "pub");
    await mkdirMode(pub, 0o1777);
    await mkdirMode(join(pub, "planted"), 0o755);
    await Deno.writeTextFile(join(pub, "planted", "f.txt"), "planted");
    await Deno.chown(join(pub, "planted"), OTHER_UID, OTHER_UID);
    await notPrivate(() => readThrough(join(pub, "planted", "f.txt"), f.roots), join(pub, "planted"));
  },
});

Deno.test("chainProblem() allows private directories and sticky shared ones on the way only", () => {
  const info = (mode: number, uid: number) => ({ mode: 0o40000 | mode, uid }) as Deno.FileInfo;
  assert.equal(chainProblem("/a", info(0o755, 501), false, 501), null);
  assert.equal(chainProblem("/a", info(0o700, 0), true, 501), null);
  assert.equal(chainProblem("/tmp", info(0o1777, 0), false, 501), null);
  assert.match(chainProblem("/tmp", info(0o1777, 0), true, 501)!, /sticky/);
  assert.match(chainProblem("/a", info(0o775, 501), false, 501)!, /writable by its group \(mode 0775\)/);
  assert.match(chainProblem("/a", info(0o757, 501), false, 501)!, /writable by everyone/);
  assert.match(chainProblem("/a", info(0o755, 502), false, 501)!, /belongs to another user \(uid 502\)/);
  assert.match(chainProblem("/a", info(0o1777, 502), false, 501)!, /belongs to another user/);
  assert.match(chainProblem("/a", { mode: null, uid: null } as Deno.FileInfo, false, 501)!, /no owner/);
});
