import assert from "node:assert/strict";
import { loadSshConfig, type SshConfigContext, SshConfigError } from "./mod.ts";
import { MAX_INCLUDE_DEPTH } from "./load.ts";

async function withHome(fn: (home: string, ctx: SshConfigContext) => Promise<void>): Promise<void> {
  const home = await Deno.makeTempDir({ prefix: "ssh_config_load_" });
  try {
    await Deno.mkdir(`${home}/.ssh`, { mode: 0o700 });
    await fn(home, { home, localUser: "me", localHost: "box", uid: Deno.uid() ?? undefined });
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

async function write(path: string, text: string, mode = 0o600): Promise<void> {
  await Deno.mkdir(path.replace(/\/[^/]*$/, ""), { recursive: true });
  await Deno.writeTextFile(path, text);
  await Deno.chmod(path, mode);
}

async function rejectsWith(p: Promise<unknown>, file: string, line: number, re: RegExp): Promise<void> {
  await assert.rejects(p, (e) => {
    assert.ok(e instanceof SshConfigError, String(e));
    assert.equal(e.file, file);
    assert.equal(e.line, line);
    assert.match(e.message, re);
    return true;
  });
}

Deno.test("loadSshConfig() reads Include relative to ~/.ssh, globbed in sorted order, skipping missing files", async () => {
  await withHome(async (home, ctx) => {
    await write(`${home}/.ssh/config`, "Include conf.d/* missing.conf ~/top.conf\nHost *\n  Port 22\n");
    await write(`${home}/.ssh/conf.d/2-b`, "Port 2002\n");
    await write(`${home}/.ssh/conf.d/10-a`, "Port 2010\nIdentityFile ~/a\n");
    await write(`${home}/.ssh/conf.d/.hidden`, "Port 9999\n");
    await Deno.mkdir(`${home}/.ssh/conf.d/subdir`); // matched by the glob, read as empty like ssh does
    await write(`${home}/top.conf`, "IdentityFile ~/top\n");
    const c = await loadSshConfig([`${home}/.ssh/config`, `${home}/absent`], ctx);
    const r = c.resolve("x");
    assert.equal(r.port, 2010); // "10-a" sorts before "2-b", as glob(3) sorts
    assert.deepEqual(r.identityFiles, [`${home}/a`, `${home}/top`]);
    assert.deepEqual(r.applied.map((a) => `${a.file.slice(home.length)}:${a.line}`), [
      "/.ssh/conf.d/10-a:1",
      "/.ssh/conf.d/10-a:2",
      "/top.conf:1",
    ]);
    assert.deepEqual(c.files.map((f) => f.slice(home.length)), [
      "/.ssh/config",
      "/.ssh/conf.d/10-a",
      "/.ssh/conf.d/2-b",
      "/top.conf",
    ]);
  });
});

Deno.test("loadSshConfig() applies an Include inside a Host block only to that block", async () => {
  await withHome(async (home, ctx) => {
    await write(`${home}/.ssh/config`, "Host work\n  Include work.conf\nHost *\n  User me\n");
    await write(`${home}/.ssh/work.conf`, "User worker\nHost *\n  Port 2200\n");
    const c = await loadSshConfig([`${home}/.ssh/config`], ctx);
    assert.equal(c.resolve("work").user, "worker");
    assert.equal(c.resolve("work").port, 2200);
    assert.equal(c.resolve("home").user, "me");
    assert.equal(c.resolve("home").port, undefined); // `Host *` in a file included for another block never matches
  });
});

Deno.test("loadSshConfig() ends an Include loop at the depth limit with the line that loops", async () => {
  await withHome(async (home, ctx) => {
    const self = `${home}/.ssh/config`;
    await write(self, "Host *\n  Include config\n");
    await rejectsWith(loadSshConfig([self], ctx), self, 2, new RegExp(`recursive.*${MAX_INCLUDE_DEPTH}`));
    // Two files that glob each other would be read 2^16 times: the file cap ends it early.
    await write(self, "Include loop/*\n");
    await write(`${home}/.ssh/loop/a`, "Include loop/*\n");
    await write(`${home}/.ssh/loop/b`, "Include loop/*\n");
    await assert.rejects(loadSshConfig([self], ctx), /more than 1000 files|recursive/);
    // Depth 16 itself is allowed, as in OpenSSH.
    for (let i = 0; i < MAX_INCLUDE_DEPTH; i++) await write(`${home}/.ssh/d${i}`, `Include d${i + 1}\n`);
    await write(`${home}/.ssh/d${MAX_INCLUDE_DEPTH}`, "Port 2016\n");
    await write(self, "Include d1\n");
    assert.equal((await loadSshConfig([self], ctx)).resolve("x").port, 2016);
  });
});

Deno.test("loadSshConfig() refuses group/world-writable files and files of other owners", async () => {
  await withHome(async (home, ctx) => {
    const cfg = `${home}/.ssh/config`;
    await write(cfg, "Include inc\n", 0o666);
    await rejectsWith(loadSshConfig([cfg], ctx), cfg, 0, /bad owner or permissions.*writable/);
    await Deno.chmod(cfg, 0o644);
    await write(`${home}/.ssh/inc`, "Port 1\n", 0o620);
    await rejectsWith(loadSshConfig([cfg], ctx), `${home}/.ssh/inc`, 0, /bad owner or permissions/);
    await Deno.chmod(`${home}/.ssh/inc`, 0o600);
    assert.equal((await loadSshConfig([cfg], ctx)).resolve("x").port, 1);

    const uid = Deno.uid();
    if (uid === null) return; // Windows: no owner check
    let ownerCtx: SshConfigContext;
    if (uid === 0) {
      await Deno.chown(cfg, 65534, null); // someone else's file, seen by root
      ownerCtx = ctx;
    } else {
      ownerCtx = { ...ctx, uid: uid + 1 }; // the file's owner is not "us"
    }
    await rejectsWith(loadSshConfig([cfg], ownerCtx), cfg, 0, /bad owner or permissions.*owned by uid/);
    // Without a uid (Windows) the owner is not checked.
    assert.equal((await loadSshConfig([cfg], { ...ownerCtx, uid: undefined })).resolve("x").port, 1);
  });
});

Deno.test("loadSshConfig() refuses a FIFO instead of blocking on it, and caps the file size", async () => {
  await withHome(async (home, ctx) => {
    const fifo = `${home}/.ssh/fifo`;
    const made = await new Deno.Command("mkfifo", { args: [fifo] }).output().catch(() => null);
    if (made?.success) {
      await write(`${home}/.ssh/config`, "Include fifo\n");
      const load = loadSshConfig([`${home}/.ssh/config`], ctx).then(() => "loaded", (e: unknown) => e);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise((r) => timer = setTimeout(() => r("blocked"), 20_000));
      const first = await Promise.race([load, late]);
      clearTimeout(timer);
      if (first === "blocked") {
        // Unblock the reader's open() so the test ends, then fail.
        (await Deno.open(fifo, { write: true })).close();
        await load;
        assert.fail("loadSshConfig() blocked opening a FIFO");
      }
      await rejectsWith(load.then((v) => Promise.reject(v)), fifo, 0, /not a regular file/);
    } else {
      console.log("mkfifo is not available: FIFO case skipped");
    }
    const big = `${home}/big`;
    await write(big, `${"# filler\n".repeat(120_000)}`);
    await rejectsWith(loadSshConfig([big], ctx), big, 0, /larger than 1048576 bytes/);
  });
});
