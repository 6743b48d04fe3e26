import assert from "node:assert/strict";
import fs from "node:fs";
import { join } from "node:path";
import {
  createFile,
  isInside,
  LocalPathError,
  type LocalPathProblem,
  openReadFile,
  resolveReadDir,
  resolveReadFile,
  resolveRoots,
  resolveWriteDir,
  resolveWriteFile,
} from "./local_paths.ts";

interface Fixture extends AsyncDisposable {
  /** Real path of a fresh temp dir; everything outside `root` is "outside". */
  dir: string;
  /** Real path of the only allowed root, `dir/root`. */
  root: string;
  roots: string[];
}

async function fixture(): Promise<Fixture> {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "local_paths_" }));
  const root = join(dir, "root");
  await Deno.mkdir(root);
  await Deno.writeTextFile(join(root, "a.txt"), "inside");
  await Deno.writeTextFile(join(dir, "secret.txt"), "outside");
  return {
    dir,
    root,
    roots: await resolveRoots([root], dir),
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function refused(
  attempt: () => Promise<unknown>,
  problem: LocalPathProblem,
  path?: string,
): Promise<LocalPathError> {
  let caught: unknown;
  try {
    await attempt();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof LocalPathError, `expected a LocalPathError (${problem}), got ${caught}`);
  assert.equal(caught.problem, problem, caught.message);
  if (path !== undefined) assert.equal(caught.path, path);
  assert.doesNotMatch(caught.message, /\.$/);
  return caught;
}

Deno.test("resolveReadFile() returns the real path of a file inside a root", async () => {
  await using f = await fixture();
  const p = join(f.root, "a.txt");
  assert.equal(await resolveReadFile(p, { roots: f.roots, cwd: "/" }), p);
});

Deno.test("resolveReadFile() resolves relative paths against cwd", async () => {
  await using f = await fixture();
  const expected = join(f.root, "a.txt");
  assert.equal(await resolveReadFile("a.txt", { roots: f.roots, cwd: f.root }), expected);
  assert.equal(await resolveReadFile("root/a.txt", { roots: f.roots, cwd: f.dir }), expected);
  assert.equal(await resolveReadFile("./x/../a.txt", { roots: f.roots, cwd: f.root }), expected);
});

Deno.test("resolveReadFile() refuses a ../ escape", async () => {
  await using f = await fixture();
  for (const p of ["../secret.txt", "../../../../../../etc/passwd", "./../root/../secret.txt"]) {
    await refused(() => resolveReadFile(p, { roots: f.roots, cwd: f.root }), "outside-roots", p);
  }
});

Deno.test("resolveReadFile() does not reveal whether a path outside the roots exists", async () => {
  await using f = await fixture();
  const opts = { roots: f.roots, cwd: f.root };
  await refused(() => resolveReadFile("../secret.txt", opts), "outside-roots");
  await refused(() => resolveReadFile("../no-such-file", opts), "outside-roots");
  await refused(() => resolveReadFile("/no-such-dir/x", opts), "outside-roots");
  await refused(() => resolveReadFile("no-such-file", opts), "not-found");
});

Deno.test("resolveReadFile() refuses /etc/passwd", async () => {
  await using f = await fixture();
  await refused(() => resolveReadFile("/etc/passwd", { roots: f.roots, cwd: f.root }), "outside-roots", "/etc/passwd");
});

Deno.test("resolveReadFile() refuses a private key outside the roots", async () => {
  await using f = await fixture();
  const ssh = join(f.dir, "home", ".ssh");
  await Deno.mkdir(ssh, { recursive: true });
  await Deno.writeTextFile(join(ssh, "id_ed25519"), "-----BEGIN OPENSSH PRIVATE KEY-----");
  const opts = { roots: f.roots, cwd: f.root };
  await refused(() => resolveReadFile(join(ssh, "id_ed25519"), opts), "outside-roots");
  await refused(() => resolveReadFile("../home/.ssh/id_ed25519", opts), "outside-roots");
  // "~" is not expanded here: it is an ordinary (missing) name inside the root.
  await refused(() => resolveReadFile("~/.ssh/id_ed25519", opts), "not-found");
});

Deno.test("resolveReadFile() refuses a sibling whose name starts with the root's name", async () => {
  await using f = await fixture();
  const evil = join(f.dir, "root-evil");
  await Deno.mkdir(evil);
  await Deno.writeTextFile(join(evil, "x.txt"), "evil");
  await refused(() => resolveReadFile(join(evil, "x.txt"), { roots: f.roots, cwd: f.root }), "outside-roots");
  await refused(() => resolveReadFile("../root-evil/x.txt", { roots: f.roots, cwd: f.root }), "outside-roots");
  await refused(() => resolveReadDir(evil, { roots: f.roots, cwd: f.root }), "outside-roots");
});

Deno.test("isInside() uses true containment, not string prefixes", () => {
  assert.equal(isInside("/work", ["/work"]), true);
  assert.equal(isInside("/work/a/b", ["/work"]), true);
  assert.equal(isInside("/work-evil", ["/work"]), false);
  assert.equal(isInside("/work-evil/a", ["/work"]), false);
  assert.equal(isInside("/workx", ["/work"]), false);
  assert.equal(isInside("/", ["/work"]), false);
  assert.equal(isInside("/work/../etc", ["/work"]), false);
  assert.equal(isInside("/anything", ["/"]), true);
  assert.equal(isInside("/b/x", ["/a", "/b"]), true);
  assert.equal(isInside("/work/a", []), false);
});

Deno.test("isInside() fails closed on relative paths and roots", () => {
  assert.equal(isInside("work/a", ["/work"]), false);
  assert.equal(isInside("/work/a", ["work"]), false);
  assert.equal(isInside("/work/a", [""]), false);
});

Deno.test("resolveReadFile() refuses a symlink inside a root that points outside", async () => {
  await using f = await fixture();
  await Deno.symlink(join(f.dir, "secret.txt"), join(f.root, "link.txt"));
  await Deno.symlink(f.dir, join(f.root, "linkdir"));
  await Deno.symlink("/etc/passwd", join(f.root, "passwd"));
  const opts = { roots: f.roots, cwd: f.root };
  await refused(() => resolveReadFile("link.txt", opts), "outside-roots");
  await refused(() => resolveReadFile("linkdir/secret.txt", opts), "outside-roots");
  await refused(() => resolveReadFile("passwd", opts), "outside-roots");
  await refused(() => resolveReadDir("linkdir", opts), "outside-roots");
});

Deno.test("resolveReadFile() follows a symlink that stays inside and returns the real path", async () => {
  await using f = await fixture();
  await Deno.mkdir(join(f.root, "sub"));
  await Deno.symlink("../a.txt", join(f.root, "sub", "link.txt"));
  await Deno.symlink(join(f.root, "sub"), join(f.root, "subdir-link"));
  const opts = { roots: f.roots, cwd: f.root };
  assert.equal(await resolveReadFile("sub/link.txt", opts), join(f.root, "a.txt"));
  assert.equal(await resolveReadFile("subdir-link/link.txt", opts), join(f.root, "a.txt"));
  assert.equal(await resolveReadDir("subdir-link", opts), join(f.root, "sub"));
});

Deno.test("resolveReadFile() refuses a dangling symlink as not found", async () => {
  await using f = await fixture();
  await Deno.symlink(join(f.root, "missing"), join(f.root, "dangling-in"));
  await Deno.symlink(join(f.dir, "missing"), join(f.root, "dangling-out"));
  const opts = { roots: f.roots, cwd: f.root };
  await refused(() => resolveReadFile("dangling-in", opts), "not-found", "dangling-in");
  await refused(() => resolveReadFile("dangling-out", opts), "not-found", "dangling-out");
});

Deno.test("resolveReadFile() refuses a symlink loop as not found", async () => {
  await using f = await fixture();
  await Deno.symlink("loop2", join(f.root, "loop1"));
  await Deno.symlink("loop1", join(f.root, "loop2"));
  await refused(() => resolveReadFile("loop1", { roots: f.roots, cwd: f.root }), "not-found");
});

Deno.test("resolveWriteFile() refuses a dangling symlink as the destination", async () => {
  await using f = await fixture();
  await Deno.symlink(join(f.root, "missing"), join(f.root, "dangling-in"));
  await Deno.symlink(join(f.dir, "pwned"), join(f.root, "dangling-out"));
  for (const p of ["dangling-in", "dangling-out"]) {
    await refused(() => resolveWriteFile(p, { roots: f.roots, cwd: f.root, overwrite: true }), "not-a-regular-file", p);
  }
});

Deno.test("resolveWriteFile() refuses a symlinked parent directory that points outside", async () => {
  await using f = await fixture();
  await Deno.symlink(f.dir, join(f.root, "out"));
  const opts = { roots: f.roots, cwd: f.root, overwrite: true };
  await refused(() => resolveWriteFile("out/pwned", opts), "outside-roots", "out/pwned");
  await refused(() => resolveWriteFile("out/secret.txt", opts), "outside-roots");
  await refused(() => resolveWriteFile("out/missing/pwned", opts), "outside-roots");
});

Deno.test("resolveWriteFile() writes through a symlinked parent that stays inside, at its real path", async () => {
  await using f = await fixture();
  await Deno.mkdir(join(f.root, "sub"));
  await Deno.symlink(join(f.root, "sub"), join(f.root, "sub-link"));
  const opts = { roots: f.roots, cwd: f.root, overwrite: false };
  assert.equal(await resolveWriteFile("sub-link/new.txt", opts), join(f.root, "sub", "new.txt"));
});

Deno.test("resolveWriteFile() refuses a destination symlink even when it points inside", async () => {
  await using f = await fixture();
  await Deno.symlink(join(f.root, "a.txt"), join(f.root, "link.txt"));
  for (const overwrite of [false, true]) {
    const opts = { roots: f.roots, cwd: f.root, overwrite };
    const error = await refused(() => resolveWriteFile("link.txt", opts), "not-a-regular-file");
    assert.match(error.message, /symbolic link/);
  }
});

Deno.test("resolveWriteFile() refuses destinations outside the roots", async () => {
  await using f = await fixture();
  const opts = { roots: f.roots, cwd: f.root, overwrite: true };
  await refused(() => resolveWriteFile("../pwned", opts), "outside-roots");
  await refused(() => resolveWriteFile("/etc/passwd", opts), "outside-roots");
  await refused(() => resolveWriteFile(join(f.dir, "root-evil", "x"), opts), "outside-roots");
  await refused(() => resolveWriteFile(f.root, opts), "outside-roots");
  await assert.rejects(Deno.lstat(join(f.dir, "pwned")), Deno.errors.NotFound);
});

Deno.test("resolveWriteFile() refuses a missing parent directory as not found", async () => {
  await using f = await fixture();
  const opts = { roots: f.roots, cwd: f.root, overwrite: false };
  await refused(() => resolveWriteFile("missing/x.txt", opts), "not-found", "missing/x.txt");
  await refused(() => resolveWriteFile("a.txt/x.txt", opts), "not-a-directory");
});

Deno.test("resolveWriteFile() refuses a final component that names no file", async () => {
  await using f = await fixture();
  await Deno.mkdir(join(f.root, "sub"));
  const opts = { roots: f.roots, cwd: f.root, overwrite: true };
  for (const p of [".", "..", "sub/.", "sub/..", "sub/", "/", join(f.root, "sub") + "/"]) {
    await refused(() => resolveWriteFile(p, opts), "invalid", p);
  }
});

Deno.test("resolveWriteFile() refuses an existing file unless overwrite is set", async () => {
  await using f = await fixture();
  const expected = join(f.root, "a.txt");
  await refused(() => resolveWriteFile("a.txt", { roots: f.roots, cwd: f.root, overwrite: false }), "exists");
  assert.equal(await resolveWriteFile("a.txt", { roots: f.roots, cwd: f.root, overwrite: true }), expected);
  assert.equal(
    await resolveWriteFile("new.txt", { roots: f.roots, cwd: f.root, overwrite: false }),
    join(f.root, "new.txt"),
  );
  // Nothing was created or changed by the checks.
  assert.equal(await Deno.readTextFile(expected), "inside");
  await assert.rejects(Deno.lstat(join(f.root, "new.txt")), Deno.errors.NotFound);
});

Deno.test("resolveReadFile() and resolveWriteFile() refuse a directory given as a file", async () => {
  await using f = await fixture();
  await Deno.mkdir(join(f.root, "sub"));
  await refused(() => resolveReadFile("sub", { roots: f.roots, cwd: f.root }), "is-a-directory");
  await refused(() => resolveReadFile(f.root, { roots: f.roots, cwd: f.root }), "is-a-directory");
  await refused(() => resolveWriteFile("sub", { roots: f.roots, cwd: f.root, overwrite: true }), "is-a-directory");
});

Deno.test("resolveReadDir() refuses a file given as a directory", async () => {
  await using f = await fixture();
  await refused(() => resolveReadDir("a.txt", { roots: f.roots, cwd: f.root }), "not-a-directory");
  await refused(() => resolveReadDir("missing", { roots: f.roots, cwd: f.root }), "not-found");
});

Deno.test("resolveReadDir() accepts a root itself", async () => {
  await using f = await fixture();
  assert.equal(await resolveReadDir(f.root, { roots: f.roots, cwd: "/" }), f.root);
  assert.equal(await resolveReadDir(".", { roots: f.roots, cwd: f.root }), f.root);
  assert.equal(await resolveReadDir("root", { roots: f.roots, cwd: f.dir }), f.root);
  await refused(() => resolveReadDir("..", { roots: f.roots, cwd: f.root }), "outside-roots");
});

Deno.test("resolveReadFile() refuses a FIFO without opening it", async (t) => {
  await using f = await fixture();
  const fifo = join(f.root, "fifo");
  let made = false;
  try {
    made = (await new Deno.Command("mkfifo", { args: [fifo], stdout: "null", stderr: "null" }).output()).success;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  if (!made) {
    console.warn(`${t.name}: skipped, mkfifo is not available`);
    return;
  }
  // Opening a FIFO with no writer blocks forever, so this returning at all
  // shows that the check never opened it.
  const opts = { roots: f.roots, cwd: f.root };
  const error = await refused(() => resolveReadFile("fifo", opts), "not-a-regular-file");
  assert.match(error.message, /FIFO/);
  await refused(() => resolveReadDir("fifo", opts), "not-a-directory");
  await refused(() => resolveWriteFile("fifo", { ...opts, overwrite: true }), "not-a-regular-file");
});

Deno.test("resolveReadFile() refuses a device", async () => {
  await using f = await fixture();
  await Deno.symlink("/dev/null", join(f.root, "null"));
  await refused(() => resolveReadFile("null", { roots: f.roots, cwd: f.root }), "outside-roots");
  // With /dev as a root, only the file type is left to refuse it.
  const dev = await resolveRoots(["/dev"], "/");
  const error = await refused(() => resolveReadFile("/dev/null", { roots: dev, cwd: "/" }), "not-a-regular-file");
  assert.match(error.message, /character device/);
  await refused(() => resolveWriteFile("/dev/null", { roots: dev, cwd: "/", overwrite: true }), "not-a-regular-file");
});

Deno.test("resolveReadFile() refuses a unix socket", async () => {
  await using f = await fixture();
  const socket = join(f.root, "sock");
  const listener = Deno.listen({ transport: "unix", path: socket });
  try {
    const opts = { roots: f.roots, cwd: f.root };
    const error = await refused(() => resolveReadFile("sock", opts), "not-a-regular-file");
    assert.match(error.message, /socket/);
    await refused(() => resolveWriteFile("sock", { ...opts, overwrite: true }), "not-a-regular-file");
  } finally {
    listener.close();
  }
});

Deno.test("every check refuses empty, NUL and overlong paths as invalid", async () => {
  await using f = await fixture();
  const long = "a/".repeat(2500);
  const opts = { roots: f.roots, cwd: f.root, overwrite: true };
  for (const p of ["", "a\0b", "a.txt\0", long, "x".repeat(5000)]) {
    await refused(() => resolveReadFile(p, opts), "invalid", p);
    await refused(() => resolveReadDir(p, opts), "invalid", p);
    await refused(() => resolveWriteFile(p, opts), "invalid", p);
    await refused(() => resolveRoots([p], f.dir), "invalid", p);
  }
  // One component over NAME_MAX is refused by the kernel, not by our length check.
  await refused(() => resolveReadFile("n".repeat(300), opts), "invalid");
  await refused(() => resolveWriteFile("n".repeat(300), opts), "invalid");
});

Deno.test("resolveRoots() throws for a root that does not exist", async () => {
  await using f = await fixture();
  await refused(() => resolveRoots([f.root, join(f.dir, "missing")], f.dir), "not-found", join(f.dir, "missing"));
  await refused(() => resolveRoots(["missing"], f.dir), "not-found", "missing");
});

Deno.test("resolveRoots() throws for a root that is a file", async () => {
  await using f = await fixture();
  await refused(() => resolveRoots([join(f.root, "a.txt")], f.dir), "not-a-directory");
});

Deno.test("resolveRoots() makes roots absolute and real", async () => {
  await using f = await fixture();
  await Deno.symlink(f.root, join(f.dir, "root-link"));
  assert.deepEqual(await resolveRoots(["root-link", "root", "./root/../root"], f.dir), [f.root]);
  // A file reached through the link is inside the real root.
  const roots = await resolveRoots(["root-link"], f.dir);
  assert.equal(await resolveReadFile(join(f.dir, "root-link", "a.txt"), { roots, cwd: "/" }), join(f.root, "a.txt"));
});

// Whether `mkfifo` can be run at all; the FIFO tests are ignored without it.
const hasMkfifo = await new Deno.Command("mkfifo", { args: ["--version"], stdout: "null", stderr: "null" })
  .output()
  .then(() => true, () => false);

async function mkfifo(path: string): Promise<void> {
  const { success } = await new Deno.Command("mkfifo", { args: [path], stdout: "null", stderr: "null" }).output();
  assert.ok(success, `mkfifo ${path} failed`);
}

/**
 * Files under `dir` that this process still holds open (Linux only; elsewhere
 * always empty), to show that refused opens close what they opened.
 */
async function openFilesUnder(dir: string): Promise<string[]> {
  const found: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir("/proc/self/fd"));
  } catch {
    return found;
  }
  for (const entry of entries) {
    const target = await Deno.readLink(`/proc/self/fd/${entry.name}`).catch(() => null);
    if (target !== null && (target === dir || target.startsWith(dir + "/"))) found.push(target);
  }
  return found;
}

async function names(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir), (entry) => entry.name)).sort();
}

// openReadFile() and createFile() are given paths that were checked earlier;
// these tests call them on paths swapped after that check, as an attacker
// racing the check would leave them.

Deno.test("openReadFile() opens a regular file inside and returns its size and permission bits", async () => {
  await using f = await fixture();
  const p = join(f.root, "tool");
  await Deno.writeTextFile(p, "#!/bin/sh\necho hi\n");
  await Deno.chmod(p, 0o4755);
  assert.equal((await Deno.stat(p)).mode! & 0o7777, 0o4755);
  const opened = await openReadFile(p, f.roots);
  try {
    assert.equal(opened.size, 18);
    assert.equal(opened.mode, 0o755);
    assert.equal(fs.readFileSync(opened.fd, "utf8"), "#!/bin/sh\necho hi\n");
  } finally {
    fs.closeSync(opened.fd);
  }
  await Deno.chmod(join(f.root, "a.txt"), 0o640);
  const plain = await openReadFile(join(f.root, "a.txt"), f.roots);
  try {
    assert.equal(plain.size, 6);
    assert.equal(plain.mode, 0o640);
    assert.equal(fs.readFileSync(plain.fd, "utf8"), "inside");
  } finally {
    fs.closeSync(plain.fd);
  }
  assert.deepEqual(await openFilesUnder(f.dir), []);
});

Deno.test({
  name: "openReadFile() refuses a file swapped for a FIFO without blocking on it",
  ignore: !hasMkfifo,
  async fn() {
    await using f = await fixture();
    const fifo = join(f.root, "fifo");
    await mkfifo(fifo);
    // Nothing ever opens the FIFO for writing: an open that waited for a
    // writer would never return, so this returning at all shows it did not.
    const error = await refused(() => openReadFile(fifo, f.roots), "not-a-regular-file", fifo);
    assert.match(error.message, /not a regular file/);
    assert.deepEqual(await openFilesUnder(f.dir), []);
  },
});

Deno.test("openReadFile() refuses a file swapped for a symlink, even one pointing to a file inside", async () => {
  await using f = await fixture();
  await Deno.symlink(join(f.root, "a.txt"), join(f.root, "link-in"));
  await Deno.symlink("a.txt", join(f.root, "link-relative"));
  await Deno.symlink(join(f.dir, "secret.txt"), join(f.root, "link-out"));
  await Deno.symlink("/etc/passwd", join(f.root, "link-passwd"));
  await Deno.symlink(join(f.root, "missing"), join(f.root, "link-dangling"));
  for (const name of ["link-in", "link-relative", "link-out", "link-passwd", "link-dangling"]) {
    const p = join(f.root, name);
    const error = await refused(() => openReadFile(p, f.roots), "not-a-regular-file", p);
    assert.match(error.message, /symbolic link/);
  }
  assert.deepEqual(await openFilesUnder(f.dir), []);
});

Deno.test("openReadFile() refuses a file reached through a parent directory swapped for a link outside", async () => {
  await using f = await fixture();
  await Deno.symlink(f.dir, join(f.root, "sub"));
  const p = join(f.root, "sub", "secret.txt");
  await refused(() => openReadFile(p, f.roots), "outside-roots", p);
  await Deno.symlink("/etc", join(f.root, "etc"));
  await refused(() => openReadFile(join(f.root, "etc", "passwd"), f.roots), "outside-roots");
  assert.deepEqual(await openFilesUnder(f.dir), []);
});

Deno.test("openReadFile() refuses a symlinked parent even when it stays inside (callers pass real paths)", async () => {
  await using f = await fixture();
  await Deno.mkdir(join(f.root, "real"));
  await Deno.writeTextFile(join(f.root, "real", "b.txt"), "through");
  await Deno.symlink(join(f.root, "real"), join(f.root, "sub"));
  await refused(() => openReadFile(join(f.root, "sub", "b.txt"), f.roots), "outside-roots");
  const opened = await openReadFile(join(f.root, "real", "b.txt"), f.roots);
  try {
    assert.equal(opened.size, 7);
    assert.equal(fs.readFileSync(opened.fd, "utf8"), "through");
  } finally {
    fs.closeSync(opened.fd);
  }
  assert.deepEqual(await openFilesUnder(f.dir), []);
});

Deno.test("openReadFile() refuses /dev/null, a directory and a missing file", async () => {
  await using f = await fixture();
  // With /dev as a root, only the file type is left to refuse it.
  const dev = await resolveRoots(["/dev"], "/");
  await refused(() => openReadFile("/dev/null", dev), "not-a-regular-file", "/dev/null");
  await refused(() => openReadFile("/dev/null", f.roots), "outside-roots", "/dev/null");
  await Deno.mkdir(join(f.root, "sub"));
  await refused(() => openReadFile(join(f.root, "sub"), f.roots), "not-a-regular-file");
  await refused(() => openReadFile(join(f.root, "missing"), f.roots), "not-found");
  assert.deepEqual(await openFilesUnder(f.dir), []);
});

Deno.test("openReadFile() refuses a regular file outside the roots", async () => {
  await using f = await fixture();
  const p = join(f.dir, "secret.txt");
  await refused(() => openReadFile(p, f.roots), "outside-roots", p);
  assert.deepEqual(await openFilesUnder(f.dir), []);
});

Deno.test("createFile() creates a new private file that is writable through the descriptor", async () => {
  await using f = await fixture();
  const p = join(f.root, "new.txt");
  const fd = await createFile(p, f.roots);
  try {
    assert.equal((await Deno.stat(p)).mode! & 0o777, 0o600);
    fs.writeSync(fd, "downloaded");
  } finally {
    fs.closeSync(fd);
  }
  assert.equal(await Deno.readTextFile(p), "downloaded");
  assert.deepEqual(await openFilesUnder(f.dir), []);
});

Deno.test("createFile() refuses an existing file and leaves it unchanged", async () => {
  await using f = await fixture();
  const p = join(f.root, "a.txt");
  await refused(() => createFile(p, f.roots), "exists", p);
  assert.equal(await Deno.readTextFile(p), "inside");
  await Deno.mkdir(join(f.root, "sub"));
  await refused(() => createFile(join(f.root, "sub"), f.roots), "exists");
  assert.deepEqual(await names(join(f.root, "sub")), []);
  assert.deepEqual(await openFilesUnder(f.dir), []);
});

Deno.test("createFile() refuses a path swapped for a symlink and does not create its target", async () => {
  await using f = await fixture();
  await Deno.symlink(join(f.root, "missing-in"), join(f.root, "dangling-in"));
  await Deno.symlink(join(f.dir, "pwned"), join(f.root, "dangling-out"));
  await Deno.symlink(join(f.root, "a.txt"), join(f.root, "link-file"));
  for (const name of ["dangling-in", "dangling-out", "link-file"]) {
    const p = join(f.root, name);
    await refused(() => createFile(p, f.roots), "exists", p);
    assert.ok((await Deno.lstat(p)).isSymlink, `${name} is still the link`);
  }
  await assert.rejects(Deno.lstat(join(f.root, "missing-in")), Deno.errors.NotFound);
  await assert.rejects(Deno.lstat(join(f.dir, "pwned")), Deno.errors.NotFound);
  assert.equal(await Deno.readTextFile(join(f.root, "a.txt")), "inside");
  assert.deepEqual(await openFilesUnder(f.dir), []);
});

Deno.test("createFile() refuses a parent directory swapped for a link outside and leaves nothing there", async () => {
  await using f = await fixture();
  const outside = join(f.dir, "outside");
  await Deno.mkdir(outside);
  await Deno.writeTextFile(join(outside, "keep.txt"), "keep");
  await Deno.symlink(outside, join(f.root, "out"));
  const before = await names(outside);
  const p = join(f.root, "out", "pwned");
  await refused(() => createFile(p, f.roots), "outside-roots", p);
  assert.deepEqual(await names(outside), before);
  assert.equal(await Deno.readTextFile(join(outside, "keep.txt")), "keep");
  // An existing file out there is refused before anything is opened, and kept.
  await refused(() => createFile(join(f.root, "out", "keep.txt"), f.roots), "outside-roots");
  assert.equal(await Deno.readTextFile(join(outside, "keep.txt")), "keep");
  assert.deepEqual(await names(f.dir), ["outside", "root", "secret.txt"]);
  assert.deepEqual(await openFilesUnder(f.dir), []);
});

Deno.test("createFile() refuses a symlinked parent even inside, and a missing parent", async () => {
  await using f = await fixture();
  await Deno.mkdir(join(f.root, "real"));
  await Deno.symlink(join(f.root, "real"), join(f.root, "sub"));
  await refused(() => createFile(join(f.root, "sub", "new.txt"), f.roots), "outside-roots");
  assert.deepEqual(await names(join(f.root, "real")), []);
  fs.closeSync(await createFile(join(f.root, "real", "new.txt"), f.roots));
  assert.ok((await Deno.lstat(join(f.root, "real", "new.txt"))).isFile);
  await refused(() => createFile(join(f.root, "missing", "new.txt"), f.roots), "not-found");
  assert.deepEqual(await openFilesUnder(f.dir), []);
});

Deno.test("resolveWriteDir() accepts a missing destination inside and creates nothing", async () => {
  await using f = await fixture();
  for (const overwrite of [false, true]) {
    const opts = { roots: f.roots, cwd: f.root, overwrite };
    assert.deepEqual(await resolveWriteDir("tree", opts), { path: join(f.root, "tree"), exists: false });
    assert.deepEqual(await resolveWriteDir(join(f.root, "tree"), opts), { path: join(f.root, "tree"), exists: false });
  }
  await assert.rejects(Deno.lstat(join(f.root, "tree")), Deno.errors.NotFound);
});

Deno.test("resolveWriteDir() accepts an existing directory only with overwrite, at its real path", async () => {
  await using f = await fixture();
  await Deno.mkdir(join(f.root, "real", "tree"), { recursive: true });
  await Deno.symlink(join(f.root, "real"), join(f.root, "sub"));
  const opts = { roots: f.roots, cwd: f.root, overwrite: true };
  assert.deepEqual(await resolveWriteDir("sub/tree", opts), { path: join(f.root, "real", "tree"), exists: true });
  assert.deepEqual(await resolveWriteDir("real/tree", opts), { path: join(f.root, "real", "tree"), exists: true });
  const error = await refused(() => resolveWriteDir("sub/tree", { ...opts, overwrite: false }), "exists", "sub/tree");
  assert.match(error.message, /overwrite is off/);
});

Deno.test("resolveWriteDir() refuses an existing non-directory", async () => {
  await using f = await fixture();
  for (const overwrite of [false, true]) {
    const opts = { roots: f.roots, cwd: f.root, overwrite };
    const error = await refused(() => resolveWriteDir("a.txt", opts), "not-a-directory", "a.txt");
    assert.match(error.message, /it is a file/);
  }
  const dev = await resolveRoots(["/dev"], "/");
  await refused(
    () => resolveWriteDir("/dev/null", { roots: dev, cwd: "/", overwrite: true }),
    "not-a-directory",
    "/dev/null",
  );
  assert.equal(await Deno.readTextFile(join(f.root, "a.txt")), "inside");
});

Deno.test("resolveWriteDir() refuses a symlink at the destination, even to a directory inside", async () => {
  await using f = await fixture();
  await Deno.mkdir(join(f.root, "tree"));
  await Deno.symlink(join(f.root, "tree"), join(f.root, "link-in"));
  await Deno.symlink(f.dir, join(f.root, "link-out"));
  await Deno.symlink(join(f.root, "missing"), join(f.root, "dangling"));
  for (const overwrite of [false, true]) {
    const opts = { roots: f.roots, cwd: f.root, overwrite };
    for (const p of ["link-in", "link-out", "dangling"]) {
      const error = await refused(() => resolveWriteDir(p, opts), "not-a-regular-file", p);
      assert.match(error.message, /symbolic link/);
    }
  }
  await assert.rejects(Deno.lstat(join(f.root, "missing")), Deno.errors.NotFound);
});

Deno.test("resolveWriteDir() refuses destinations whose parent is outside the roots", async () => {
  await using f = await fixture();
  await Deno.symlink(f.dir, join(f.root, "out"));
  const opts = { roots: f.roots, cwd: f.root, overwrite: true };
  await refused(() => resolveWriteDir("../tree", opts), "outside-roots", "../tree");
  await refused(() => resolveWriteDir("out/tree", opts), "outside-roots", "out/tree");
  await refused(() => resolveWriteDir("out/root", opts), "outside-roots");
  await refused(() => resolveWriteDir(join(f.dir, "tree"), opts), "outside-roots");
  // The root itself cannot be replaced: its parent is outside.
  await refused(() => resolveWriteDir(f.root, opts), "outside-roots");
  await refused(() => resolveWriteDir("/etc", opts), "outside-roots");
  assert.deepEqual(await names(f.dir), ["root", "secret.txt"]);
});

Deno.test("resolveWriteDir() refuses a missing parent and a final component that names no directory", async () => {
  await using f = await fixture();
  const opts = { roots: f.roots, cwd: f.root, overwrite: true };
  await refused(() => resolveWriteDir("missing/tree", opts), "not-found", "missing/tree");
  await refused(() => resolveWriteDir("a.txt/tree", opts), "not-a-directory");
  for (const p of [".", "..", "tree/", "sub/."]) {
    await refused(() => resolveWriteDir(p, opts), "invalid", p);
  }
});
