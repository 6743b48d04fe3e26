import assert from "node:assert/strict";
import { BoundedReadError, readBoundedFile } from "./read_bounded.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "read-bounded-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function mkfifo(path: string): Promise<void> {
  const out = await new Deno.Command("mkfifo", { args: [path], stderr: "piped" }).output();
  if (!out.success) throw new Error(`mkfifo failed: ${new TextDecoder().decode(out.stderr)}`);
}

function refusedWith(problem: string, reason: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof BoundedReadError, String(e));
    assert.equal(e.problem, problem);
    assert.match(e.message, reason);
    return true;
  };
}

Deno.test("readBoundedFile() reads a regular file, at the cap and below", async () => {
  await withTempDir(async (dir) => {
    const file = `${dir}/f`;
    await Deno.writeFile(file, new Uint8Array(1000).fill(7));
    assert.deepEqual(await readBoundedFile(file, { maxBytes: 1000 }), new Uint8Array(1000).fill(7));
    await Deno.writeFile(`${dir}/empty`, new Uint8Array(0));
    assert.equal((await readBoundedFile(`${dir}/empty`)).length, 0);
    // Through a symlink: keys often are links to the real file.
    await Deno.symlink(file, `${dir}/link`);
    assert.equal((await readBoundedFile(`${dir}/link`, { maxBytes: 1000 })).length, 1000);
  });
});

Deno.test("readBoundedFile() refuses a file one byte over the cap", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeFile(`${dir}/f`, new Uint8Array(1025));
    await assert.rejects(
      readBoundedFile(`${dir}/f`, { maxBytes: 1024 }),
      refusedWith("too-large", /larger than 1 KiB/),
    );
  });
});

Deno.test("readBoundedFile() refuses a FIFO without waiting for a writer", async () => {
  await withTempDir(async (dir) => {
    await mkfifo(`${dir}/fifo`);
    await assert.rejects(readBoundedFile(`${dir}/fifo`), refusedWith("not-a-regular-file", /it is a FIFO/));
  });
});

Deno.test("readBoundedFile() refuses /dev/zero and /dev/null without reading them", async () => {
  await assert.rejects(readBoundedFile("/dev/zero"), refusedWith("not-a-regular-file", /character device/));
  await assert.rejects(readBoundedFile("/dev/null"), refusedWith("not-a-regular-file", /character device/));
});

Deno.test("readBoundedFile() says why it could not read: missing, a directory", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(readBoundedFile(`${dir}/none`), refusedWith("not-found", /no such file/));
    await assert.rejects(readBoundedFile(dir), refusedWith("not-a-regular-file", /it is a directory/));
  });
});

Deno.test("readBoundedFile() rejects with the signal's reason once it aborts", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/f`, "x");
    const ac = new AbortController();
    ac.abort(new Error("deadline"));
    await assert.rejects(readBoundedFile(`${dir}/f`, { signal: ac.signal }), /deadline/);
  });
});
