/**
 * End to end: the server gives up what its configuration does not need.
 * With local files turned off and strict host keys it drops its write
 * permission at start-up, and still does everything else.
 */

import assert from "node:assert/strict";
import { call, callOk, connectWithKey, startServer } from "./fixtures/mcp.ts";
import { sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable();

Deno.test(
  { name: "no local roots and strict host keys: write permission dropped, the rest works", ignore: skip },
  async () => {
    await using sshd = await startSshd();
    const dir = await Deno.makeTempDir({ prefix: "mcp-perm-" });
    try {
      const kh = await sshd.writeKnownHosts(`${dir}/kh`);
      const config = `${dir}/config.json`;
      await Deno.writeTextFile(config, JSON.stringify({ local_roots: [] }));
      await using server = await startServer({
        args: ["--known-hosts", kh, "--config", config, "--log-level", "info"],
      });
      const c = server.client;
      const sid = await connectWithKey(c, sshd);
      assert.equal((await callOk(c, "ssh_execute", { session_id: sid, command: "echo hi" })).structured.stdout, "hi\n");
      await callOk(c, "ssh_write_remote_file", { session_id: sid, remote_path: `/tmp/mcp-perm-${sid}`, content: "x" });
      const down = await call(c, "ssh_download_file", {
        session_id: sid,
        remote_path: `/tmp/mcp-perm-${sid}`,
        local_path: `${dir}/got`,
      });
      assert.equal(down.code, "PATH_NOT_ALLOWED", down.text);
      assert.match(down.text, /no local roots are configured/);
      await assert.rejects(Deno.stat(`${dir}/got`));
      await callOk(c, "ssh_manage_remote", { action: "remove", session_id: sid, remote_path: `/tmp/mcp-perm-${sid}` });
      assert.match(server.stderr(), /write permission dropped/);

      // Control: under accept-new the server must be able to record host keys, so it keeps write.
      await using other = await startServer({
        args: ["--known-hosts", kh, "--config", config, "--log-level", "info", "--host-key-policy", "accept-new"],
      });
      await connectWithKey(other.client, sshd);
      assert.doesNotMatch(other.stderr(), /write permission dropped/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
