/**
 * End to end: ssh_connect by ~/.ssh/config alias, through the real server
 * under its shipped permissions, against a real sshd. What applied is shown
 * line by line; explicit arguments win; lines that would run a program are
 * refused with their file and line, and only for the hosts they apply to;
 * the host-key policy is never weakened by the config; the inventory lists
 * the concrete aliases.
 */

import assert from "node:assert/strict";
import { call, callOk, startServer, type TestServer } from "./fixtures/mcp.ts";
import { type Sshd, sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable();
if (skip) console.warn("SKIP ssh_config tests: no sshd on this machine (apt-get install openssh-server)");

/** Writes the server's ~/.ssh/config (mode 0600, as ssh wants it); returns its path. */
async function writeConfig(server: TestServer, text: string, name = "config"): Promise<string> {
  await Deno.mkdir(`${server.home}/.ssh`, { recursive: true, mode: 0o700 });
  const path = `${server.home}/.ssh/${name}`;
  await Deno.writeTextFile(path, text, { mode: 0o600 });
  await Deno.chmod(path, 0o600);
  return path;
}

async function whoami(server: TestServer, sessionId: string): Promise<string> {
  const r = await callOk(server.client, "ssh_execute", { session_id: sessionId, command: "id -un" });
  return r.structured.stdout.trim();
}

/** The config line number (1-based) of the first line containing `needle`. */
function lineOf(text: string, needle: string): number {
  const index = text.split("\n").findIndex((l) => l.includes(needle));
  assert.ok(index >= 0, `no line with ${needle}`);
  return index + 1;
}

function webConfig(sshd: Sshd, extra = ""): string {
  return [
    "# test config",
    "Host web",
    "  HostName 127.0.0.1",
    `  Port ${sshd.port}`,
    `  User ${sshd.user}`,
    `  IdentityFile ${sshd.keys.ed25519.path}`,
    extra,
    "Host legacy",
    "  ProxyCommand nc %h %p",
    "Host *",
    "  User nobody-here",
    "  Port 1",
    "",
  ].join("\n");
}

Deno.test(
  { name: "ssh_connect resolves a ~/.ssh/config alias and says which lines applied", ignore: skip },
  async (t) => {
    await using sshd = await startSshd();
    const kh = await sshd.writeKnownHosts();
    await using server = await startServer({ args: ["--known-hosts", kh] });
    const c = server.client;
    const text = webConfig(sshd);
    const path = await writeConfig(server, text);

    await t.step("connect by alias: host, port, user and key come from the config", async () => {
      const r = await callOk(c, "ssh_connect", { host: "web" });
      assert.equal(r.structured.host, "127.0.0.1");
      assert.equal(r.structured.port, sshd.port);
      assert.equal(r.structured.username, sshd.user);
      assert.equal(r.structured.alias, "web");
      assert.equal(r.structured.auth_method, "publickey");
      const lines = r.structured.ssh_config as string[];
      assert.ok(lines.includes(`${path}:${lineOf(text, "HostName")} HostName 127.0.0.1`), lines.join("\n"));
      assert.ok(lines.includes(`${path}:${lineOf(text, `Port ${sshd.port}`)} Port ${sshd.port}`), lines.join("\n"));
      // First match wins: the later `Host *` User and Port did not apply.
      assert.ok(!lines.some((l) => l.includes("nobody-here")), lines.join("\n"));
      assert.match(r.text, new RegExp(`ssh_config: .*${path}:${lineOf(text, "HostName")} HostName`));
      assert.equal(await whoami(server, r.structured.session_id), sshd.user);
    });

    await t.step("explicit arguments win over the config", async () => {
      // The config's Port for other hosts is 1 (nothing listens): an explicit port overrides it.
      const r = await callOk(c, "ssh_connect", {
        host: "127.0.0.1",
        port: sshd.port,
        username: sshd.user,
        private_key_path: sshd.keys.ed25519.path,
      });
      assert.equal(r.structured.port, sshd.port);
      assert.equal(r.structured.username, sshd.user);
      const wrongUser = await call(c, "ssh_connect", { host: "web", username: "no-such-user-here" });
      assert.equal(wrongUser.code, "AUTH_FAILED", wrongUser.text);
    });

    await t.step("ProxyCommand is refused with its file and line, and only for its host", async () => {
      const r = await call(c, "ssh_connect", { host: "legacy" });
      assert.equal(r.code, "SSH_CONFIG_REFUSED", r.text);
      assert.ok(r.text.includes(`${path}:${lineOf(text, "ProxyCommand")}`) || r.text.includes(`${path} line`), r.text);
      assert.match(r.text, /ProxyCommand/);
      await callOk(c, "ssh_connect", { host: "web" }); // the other hosts still work
    });

    await t.step("ssh_execute_many takes aliases: an open session to the alias's target is reused", async () => {
      const r = await callOk(c, "ssh_execute_many", { targets: ["web", "legacy"], command: "id -un" });
      const [web, legacy] = r.structured.results as {
        reused_session?: boolean;
        stdout: string;
        error_code?: string;
        host: string;
      }[];
      assert.equal(web.reused_session, true, JSON.stringify(web));
      assert.equal(web.stdout, `${sshd.user}\n`);
      assert.equal(web.host, `${sshd.user}@127.0.0.1:${sshd.port}`);
      assert.equal(legacy.error_code, "SSH_CONFIG_REFUSED");
    });

    await t.step("ssh_list_sessions lists the concrete aliases with their resolved targets", async () => {
      const r = await callOk(c, "ssh_list_sessions");
      const hosts = r.structured.hosts as {
        alias: string;
        host: string;
        port: number;
        username: string | null;
        host_key_known: boolean | null;
        error?: string;
      }[];
      assert.deepEqual(hosts.map((h) => h.alias), ["web", "legacy"]);
      const web = hosts[0];
      assert.equal(web.host, "127.0.0.1");
      assert.equal(web.port, sshd.port);
      assert.equal(web.username, sshd.user);
      assert.equal(web.host_key_known, true);
      assert.match(hosts[1].error ?? "", /ProxyCommand/);
      assert.match(r.text, new RegExp(`web: ${sshd.user}@127\\.0\\.0\\.1:${sshd.port}, host key known`));
    });
  },
);

Deno.test(
  { name: "ssh_config: Match exec, Include, tokens, HostKeyAlias and the host-key floor", ignore: skip },
  async (t) => {
    await using sshd = await startSshd();
    const kh = await sshd.writeKnownHosts();
    await using server = await startServer({ args: ["--known-hosts", kh, "--host-key-policy", "accept-new"] });
    const c = server.client;

    await t.step("Match exec is refused naming its line", async () => {
      const text = `Match exec "true"\n  User x\nHost web\n  HostName 127.0.0.1\n`;
      const path = await writeConfig(server, text);
      const r = await call(c, "ssh_connect", { host: "web", port: sshd.port });
      assert.equal(r.code, "SSH_CONFIG_REFUSED", r.text);
      assert.ok(r.text.includes(path), r.text);
      assert.match(r.text, /exec/);
    });

    await t.step("Include relative to ~/.ssh, with a glob, and %d/%r tokens in IdentityFile", async () => {
      await Deno.mkdir(`${server.home}/.ssh/conf.d`, { recursive: true });
      await Deno.mkdir(`${server.home}/.ssh/keys`, { recursive: true });
      await Deno.copyFile(sshd.keys.ed25519.path, `${server.home}/.ssh/keys/${sshd.user}`);
      await Deno.chmod(`${server.home}/.ssh/keys/${sshd.user}`, 0o600);
      await writeConfig(
        server,
        `Host inc\n  HostName 127.0.0.1\n  Port ${sshd.port}\n  User ${sshd.user}\n  IdentityFile %d/.ssh/keys/%r\n`,
        "conf.d/inc.conf",
      );
      await writeConfig(server, "Include conf.d/*.conf\n");
      const r = await callOk(c, "ssh_connect", { host: "inc" });
      assert.equal(r.structured.auth_method, "publickey");
      assert.ok(
        (r.structured.ssh_config as string[]).some((l) => l.includes("conf.d/inc.conf:5 IdentityFile")),
        r.structured.ssh_config.join("\n"),
      );
      assert.equal(await whoami(server, r.structured.session_id), sshd.user);
    });

    await t.step("StrictHostKeyChecking yes makes a host stricter than the server's accept-new", async () => {
      const empty = `${server.home}/empty_known_hosts`;
      await Deno.writeTextFile(empty, "");
      await writeConfig(
        server,
        `Host strict\n  HostName localhost\n  Port ${sshd.port}\n  User ${sshd.user}\n` +
          `  IdentityFile ${sshd.keys.ed25519.path}\n  StrictHostKeyChecking yes\n  UserKnownHostsFile ${empty}\n`,
      );
      // localhost:port is in no known_hosts file: accept-new would record it, the host's own line forbids that.
      const r = await call(c, "ssh_connect", { host: "strict" });
      assert.equal(r.code, "HOST_KEY_UNKNOWN", r.text);
      assert.equal(await Deno.readTextFile(empty), "");
    });

    await t.step(
      "StrictHostKeyChecking no never makes a host weaker: the server's policy holds, with a warning",
      async () => {
        await using strictServer = await startServer({ args: ["--known-hosts", kh] });
        await writeConfig(
          strictServer,
          `Host lax\n  HostName localhost\n  Port ${sshd.port}\n  User ${sshd.user}\n` +
            `  IdentityFile ${sshd.keys.ed25519.path}\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n`,
        );
        const r = await call(strictServer.client, "ssh_connect", { host: "lax" });
        assert.equal(r.code, "HOST_KEY_UNKNOWN", r.text);
        // Under accept-new the same lines record the key where it is read again: /dev/null turns nothing off.
        await writeConfig(
          server,
          `Host lax\n  HostName localhost\n  Port ${sshd.port}\n  User ${sshd.user}\n` +
            `  IdentityFile ${sshd.keys.ed25519.path}\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n`,
        );
        const first = await callOk(c, "ssh_connect", { host: "lax" });
        assert.equal(first.structured.host_key_added, true);
        assert.match((first.structured.warnings as string[]).join("\n"), /StrictHostKeyChecking no .*not followed/);
        assert.match(first.text, /Warning: StrictHostKeyChecking no/);
        const second = await callOk(c, "ssh_connect", { host: "lax" });
        assert.equal(second.structured.host_key_added, false);
      },
    );

    await t.step("HostKeyAlias: the key is looked up under the alias", async () => {
      const aliasKh = `${server.home}/alias_known_hosts`;
      const key = sshd.hostKeys.find((k) => k.type === "ssh-ed25519")!;
      await Deno.writeTextFile(aliasKh, `box-alias ${key.publicKeyLine}\n`);
      await using strictServer = await startServer({ args: ["--known-hosts", aliasKh] });
      await writeConfig(
        strictServer,
        `Host box\n  HostName 127.0.0.1\n  Port ${sshd.port}\n  User ${sshd.user}\n` +
          `  IdentityFile ${sshd.keys.ed25519.path}\n  HostKeyAlias box-alias\n`,
      );
      await callOk(strictServer.client, "ssh_connect", { host: "box" });
      // Without the alias the same host is unknown to that known_hosts file.
      const direct = await call(strictServer.client, "ssh_connect", {
        host: "127.0.0.1",
        port: sshd.port,
        username: sshd.user,
        private_key_path: sshd.keys.ed25519.path,
      });
      assert.equal(direct.code, "HOST_KEY_UNKNOWN", direct.text);
    });

    await t.step("a group-writable config is refused like ssh does", async () => {
      const path = await writeConfig(server, `Host web\n  HostName 127.0.0.1\n`);
      await Deno.chmod(path, 0o620);
      const r = await call(c, "ssh_connect", { host: "web", port: sshd.port, username: sshd.user });
      assert.equal(r.code, "SSH_CONFIG_INVALID", r.text);
      assert.ok(r.text.includes(path), r.text);
    });
  },
);

Deno.test({ name: "--ssh-config none reads no ssh_config", ignore: skip }, async () => {
  await using sshd = await startSshd();
  const kh = await sshd.writeKnownHosts();
  const config = `Host 127.0.0.1\n  IdentityFile ${sshd.keys.ed25519.path}\n`;
  const target = { host: "127.0.0.1", port: sshd.port, username: sshd.user };
  {
    // The same config read: the key it names logs in.
    await using server = await startServer({ args: ["--known-hosts", kh] });
    await writeConfig(server, config);
    await callOk(server.client, "ssh_connect", target);
  }
  await using server = await startServer({ args: ["--known-hosts", kh, "--ssh-config", "none"] });
  await writeConfig(server, config);
  const r = await call(server.client, "ssh_connect", target);
  assert.equal(r.code, "AUTH_METHOD_MISSING", r.text);
  const list = await callOk(server.client, "ssh_list_sessions");
  assert.deepEqual(list.structured.hosts, []);
});
