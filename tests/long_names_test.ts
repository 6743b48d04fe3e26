/**
 * End to end: file names at the 255-byte limit (NAME_MAX) go up and come
 * down. Every write is built under a temporary name beside the final one;
 * that name must fit too, in UTF-8 bytes, whatever the final name is.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { callOk } from "./fixtures/mcp.ts";
import { sshdAvailable } from "./fixtures/sshd.ts";
import { startFileSession } from "./fixtures/file_session.ts";

const skip = !sshdAvailable();
const sha = (data: Uint8Array | string) => createHash("sha256").update(data).digest("hex");
const bytes = (name: string) => new TextEncoder().encode(name).length;

/** Names of 254 and 255 bytes: ASCII, 2-byte, 3-byte and 4-byte characters. */
const NAMES: string[] = [
  "a".repeat(255),
  "b".repeat(254),
  "é".repeat(127) + "e",
  "日本".repeat(42) + "abc",
  "😀".repeat(63) + "abc",
];

Deno.test({ name: "names of 254 and 255 bytes are written, uploaded and downloaded", ignore: skip }, async (t) => {
  for (const name of NAMES) assert.ok([254, 255].includes(bytes(name)), `${bytes(name)} bytes`);
  await using f = await startFileSession("mcp-long-");
  const { client: c, sid, root, remote } = f;
  const sh = async (command: string) =>
    (await callOk(c, "ssh_execute", { session_id: sid, command })).structured.stdout as string;
  await sh(`mkdir ${remote}`);
  // Made by the remote shell, so that the download step does not depend on our writes.
  await sh(
    `mkdir ${remote}/down && cd ${remote}/down && ` + NAMES.map((n, i) => `printf 'down ${i}' > '${n}'`).join(" && "),
  );
  // What the remote side itself holds: name and sha256 of every file, by `find`, not our SFTP code.
  const remoteFiles = async (dir: string) =>
    Object.fromEntries(
      (await sh(`cd ${dir} && find . -type f -printf '%P\\0' | xargs -0 -r sha256sum -z --`)).split("\0")
        .filter((l) => l !== "").map((l) => [l.slice(66), l.slice(0, 64)]),
    );

  await t.step("ssh_write_remote_file creates and overwrites them", async () => {
    for (const [i, name] of NAMES.entries()) {
      await callOk(c, "ssh_write_remote_file", { session_id: sid, remote_path: `${remote}/${name}`, content: "v1" });
      await callOk(c, "ssh_write_remote_file", {
        session_id: sid,
        remote_path: `${remote}/${name}`,
        content: `v2 ${i}`,
        mode: "overwrite",
      });
      await callOk(c, "ssh_edit_remote_file", {
        session_id: sid,
        remote_path: `${remote}/${name}`,
        old_text: "v2",
        new_text: "v3",
      });
    }
    const written = Object.fromEntries(
      Object.entries(await remoteFiles(remote)).filter(([name]) => !name.startsWith("down/")),
    );
    assert.deepEqual(written, Object.fromEntries(NAMES.map((n, i) => [n, sha(`v3 ${i}`)])));
  });

  await t.step("ssh_download_file brings them down under the same names", async () => {
    for (const [i, name] of NAMES.entries()) {
      await callOk(c, "ssh_download_file", {
        session_id: sid,
        remote_path: `${remote}/down/${name}`,
        local_path: `${root}/${name}`,
        verify: true,
      });
      assert.equal(await Deno.readTextFile(`${root}/${name}`), `down ${i}`, name);
    }
    assert.deepEqual([...Deno.readDirSync(root)].map((e) => e.name).sort(), [...NAMES].sort());
  });

  await t.step("ssh_upload_file sends them up under the same names, a file and a tree", async () => {
    await sh(`mkdir ${remote}/up`);
    for (const [i, name] of NAMES.entries()) {
      await Deno.writeTextFile(`${root}/${name}`, `up ${i}`); // replaces the downloaded copy, if any
      await callOk(c, "ssh_upload_file", {
        session_id: sid,
        local_path: `${root}/${name}`,
        remote_path: `${remote}/up/${name}`,
        verify: true,
      });
    }
    assert.deepEqual(
      await remoteFiles(`${remote}/up`),
      Object.fromEntries(NAMES.map((n, i) => [n, sha(`up ${i}`)])),
    );
    // Trees whose own names are at the limit: each is staged under a temporary name beside it.
    const [localTree, remoteTree, backTree] = ["t".repeat(255), NAMES[3], NAMES[2]];
    await Deno.mkdir(`${root}/${localTree}`);
    await Deno.writeTextFile(`${root}/${localTree}/${NAMES[4]}`, "in tree");
    await sh(`mkdir ${remote}/trees`);
    await callOk(c, "ssh_upload_file", {
      session_id: sid,
      local_path: `${root}/${localTree}`,
      remote_path: `${remote}/trees/${remoteTree}`,
      recursive: true,
    });
    assert.deepEqual(await remoteFiles(`${remote}/trees/${remoteTree}`), { [NAMES[4]]: sha("in tree") });
    await Deno.mkdir(`${root}/back`);
    await callOk(c, "ssh_download_file", {
      session_id: sid,
      remote_path: `${remote}/trees/${remoteTree}`,
      local_path: `${root}/back/${backTree}`,
      recursive: true,
    });
    assert.equal(await Deno.readTextFile(`${root}/back/${backTree}/${NAMES[4]}`), "in tree");
    // No temporary name left on either side.
    assert.equal(await sh(`find ${remote} -name '*.mcp-*'`), "");
    assert.deepEqual([...Deno.readDirSync(root)].filter((e) => e.name.includes(".mcp-")), []);
    assert.deepEqual([...Deno.readDirSync(`${root}/back`)].map((e) => e.name), [backTree]);
  });
});
