/**
 * End to end: uploads and downloads over SFTP, and the local confinement
 * around them.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { call, callOk, connectWithKey, startServer } from "./fixtures/mcp.ts";
import { signalAll, sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable();
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

Deno.test({ name: "uploads and downloads are byte-exact, atomic and confined", ignore: skip }, async (t) => {
  await using sshd = await startSshd();
  const base = await Deno.makeTempDir({ prefix: "mcp-xfer-" });
  const root = `${base}/root`;
  const outside = `${base}/root-evil`; // a prefix sibling of the root
  await Deno.mkdir(root);
  await Deno.mkdir(outside);
  const kh = await sshd.writeKnownHosts(`${base}/kh`);
  await using server = await startServer({ args: ["--known-hosts", kh, "--allow-local-dir", root] });
  const c = server.client;
  const sid = await connectWithKey(c, sshd);
  const remote = `/tmp/mcp-xfer-${crypto.randomUUID()}`;
  await callOk(c, "ssh_manage_remote", { action: "mkdir", session_id: sid, remote_path: remote });
  const remoteSha = async (path: string) =>
    (await callOk(c, "ssh_execute", { session_id: sid, command: `sha256sum '${path}'` })).structured.stdout.split(
      " ",
    )[0];

  try {
    await t.step("sizes 0 to 100 MiB, all byte values and CRLF text go up and come back identical", async () => {
      const random = new Uint8Array(100 * 1024 * 1024);
      for (let i = 0; i < random.length; i += 65536) crypto.getRandomValues(random.subarray(i, i + 65536));
      const cases: [string, Uint8Array][] = [
        ["empty", new Uint8Array(0)],
        ["one", new Uint8Array([42])],
        ["32767", random.subarray(0, 32767)],
        ["32768", random.subarray(0, 32768)],
        ["32769", random.subarray(0, 32769)],
        ["256k-1", random.subarray(0, 262143)],
        ["256k+1", random.subarray(0, 262145)],
        ["bytes", new Uint8Array(256).map((_, i) => i)],
        ["crlf", new TextEncoder().encode("a\r\nb\r\n")],
        ["100MiB", random],
      ];
      for (const [name, data] of cases) {
        await Deno.writeFile(`${root}/${name}`, data);
        const up = await callOk(c, "ssh_upload_file", {
          session_id: sid,
          local_path: `${root}/${name}`,
          remote_path: `${remote}/${name}`,
          verify: true,
        });
        assert.equal(up.structured.sha256, sha(data), name);
        assert.equal(await remoteSha(`${remote}/${name}`), sha(data), `${name}: remote differs`);
        const down = await callOk(c, "ssh_download_file", {
          session_id: sid,
          remote_path: `${remote}/${name}`,
          local_path: `${root}/${name}.back`,
          verify: true,
        });
        assert.equal(down.structured.verified, true);
        assert.equal(sha(await Deno.readFile(`${root}/${name}.back`)), sha(data), name);
      }
      const leftovers = [];
      for await (const e of Deno.readDir(root)) if (e.name.endsWith(".tmp")) leftovers.push(e.name);
      assert.deepEqual(leftovers, []);
    });

    await t.step("neither side is clobbered without overwrite; modes lose setuid", async () => {
      await Deno.writeTextFile(`${root}/tool`, "#!/bin/sh\necho hi\n");
      await Deno.chmod(`${root}/tool`, 0o4755);
      await callOk(c, "ssh_upload_file", {
        session_id: sid,
        local_path: `${root}/tool`,
        remote_path: `${remote}/tool`,
      });
      const st = await callOk(c, "ssh_stat_remote", { session_id: sid, remote_path: `${remote}/tool` });
      assert.equal(st.structured.mode, "0755");
      const again = await call(c, "ssh_upload_file", {
        session_id: sid,
        local_path: `${root}/tool`,
        remote_path: `${remote}/tool`,
      });
      assert.equal(again.code, "FILE_EXISTS");
      await callOk(c, "ssh_upload_file", {
        session_id: sid,
        local_path: `${root}/tool`,
        remote_path: `${remote}/tool`,
        overwrite: true,
        verify: true,
      });
      const down = await call(c, "ssh_download_file", {
        session_id: sid,
        remote_path: `${remote}/tool`,
        local_path: `${root}/tool`,
      });
      assert.equal(down.code, "FILE_EXISTS");
      await callOk(c, "ssh_download_file", {
        session_id: sid,
        remote_path: `${remote}/tool`,
        local_path: `${root}/tool2`,
      });
      assert.equal((await Deno.stat(`${root}/tool2`)).mode! & 0o7777, 0o755);
    });

    await t.step("hostile local paths are refused before anything is read, sent or written", async () => {
      await Deno.writeTextFile(`${outside}/secret`, "s3cret");
      await Deno.symlink(`${outside}/secret`, `${root}/link-out`);
      await Deno.symlink(`${outside}`, `${root}/dir-out`);
      await Deno.symlink(`${root}/missing`, `${root}/dangling`);
      const fifo = await new Deno.Command("mkfifo", { args: [`${root}/fifo`] }).output();
      const reads = [
        "/etc/passwd",
        `${root}/../root-evil/secret`,
        `${outside}/secret`,
        `${root}/link-out`,
        `${root}/dangling`,
      ];
      if (fifo.code === 0) reads.push(`${root}/fifo`);
      for (const local_path of reads) {
        const r = await call(c, "ssh_upload_file", { session_id: sid, local_path, remote_path: `${remote}/stolen` });
        assert.ok(r.isError, local_path);
        assert.ok(["PATH_NOT_ALLOWED", "SFTP_NO_SUCH_FILE"].includes(r.code!), `${local_path}: ${r.text}`);
      }
      const stolen = await call(c, "ssh_stat_remote", { session_id: sid, remote_path: `${remote}/stolen` });
      assert.equal(stolen.code, "SFTP_NO_SUCH_FILE", "something was uploaded");
      for (
        const local_path of [
          `${outside}/dropped`,
          `${root}/../root-evil/dropped`,
          `${root}/dir-out/dropped`,
          `${root}/dangling`,
          "/tmp/mcp-dropped",
        ]
      ) {
        const r = await call(c, "ssh_download_file", { session_id: sid, remote_path: `${remote}/one`, local_path });
        assert.ok(r.isError, local_path);
      }
      for await (const e of Deno.readDir(outside)) {
        assert.equal(e.name, "secret", `${e.name} was written outside the root`);
      }
      await assert.rejects(Deno.stat(`${root}/missing`));
      await assert.rejects(Deno.stat("/tmp/mcp-dropped"));
    });

    await t.step("progress notifications arrive when the client asks", async () => {
      const seen: number[] = [];
      const totals = new Set<number | undefined>();
      // Recorded as they arrive on the transport: the SDK client runs progress handlers a microtask
      // late, so one that arrives in the same read as the result is dropped before its handler runs.
      const transport = c.transport!;
      const onmessage = transport.onmessage!;
      const arrived: number[] = [];
      transport.onmessage = (message, extra) => {
        if ("method" in message && message.method === "notifications/progress") {
          arrived.push((message.params as { progress: number }).progress);
        }
        onmessage(message, extra);
      };
      try {
        await c.callTool(
          {
            name: "ssh_download_file",
            arguments: { session_id: sid, remote_path: `${remote}/100MiB`, local_path: `${root}/p.bin` },
          },
          undefined,
          {
            onprogress: (p) => {
              seen.push(p.progress);
              totals.add(p.total);
            },
            timeout: 300_000,
          },
        );
      } finally {
        transport.onmessage = onmessage;
      }
      assert.ok(seen.length >= 5, `only ${seen.length} progress notifications`);
      assert.deepEqual([...totals], [100 * 1024 * 1024]);
      assert.ok(arrived.every((v, i) => i === 0 || v > arrived[i - 1]), "progress went backwards");
      // The server writes the last notification, at the total, before the result.
      assert.equal(arrived.at(-1), 100 * 1024 * 1024);
    });
  } finally {
    await call(c, "ssh_manage_remote", { action: "remove", session_id: sid, remote_path: remote, recursive: true });
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test(
  { name: "a transfer cut in the middle fails with the bytes done and leaves no final file", ignore: skip },
  async () => {
    await using sshd = await startSshd();
    const root = await Deno.makeTempDir({ prefix: "mcp-cut-" });
    const remote = `/tmp/mcp-cut-${crypto.randomUUID()}`;
    try {
      const kh = await sshd.writeKnownHosts(`${root}/kh`);
      await using server = await startServer({ args: ["--known-hosts", kh, "--allow-local-dir", root] });
      const c = server.client;
      const connect = async () => await connectWithKey(c, sshd);
      const setup = await connect();
      await callOk(c, "ssh_execute", { session_id: setup, command: `head -c 300M /dev/urandom > ${remote}` });

      // Kills the connection's sshd processes once progress shows that bytes have moved.
      const cutDuring = async (name: string, args: (sid: string) => Record<string, unknown>) => {
        const before = await sshd.childPids();
        const sid = await connect();
        await callOk(c, "ssh_execute", { session_id: sid, command: "true" });
        const mine = await sshd.sessionPids(before);
        let cut = false;
        const r = await c.callTool({ name, arguments: args(sid) }, undefined, {
          onprogress: () => {
            if (cut) return;
            cut = true;
            signalAll(mine, "SIGKILL");
          },
        });
        assert.ok(cut, "no progress was reported before the transfer ended");
        const meta = r._meta as { code?: string; retryable?: boolean; hint?: string };
        const text = (r.content as { text: string }[])[0].text;
        assert.equal(r.isError, true, text);
        assert.match(text, /after \d+ of 314572800 bytes/);
        // Cut after bytes moved: a temporary file or a rename may have landed.
        assert.equal(meta.code, "CONNECTION_LOST", text);
        assert.equal(meta.retryable, false, text);
        assert.match(meta.hint!, /check the destination/);
      };

      await cutDuring(
        "ssh_download_file",
        (sid) => ({ session_id: sid, remote_path: remote, local_path: `${root}/got` }),
      );
      const leftovers: string[] = [];
      for await (const e of Deno.readDir(root)) if (e.name !== "kh") leftovers.push(e.name);
      assert.deepEqual(leftovers, [], "a partial download was left behind");

      await Deno.writeFile(`${root}/big`, new Uint8Array(300 * 1024 * 1024));
      await cutDuring("ssh_upload_file", (sid) => ({
        session_id: sid,
        local_path: `${root}/big`,
        remote_path: `${remote}.up`,
      }));
      const check = await connect();
      const st = await call(c, "ssh_stat_remote", { session_id: check, remote_path: `${remote}.up` });
      assert.equal(st.code, "SFTP_NO_SUCH_FILE", "a partial upload sits under the final name");
      await callOk(c, "ssh_execute", {
        session_id: check,
        // The cut upload's temporary file: a dead connection could not remove it. Only this run's.
        command: `rm -f ${remote} ${remote}.up /tmp/.${remote.slice("/tmp/".length)}.up.mcp-*.tmp`,
      });
    } finally {
      // The "remote" side is this machine: a failed run must not leave its big file behind.
      await Deno.remove(remote, { recursive: true }).catch(() => {});
      await Deno.remove(root, { recursive: true });
    }
  },
);
