/**
 * End to end: with the ssh2 version check forced to mismatch (the test-only
 * `--test-ssh2-version` flag), every repair of lib/ssh2/ stays off, the
 * server says so in one warning, and exec, SFTP both ways and a local
 * forward still work on ssh2's own code. Runs under the shipped permission
 * set (`deno run -P`), as users run the server.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { callOk, connectWithKey, startServer } from "./fixtures/mcp.ts";
import { httpGet, patternBytes, startHttpService } from "./fixtures/netns.ts";
import { sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable();
if (skip) console.warn("SKIP ssh2 guard tests: no sshd on this machine (apt-get install openssh-server)");

const REPAIRS_OFF = /ssh2 repairs off/;
const FORCED = Deno.env.get("MCP_TEST_SSH2_VERSION") !== undefined;

function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

Deno.test(
  {
    name:
      "with the ssh2 version forced to mismatch, the repairs are off, one warning says so, and exec, SFTP and a forward work",
    ignore: skip,
  },
  async () => {
    await using sshd = await startSshd({});
    await using service = await startHttpService({ host: "127.0.0.1" });
    const dir = await Deno.makeTempDir({ prefix: "mcp-ssh2-guard-" });
    try {
      const kh = await sshd.writeKnownHosts(`${dir}/kh`);
      await using server = await startServer({
        args: ["--known-hosts", kh, "--allow-local-dir", dir, "--test-ssh2-version", "0.0.0-test"],
      });
      const c = server.client;
      const first = await connectWithKey(c, sshd);
      const second = await connectWithKey(c, sshd); // a second connection must not warn again

      const echo = await callOk(c, "ssh_execute", { session_id: first, command: "echo hello; exit 3" });
      assert.equal(echo.structured.stdout, "hello\n");
      assert.equal(echo.structured.exit_code, 3);

      // Several MiB, so packets of every size and the rekey-free steady state are covered.
      const big = patternBytes(3 * 1024 * 1024 + 17);
      await Deno.writeFile(`${dir}/up.bin`, big);
      const remote = `/tmp/mcp-ssh2-guard-${crypto.randomUUID()}.bin`;
      try {
        const up = await callOk(c, "ssh_upload_file", {
          session_id: second,
          local_path: `${dir}/up.bin`,
          remote_path: remote,
          verify: true,
        });
        assert.equal(up.structured.sha256, sha256(big));
        const down = await callOk(c, "ssh_download_file", {
          session_id: second,
          remote_path: remote,
          local_path: `${dir}/down.bin`,
          verify: true,
        });
        assert.equal(down.structured.verified, true);
        assert.equal(sha256(await Deno.readFile(`${dir}/down.bin`)), sha256(big));
      } finally {
        await callOk(c, "ssh_execute", { session_id: first, command: `rm -f '${remote}'` });
      }

      const local = (await callOk(c, "ssh_forward_port", { session_id: first, remote_port: service.port }))
        .structured;
      const page = await httpGet("127.0.0.1", local.listen.port, "/");
      assert.equal(page.text, service.body);
      const bulk = await httpGet("127.0.0.1", local.listen.port, "/bytes/3145745");
      assert.deepEqual(bulk.body, patternBytes(3145745));

      const warnings = server.stderr().split("\n").filter((line) => REPAIRS_OFF.test(line));
      assert.equal(warnings.length, 1, server.stderr());
      const [warning] = warnings;
      assert.match(warning, /WARN /);
      assert.match(warning, /ssh2 is 0\.0\.0-test, not 1\.17\.0/);
      for (const repair of ["chacha20 leak fix", "rekey queue fix", "fast chacha20-poly1305 decipher", "socket"]) {
        assert.ok(warning.includes(repair), `the warning does not name the ${repair}: ${warning}`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  // Not when the fixture forces the mismatch on every server of the run.
  { name: "with the pinned ssh2, the repairs are on and nothing is logged about them", ignore: skip || FORCED },
  async () => {
    await using sshd = await startSshd({});
    const dir = await Deno.makeTempDir({ prefix: "mcp-ssh2-guard-" });
    try {
      const kh = await sshd.writeKnownHosts(`${dir}/kh`);
      await using server = await startServer({ args: ["--known-hosts", kh] });
      const id = await connectWithKey(server.client, sshd);
      const r = await callOk(server.client, "ssh_execute", { session_id: id, command: "echo ok" });
      assert.equal(r.structured.stdout, "ok\n");
      assert.doesNotMatch(server.stderr(), /ssh2 repairs off|ssh2 internals/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
