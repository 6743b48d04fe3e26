/**
 * End to end: remote FIFOs, sockets and devices through the file tools, and
 * a request that blocks the server's sftp-server. Opening a FIFO blocks
 * sftp-server until a writer comes, and every request queued behind it with
 * it; reading /dev/zero never ends. These must be refused before they are
 * opened, and a request that blocks anyway must cost only that call.
 *
 * Every call runs under a test-level deadline, so a hang fails the test
 * instead of stalling the suite.
 */

import assert from "node:assert/strict";
// @ts-types="@modelcontextprotocol/sdk/client/index"
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { call, type CallResult, connectWithKey, startServer } from "./fixtures/mcp.ts";
import { sshdAvailable, startSshd } from "./fixtures/sshd.ts";
import { startFileSession } from "./fixtures/file_session.ts";

const skip = !sshdAvailable();
/** Far above what a refusal takes on a loaded machine; a hang meets it. */
const HANG_MS = 30_000;

/** `call`, failing the test if no answer comes within `ms`. */
async function answered(
  client: Client,
  name: string,
  args: Record<string, unknown>,
  ms = HANG_MS,
): Promise<CallResult> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${name} ${JSON.stringify(args)} got no answer in ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([call(client, name, args), hung]);
  } finally {
    clearTimeout(timer);
  }
}

async function answeredOk(client: Client, name: string, args: Record<string, unknown>): Promise<CallResult> {
  const r = await answered(client, name, args);
  if (r.isError) throw new Error(`${name} failed: ${r.text}`);
  return r;
}

Deno.test({ name: "remote FIFOs and devices are refused before they are opened", ignore: skip }, async (t) => {
  await using f = await startFileSession("mcp-special-");
  const { client: c, sid, root, remote } = f;
  const sh = (command: string) => answeredOk(c, "ssh_execute", { session_id: sid, command });
  await sh(
    `mkdir ${remote} && cd ${remote} && mkfifo fifo && printf hello > plain && ` +
      `mkdir tree && printf a > tree/a && mkfifo tree/pipe && ln -s ../fifo tree/to-fifo`,
  );
  const isFifo = async () => (await sh(`test -p ${remote}/fifo && echo fifo || echo gone`)).structured.stdout;
  const refused = (r: CallResult, kind: string) => {
    assert.equal(r.code, "NOT_A_REGULAR_FILE", r.text);
    assert.match(r.text, new RegExp(`it is a ${kind}, not a regular file`), r.text);
  };
  const plainStillReads = async () => {
    const r = await answeredOk(c, "ssh_read_remote_file", { session_id: sid, remote_path: `${remote}/plain` });
    assert.equal(r.structured.content, "hello");
  };

  await t.step("read: a FIFO is refused at once, and the next read on the session works", async () => {
    refused(await answered(c, "ssh_read_remote_file", { session_id: sid, remote_path: `${remote}/fifo` }), "FIFO");
    await plainStillReads();
    refused(
      await answered(c, "ssh_read_remote_file", { session_id: sid, remote_path: `${remote}/fifo`, line_start: 1 }),
      "FIFO",
    );
    // Through a symlink: the stat follows it, as the open would.
    refused(
      await answered(c, "ssh_read_remote_file", { session_id: sid, remote_path: `${remote}/tree/to-fifo` }),
      "FIFO",
    );
    await plainStillReads();
  });

  await t.step("read: character devices are refused, /dev/zero never read", async () => {
    for (const dev of ["/dev/zero", "/dev/urandom", "/dev/null"]) {
      refused(await answered(c, "ssh_read_remote_file", { session_id: sid, remote_path: dev }), "character device");
    }
    await plainStillReads();
  });

  await t.step("stat says what the special file is", async () => {
    const st = await answeredOk(c, "ssh_stat_remote", { session_id: sid, remote_path: `${remote}/fifo` });
    assert.equal(st.structured.type, "other");
    assert.equal(st.structured.special, "FIFO");
    assert.match(st.text, /other \(FIFO\)/);
  });

  await t.step("download: a FIFO is refused and nothing is written locally", async () => {
    const r = await answered(c, "ssh_download_file", {
      session_id: sid,
      remote_path: `${remote}/fifo`,
      local_path: `${root}/fifo-copy`,
    });
    refused(r, "FIFO");
    const dev = await answered(c, "ssh_download_file", {
      session_id: sid,
      remote_path: "/dev/zero",
      local_path: `${root}/zero-copy`,
    });
    refused(dev, "character device");
    assert.deepEqual([...Deno.readDirSync(root)], []);
    await answeredOk(c, "ssh_download_file", {
      session_id: sid,
      remote_path: `${remote}/plain`,
      local_path: `${root}/plain`,
    });
    assert.equal(await Deno.readTextFile(`${root}/plain`), "hello");
  });

  await t.step("edit: a FIFO is refused and stays a FIFO", async () => {
    const r = await answered(c, "ssh_edit_remote_file", {
      session_id: sid,
      remote_path: `${remote}/fifo`,
      old_text: "a",
      new_text: "b",
    });
    refused(r, "FIFO");
    assert.equal(await isFifo(), "fifo\n");
    await plainStillReads();
  });

  await t.step("write and upload onto a FIFO are refused in every mode; it stays a FIFO", async () => {
    for (const mode of ["create", "overwrite", "append"]) {
      const r = await answered(c, "ssh_write_remote_file", {
        session_id: sid,
        remote_path: `${remote}/fifo`,
        content: "x",
        mode,
      });
      refused(r, "FIFO");
      assert.match(r.text, /remove it first/);
    }
    await Deno.writeTextFile(`${root}/up`, "up");
    const up = await answered(c, "ssh_upload_file", {
      session_id: sid,
      local_path: `${root}/up`,
      remote_path: `${remote}/fifo`,
      overwrite: true,
    });
    refused(up, "FIFO");
    assert.equal(await isFifo(), "fifo\n");
    assert.equal((await sh(`ls -A ${remote}`)).structured.stdout, "fifo\nplain\ntree\n", "a temporary file was left");
  });

  await t.step("a tree download copies the rest and lists the FIFO in skipped", async () => {
    const r = await answeredOk(c, "ssh_download_file", {
      session_id: sid,
      remote_path: `${remote}/tree`,
      local_path: `${root}/tree`,
      recursive: true,
    });
    assert.equal(r.structured.files, 1);
    assert.deepEqual(r.structured.skipped, [{ path: "to-fifo", target: "../fifo" }, { path: "pipe", type: "FIFO" }]);
    assert.match(r.text, /1 FIFOs, sockets or devices not copied: pipe \(FIFO\)/);
    assert.equal(await Deno.readTextFile(`${root}/tree/a`), "a");
    // The relative link to ../fifo leaves the tree: skipped as a link, never followed.
    assert.deepEqual([...Deno.readDirSync(`${root}/tree`)].map((e) => e.name), ["a"]);
  });
});

Deno.test({
  name: "a read whose open blocks (a path swapped to a FIFO after the stat) is answered by its deadline, and the " +
    "session's next file call works on a new SFTP channel",
  ignore: skip,
}, async () => {
  await using sshd = await startSshd();
  const base = await Deno.makeTempDir({ prefix: "mcp-special-" });
  const kh = await sshd.writeKnownHosts(`${base}/kh`);
  // default_timeout bounds how long an SFTP request may wait on a silent channel.
  const deadlineS = 3;
  await Deno.writeTextFile(`${base}/config.json`, JSON.stringify({ default_timeout: deadlineS }));
  await using server = await startServer({ args: ["--known-hosts", kh, "--config", `${base}/config.json`] });
  const c = server.client;
  const sid = await connectWithKey(c, sshd);
  const remote = `/tmp/mcp-special-${crypto.randomUUID()}`;
  const sh = (command: string, timeout = 20) => answeredOk(c, "ssh_execute", { session_id: sid, command, timeout });
  await sh(`mkdir ${remote} && cd ${remote} && mkfifo fifo && printf hello > plain && ln -s plain link`);
  // `link` flips between the file and the FIFO as fast as the remote side can, until `stop` exists: some read
  // sees the file at its stat and the FIFO at its open, which then blocks the sftp-server.
  const racer = call(c, "ssh_execute", {
    session_id: sid,
    command: `cd ${remote} && while [ ! -e stop ]; do ln -sfn fifo link; ln -sfn plain link; done`,
    timeout: 120,
  });
  const seen = new Map<string, number>();
  let stuck: CallResult | null = null;
  let elapsed = 0;
  try {
    for (let i = 0; i < 500 && stuck === null; i++) {
      const started = performance.now();
      const r = await answered(c, "ssh_read_remote_file", { session_id: sid, remote_path: `${remote}/link` });
      const outcome = r.isError ? r.code! : "read";
      seen.set(outcome, (seen.get(outcome) ?? 0) + 1);
      if (r.code === "SFTP_TIMEOUT") {
        stuck = r;
        elapsed = performance.now() - started;
      } else {
        assert.ok(["read", "NOT_A_REGULAR_FILE", "SFTP_NO_SUCH_FILE"].includes(outcome), r.text);
      }
    }
    assert.ok(stuck !== null, `no read was caught between stat and open: ${JSON.stringify([...seen])}`);
    assert.match(stuck.text, /the server answered nothing for 3 s/);
    assert.match(stuck.text, /The SFTP channel was reset; the next file call opens a new one/);
    assert.ok(elapsed < (deadlineS + 10) * 1000, `answered after ${elapsed} ms`);
    // The next file call on the session: a fresh channel, while the old sftp-server is still blocked.
    const next = await answeredOk(c, "ssh_read_remote_file", { session_id: sid, remote_path: `${remote}/plain` });
    assert.equal(next.structured.content, "hello");
    const listed = await answeredOk(c, "ssh_list_remote_dir", { session_id: sid, remote_path: remote });
    assert.ok(listed.structured.entries.some((e: { name: string }) => e.name === "fifo"));
  } finally {
    await sh(`touch ${remote}/stop`).catch(() => {});
    await racer.catch(() => {});
    // A reader-writer open never blocks: it lets the abandoned sftp-server's open return, so it can exit.
    await sh(`exec 3<>${remote}/fifo; rm -rf ${remote}`).catch(() => {});
    await Deno.remove(base, { recursive: true });
  }
});
