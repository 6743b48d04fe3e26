/**
 * End to end: directory trees up and down (recursive=true): nested folders,
 * an empty folder, symlinks and odd names arrive identical, modes without
 * setuid, and never a partial tree under the final name. A hostile remote
 * tree (links out, 0777/4755/1777 modes) arrives without the links out and
 * without group/world write or special bits.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { call, callOk, connectWithKey, startServer } from "./fixtures/mcp.ts";
import { sshdAvailable, startSshd } from "./fixtures/sshd.ts";
import { startFileSession } from "./fixtures/file_session.ts";

const skip = !sshdAvailable();

/** One line per entry: type, mode, path, and content hash or link target. */
async function snapshot(top: string): Promise<string[]> {
  const lines: string[] = [];
  const walk = async (dir: string, rel: string) => {
    for await (const e of Deno.readDir(dir)) {
      const path = join(dir, e.name);
      const r = rel === "" ? e.name : `${rel}/${e.name}`;
      const info = await Deno.lstat(path);
      const mode = (info.mode! & 0o7777).toString(8);
      if (info.isSymlink) lines.push(`l ${r} -> ${await Deno.readLink(path)}`);
      else if (info.isDirectory) {
        lines.push(`d ${mode} ${r}`);
        await walk(path, r);
      } else lines.push(`f ${mode} ${r} ${createHash("sha256").update(await Deno.readFile(path)).digest("hex")}`);
    }
  };
  await walk(top, "");
  return lines.sort();
}

const ODD = ["with space", "quo'te", 'dq"uote', "-leading-dash", "ünïcödé ✓", "$(touch pwned)"];

async function makeTree(top: string): Promise<void> {
  await Deno.mkdir(`${top}/a/b/c`, { recursive: true });
  await Deno.mkdir(`${top}/empty`);
  await Deno.writeTextFile(`${top}/a/b/c/deep.txt`, "deep\n");
  await Deno.writeFile(`${top}/a/bytes.bin`, new Uint8Array(256).map((_, i) => i));
  const big = new Uint8Array(600_000);
  for (let i = 0; i < big.length; i += 65536) crypto.getRandomValues(big.subarray(i, i + 65536));
  await Deno.writeFile(`${top}/a/big.bin`, big);
  await Deno.writeFile(`${top}/zero`, new Uint8Array(0));
  for (const name of ODD) await Deno.writeTextFile(`${top}/a/${name}`, `${name}\n`);
  await Deno.mkdir(`${top}/a/${ODD[0]} dir`);
  await Deno.writeTextFile(`${top}/a/${ODD[0]} dir/${ODD[4]}`, "x");
  await Deno.symlink("b/c/deep.txt", `${top}/a/link-inside`);
  await Deno.symlink("/etc/passwd", `${top}/a/link-absolute`); // copied as a link, never read
  await Deno.symlink("missing", `${top}/a/link-dangling`);
  await Deno.writeTextFile(`${top}/tool`, "#!/bin/sh\n");
  await Deno.chmod(`${top}/tool`, 0o4755);
  await Deno.chmod(`${top}/a/b`, 0o750);
  await Deno.chmod(`${top}/empty`, 0o700);
}

Deno.test({ name: "directory trees go up and come back identical", ignore: skip }, async (t) => {
  await using f = await startFileSession("mcp-tree-");
  const { client: c, sid, base, root, remote } = f;
  await callOk(c, "ssh_manage_remote", { action: "mkdir", session_id: sid, remote_path: remote });
  const sh = async (command: string) => (await callOk(c, "ssh_execute", { session_id: sid, command })).structured;
  await makeTree(`${root}/src`);
  const expected = await snapshot(`${root}/src`);
  // The setuid bit never crosses; everything else does.
  const expectedCopy = expected.map((l) => l.replace("f 4755 tool", "f 755 tool")).sort();
  // Coming down, a link that is absolute (or leaves the tree) is not created.
  const expectedDown = expectedCopy.filter((l) => !l.startsWith("l a/link-absolute "));

  await t.step("a directory needs recursive=true", async () => {
    const up = await call(c, "ssh_upload_file", {
      session_id: sid,
      local_path: `${root}/src`,
      remote_path: `${remote}/tree`,
    });
    assert.equal(up.code, "IS_A_DIRECTORY", up.text);
    assert.match(up.text, /recursive=true/);
  });

  await t.step("upload: the remote tree matches, links copied as links", async () => {
    const up = await callOk(c, "ssh_upload_file", {
      session_id: sid,
      local_path: `${root}/src`,
      remote_path: `${remote}/tree`,
      recursive: true,
      verify: true,
    });
    assert.equal(up.structured.type, "directory");
    assert.equal(up.structured.files, ODD.length + 6);
    assert.equal(up.structured.symlinks, 3);
    assert.equal(up.structured.directories, 6);
    assert.equal(up.structured.verified, true);
    // What the remote side itself says, independently of our SFTP code.
    const listed = await sh(
      `cd ${remote}/tree && find . -mindepth 1 -printf '%y %m %P -> %l\\n' | sort && ` +
        `find . -type f -printf '%P\\n' | sort | while IFS= read -r f; do sha256sum -- "$f"; done`,
    );
    const lines: string[] = listed.stdout.trim().split("\n");
    for (const want of expectedCopy) {
      const [type, mode, ...rest] = want.split(" ");
      if (type === "l") {
        const [path, target] = [want.slice(2).split(" -> ")[0], want.split(" -> ")[1]];
        assert.ok(lines.includes(`l 777 ${path} -> ${target}`), `${want} missing in:\n${listed.stdout}`);
      } else if (type === "d") {
        assert.ok(lines.includes(`d ${mode} ${rest.join(" ")} -> `), `${want} missing in:\n${listed.stdout}`);
      } else {
        const hash = rest.at(-1)!;
        const path = rest.slice(0, -1).join(" ");
        assert.ok(lines.includes(`f ${mode} ${path} -> `), `${want} missing in:\n${listed.stdout}`);
        assert.ok(lines.includes(`${hash}  ${path}`), `${path}: content differs`);
      }
    }
    assert.equal(lines.filter((l) => / -> /.test(l)).length, expected.length, listed.stdout);
    assert.equal((await sh(`test -e ${remote}/pwned && echo yes || echo no`)).stdout, "no\n");
    assert.equal((await sh(`ls -A ${remote}`)).stdout, "tree\n", "a staging directory was left behind");
  });

  await t.step("download: the local copy matches the original", async () => {
    const down = await callOk(c, "ssh_download_file", {
      session_id: sid,
      remote_path: `${remote}/tree`,
      local_path: `${root}/back`,
      recursive: true,
      verify: true,
    });
    assert.equal(down.structured.files, ODD.length + 6);
    assert.equal(down.structured.verified, true);
    assert.deepEqual(await snapshot(`${root}/back`), expectedDown);
    assert.deepEqual(down.structured.skipped, [{ path: "a/link-absolute", target: "/etc/passwd" }]);
    assert.match(
      down.text,
      /1 symlink not created \(absolute or outside the tree\): a\/link-absolute -> \/etc\/passwd/,
    );
    const names = [];
    for await (const e of Deno.readDir(root)) names.push(e.name);
    assert.deepEqual(names.sort(), ["back", "src"], "a staging directory was left behind");
  });

  await t.step("an existing destination is kept unless overwrite, then replaced whole", async () => {
    const again = await call(c, "ssh_upload_file", {
      session_id: sid,
      local_path: `${root}/src`,
      remote_path: `${remote}/tree`,
      recursive: true,
    });
    assert.equal(again.code, "FILE_EXISTS", again.text);
    const downAgain = await call(c, "ssh_download_file", {
      session_id: sid,
      remote_path: `${remote}/tree`,
      local_path: `${root}/back`,
      recursive: true,
    });
    assert.equal(downAgain.code, "FILE_EXISTS", downAgain.text);

    await sh(`touch ${remote}/tree/stale`);
    await Deno.writeTextFile(`${root}/back/stale`, "old");
    await callOk(c, "ssh_upload_file", {
      session_id: sid,
      local_path: `${root}/src`,
      remote_path: `${remote}/tree`,
      recursive: true,
      overwrite: true,
    });
    assert.equal((await sh(`test -e ${remote}/tree/stale && echo yes || echo no`)).stdout, "no\n");
    await callOk(c, "ssh_download_file", {
      session_id: sid,
      remote_path: `${remote}/tree`,
      local_path: `${root}/back`,
      recursive: true,
      overwrite: true,
    });
    assert.deepEqual(await snapshot(`${root}/back`), expectedDown);
    assert.equal((await sh(`ls -A ${remote}`)).stdout, "tree\n");
  });

  await t.step("replacing a tree whose old copy cannot be removed succeeds and says where it is", async () => {
    await Deno.mkdir(`${root}/v1/ro`, { recursive: true });
    await Deno.writeTextFile(`${root}/v1/ro/f`, "v1");
    await Deno.chmod(`${root}/v1/ro`, 0o555); // copied as is: the remote user cannot delete inside it
    await callOk(c, "ssh_upload_file", {
      session_id: sid,
      local_path: `${root}/v1`,
      remote_path: `${remote}/versioned`,
      recursive: true,
    });
    await Deno.chmod(`${root}/v1/ro`, 0o755);
    await Deno.writeTextFile(`${root}/v1/ro/f`, "v2");
    const again = await callOk(c, "ssh_upload_file", {
      session_id: sid,
      local_path: `${root}/v1`,
      remote_path: `${remote}/versioned`,
      recursive: true,
      overwrite: true,
    });
    assert.equal((await sh(`cat ${remote}/versioned/ro/f`)).stdout, "v2");
    const left = again.structured.leftover;
    assert.match(left, /\/\.versioned\.mcp-[0-9a-f]+\.tmp$/);
    assert.match(again.text, /could not be removed and is left at/);
    assert.equal((await sh(`cat ${left}/ro/f`)).stdout, "v1");
    await sh(`chmod -R u+w ${left} && rm -rf ${left} ${remote}/versioned`);
  });

  await t.step("a tree with a FIFO is refused before anything is sent", async () => {
    await Deno.mkdir(`${root}/withfifo`);
    await Deno.writeTextFile(`${root}/withfifo/a`, "a");
    const made = await new Deno.Command("mkfifo", { args: [`${root}/withfifo/pipe`] }).output();
    assert.equal(made.code, 0);
    const r = await call(c, "ssh_upload_file", {
      session_id: sid,
      local_path: `${root}/withfifo`,
      remote_path: `${remote}/withfifo`,
      recursive: true,
    });
    assert.equal(r.code, "PATH_NOT_ALLOWED", r.text);
    assert.match(r.text, /pipe/);
    assert.equal((await sh(`ls -A ${remote}`)).stdout, "tree\n");
  });

  await t.step("a remote tree is never written outside the local roots", async () => {
    await Deno.mkdir(`${base}/outside`);
    await Deno.symlink(`${base}/outside`, `${root}/out-link`);
    for (
      const local_path of [`${base}/outside/t`, `${root}/../outside/t`, `${root}/out-link/t`, `${root}/out-link`]
    ) {
      const r = await call(c, "ssh_download_file", {
        session_id: sid,
        remote_path: `${remote}/tree`,
        local_path,
        recursive: true,
      });
      assert.ok(r.isError, local_path);
      assert.ok(["PATH_NOT_ALLOWED", "FILE_EXISTS"].includes(r.code!), `${local_path}: ${r.text}`);
    }
    for await (const e of Deno.readDir(`${base}/outside`)) assert.fail(`${e.name} was written outside`);
  });
});

Deno.test({ name: "a hostile remote tree arrives without links out or unsafe modes", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const base = await Deno.realPath(await Deno.makeTempDir({ prefix: "mcp-tree-hostile-" }));
  const root = `${base}/root`;
  await Deno.mkdir(root);
  const kh = await sshd.writeKnownHosts(`${base}/kh`);
  await using server = await startServer({ args: ["--known-hosts", kh, "--allow-local-dir", root] });
  const c = server.client;
  const sid = await connectWithKey(c, sshd);
  const remote = `/tmp/mcp-tree-hostile-${crypto.randomUUID()}`;
  const sh = async (command: string) => (await callOk(c, "ssh_execute", { session_id: sid, command })).structured;
  try {
    const made = await sh(
      `set -e; mkdir -p ${remote}/sub/deeper ${remote}/shared ${remote}/sticky && cd ${remote} && ` +
        "echo x > sub/file && echo x > open && printf '#!/bin/sh\\n' > suid && " +
        "ln -s /root/.ssh abs && ln -s ../../../../etc sub/escape && " +
        // sub/up is the top (inside); sub/through goes through it to the top's parent (outside);
        // sub/in-tree stays inside, but a `..` after a name is never kept (see splitLinks).
        "ln -s .. sub/up && ln -s up/.. sub/through && ln -s ../open sub/sibling && " +
        "ln -s deeper/../file sub/in-tree && ln -s missing dangling && " +
        "chmod 0777 open shared && chmod 4755 suid && chmod 1777 sticky && chmod 2775 sub/deeper && " +
        "stat -c '%a %n' suid sticky sub/deeper",
    );
    assert.equal(made.exit_code, 0, JSON.stringify(made));
    assert.equal(made.stdout, "4755 suid\n1777 sticky\n2775 sub/deeper\n");
    const r = await callOk(c, "ssh_download_file", {
      session_id: sid,
      remote_path: remote,
      local_path: `${root}/got`,
      recursive: true,
    });
    const links = (await snapshot(`${root}/got`)).filter((l) => l.startsWith("l ")).sort();
    assert.deepEqual(links, [
      "l dangling -> missing",
      "l sub/sibling -> ../open",
      "l sub/up -> ..",
    ]);
    const check = async (dir: string) => {
      for await (const e of Deno.readDir(dir)) {
        const info = await Deno.lstat(`${dir}/${e.name}`);
        if (info.isSymlink) continue;
        const mode = info.mode! & 0o7777;
        assert.equal(mode & 0o7022, 0, `${dir}/${e.name} has mode ${mode.toString(8)}`);
        if (info.isDirectory) await check(`${dir}/${e.name}`);
      }
    };
    await check(`${root}/got`);
    const skipped = (r.structured.skipped as { path: string; target: string }[])
      .map((l) => `${l.path} -> ${l.target}`).sort();
    assert.deepEqual(skipped, [
      "abs -> /root/.ssh",
      "sub/escape -> ../../../../etc",
      "sub/in-tree -> deeper/../file",
      "sub/through -> up/..",
    ]);
    assert.match(r.text, /4 symlinks not created/);
    assert.equal((await Deno.lstat(`${root}/got`)).mode! & 0o7022, 0);
    const names = [];
    for await (const e of Deno.readDir(root)) names.push(e.name);
    assert.deepEqual(names, ["got"], "a staging directory was left behind");
  } finally {
    await call(c, "ssh_manage_remote", { action: "remove", session_id: sid, remote_path: remote, recursive: true });
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test({
  name: "a download over an existing local tree with subdirectories removes the old tree entirely",
  ignore: skip,
}, async () => {
  await using sshd = await startSshd();
  const base = await Deno.realPath(await Deno.makeTempDir({ prefix: "mcp-tree-over-" }));
  const root = `${base}/root`;
  // The old tree: nested directories, files at every level, a link out that must not be followed.
  await Deno.mkdir(`${root}/dest/a/b/c`, { recursive: true });
  await Deno.mkdir(`${root}/dest/empty`);
  for (const dir of ["", "/a", "/a/b", "/a/b/c"]) await Deno.writeTextFile(`${root}/dest${dir}/old.txt`, "old");
  await Deno.mkdir(`${base}/outside`);
  await Deno.writeTextFile(`${base}/outside/keep.txt`, "keep");
  await Deno.symlink(`${base}/outside`, `${root}/dest/a/out`);
  const kh = await sshd.writeKnownHosts(`${base}/kh`);
  // The shipped permission set (startServer runs `deno run -P`), where `..` is resolved as text.
  await using server = await startServer({ args: ["--known-hosts", kh, "--allow-local-dir", root] });
  const c = server.client;
  const sid = await connectWithKey(c, sshd);
  const remote = `/tmp/mcp-tree-over-${crypto.randomUUID()}`;
  try {
    await callOk(c, "ssh_execute", {
      session_id: sid,
      command: `mkdir -p ${remote}/x/y && echo new > ${remote}/x/y/new.txt && ` +
        `chmod 755 ${remote}/x ${remote}/x/y && chmod 644 ${remote}/x/y/new.txt`,
    });
    const r = await callOk(c, "ssh_download_file", {
      session_id: sid,
      remote_path: remote,
      local_path: `${root}/dest`,
      recursive: true,
      overwrite: true,
    });
    assert.equal(r.structured.leftover, undefined, r.text);
    // The server inherits this process's umask, which new local files get.
    const mode = (bits: number) => (bits & ~Deno.umask()).toString(8);
    assert.deepEqual(await snapshot(`${root}/dest`), [
      `d ${mode(0o755)} x`,
      `d ${mode(0o755)} x/y`,
      `f ${mode(0o644)} x/y/new.txt ${createHash("sha256").update("new\n").digest("hex")}`,
    ]);
    const names = [];
    for await (const e of Deno.readDir(root)) names.push(e.name);
    assert.deepEqual(names, ["dest"], "the old tree or a staging directory was left behind");
    assert.equal(await Deno.readTextFile(`${base}/outside/keep.txt`), "keep");
  } finally {
    await call(c, "ssh_manage_remote", { action: "remove", session_id: sid, remote_path: remote, recursive: true });
    await Deno.remove(base, { recursive: true });
  }
});
