import assert from "node:assert/strict";
import { parseFlags } from "./cli.ts";
import { type Config, resolveConfig } from "./config.ts";
import { SshMcpError } from "./errors.ts";
import { silentLogger } from "./log.ts";
import type { ConnectOptions } from "./ssh/connection.ts";
import { parseSshConfig } from "./ssh_config/mod.ts";
import { resolveTarget, type TargetRequest } from "./targets.ts";

const HOME = "/home/me";

function config(flags: string[] = []): Config {
  return resolveConfig(parseFlags(flags), {}, { home: HOME, localUser: "me", sshAuthSock: "/run/agent.sock" });
}

function resolve(text: string, request: TargetRequest, flags: string[] = []) {
  const sshConfig = parseSshConfig(text, `${HOME}/.ssh/config`, { home: HOME, localUser: "me", localHost: "here" });
  return resolveTarget(request, { config: config(flags), sshConfig, logger: silentLogger });
}

/** The chain of a resolved target as `user@host:port`, outermost first, the target last. */
function chain(options: ConnectOptions): string[] {
  const hops: string[] = [];
  for (let hop: ConnectOptions | undefined = options; hop !== undefined; hop = hop.jump) {
    hops.unshift(`${hop.username}@${hop.host}:${hop.port}`);
  }
  return hops;
}

Deno.test("resolveTarget() takes host, port, user and keys from ssh_config, and explicit arguments over it", () => {
  const text = "Host web\n  HostName 10.0.0.5\n  Port 2222\n  User deploy\n  IdentityFile ~/.ssh/web\n";
  const r = resolve(text, { host: "web" });
  assert.equal(r.alias, "web");
  assert.deepEqual([r.options.host, r.options.port, r.options.username], ["10.0.0.5", 2222, "deploy"]);
  assert.deepEqual(r.options.identityFiles, [`${HOME}/.ssh/web`]);
  assert.deepEqual(r.configLines, [
    `${HOME}/.ssh/config:2 HostName 10.0.0.5`,
    `${HOME}/.ssh/config:3 Port 2222`,
    `${HOME}/.ssh/config:4 User deploy`,
    `${HOME}/.ssh/config:5 IdentityFile ~/.ssh/web`,
  ]);
  const explicit = resolve(text, { host: "web", port: 22, username: "root", privateKeyPath: "~/k" });
  assert.deepEqual([explicit.options.port, explicit.options.username], [22, "root"]);
  assert.equal(explicit.options.privateKeyPath, `${HOME}/k`);
});

Deno.test("resolveTarget() without ssh_config lines: the local user, port 22, ssh's default keys", () => {
  const r = resolve("", { host: "10.1.1.1" });
  assert.equal(r.alias, null);
  assert.deepEqual([r.options.host, r.options.port, r.options.username], ["10.1.1.1", 22, "me"]);
  assert.deepEqual(r.options.identityFiles?.slice(0, 3), [
    `${HOME}/.ssh/id_rsa`,
    `${HOME}/.ssh/id_ecdsa`,
    `${HOME}/.ssh/id_ecdsa_sk`,
  ]);
  assert.deepEqual(resolve("", { host: "h", password: "pw" }).options.identityFiles, []);
  assert.deepEqual(resolve("", { host: "h", privateKeyPath: "/k" }).options.identityFiles, []);
});

Deno.test("resolveTarget() never weakens the server's host-key policy", () => {
  const policy = (setting: string, flags: string[]) =>
    resolve(`Host h\n  StrictHostKeyChecking ${setting}\n`, { host: "h" }, flags);
  assert.equal(policy("yes", ["--host-key-policy", "accept-new"]).options.knownHosts.policy, "strict");
  assert.equal(policy("ask", ["--host-key-policy", "accept-new"]).options.knownHosts.policy, "strict");
  assert.equal(policy("accept-new", []).options.knownHosts.policy, "strict");
  assert.equal(policy("accept-new", ["--host-key-policy", "accept-new"]).options.knownHosts.policy, "accept-new");
  const lax = policy("no", []);
  assert.equal(lax.options.knownHosts.policy, "strict");
  assert.match(lax.warnings[0], /^StrictHostKeyChecking no \(\/home\/me\/\.ssh\/config:2\) not followed/);
});

Deno.test("resolveTarget() reads ssh_config's known_hosts files besides the server's, never instead", () => {
  const r = resolve("Host h\n  UserKnownHostsFile /dev/null\n  GlobalKnownHostsFile /etc/kh\n", { host: "h" });
  assert.deepEqual(r.options.knownHosts.files, ["/dev/null", `${HOME}/.ssh/known_hosts`, "/etc/kh"]);
  assert.equal(r.options.knownHosts.writeFile, `${HOME}/.ssh/known_hosts`);
});

Deno.test("resolveTarget() builds ProxyJump chains: each hop resolved, the first hop's own ProxyJump first", () => {
  const text = [
    "Host target",
    "  HostName 10.0.0.9",
    "  ProxyJump b1,ops@b2:2200",
    "Host b1",
    "  HostName bastion1.example",
    "  User jump",
    "  ProxyJump gate",
    "Host b2",
    "  ProxyJump ignored-for-later-hops",
    "Host gate",
    "  HostName gate.example",
    "",
  ].join("\n");
  const r = resolve(text, { host: "target", password: "only-for-the-target" });
  assert.deepEqual(chain(r.options), [
    "me@gate.example:22",
    "jump@bastion1.example:22",
    "ops@b2:2200",
    "me@10.0.0.9:22",
  ]);
  // The password is the target's alone; hops authenticate with keys and the agent.
  assert.equal(r.options.password, "only-for-the-target");
  for (let hop = r.options.jump; hop !== undefined; hop = hop.jump) assert.equal(hop.password, undefined);
  assert.ok(r.jumpConfigLines.some((l) => l.startsWith("b1: ") && l.endsWith("User jump")), r.jumpConfigLines.join());
  // Hops without an IdentityFile get ssh's default keys, as `ssh b1` would.
  assert.equal(r.options.jump?.identityFiles?.[0], `${HOME}/.ssh/id_rsa`);
});

Deno.test("resolveTarget() refuses a ProxyJump loop, and a refused line names its file and line", () => {
  const loop = "Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n";
  assert.throws(() => resolve(loop, { host: "a" }), (e) => e instanceof SshMcpError && e.code === "SSH_CONFIG_INVALID");
  assert.throws(
    () => resolve("Host old\n  ProxyCommand nc %h %p\n", { host: "old" }),
    (e) => e instanceof SshMcpError && e.code === "SSH_CONFIG_REFUSED" && e.message.includes("config line 2"),
  );
});

Deno.test("resolveTarget() honours IdentityAgent none and a socket path", () => {
  assert.equal(resolve("", { host: "h" }).options.agentSocket, "/run/agent.sock");
  assert.equal(resolve("Host h\n  IdentityAgent none\n", { host: "h" }).options.agentSocket, undefined);
  assert.equal(resolve("Host h\n  IdentityAgent /tmp/a.sock\n", { host: "h" }).options.agentSocket, "/tmp/a.sock");
});

Deno.test("resolveTarget() refuses a HostName that is not a host name", () => {
  assert.throws(
    () => resolve("Host h\n  HostName -oProxyCommand=x\n", { host: "h" }),
    (e) => e instanceof SshMcpError && e.code === "SSH_CONFIG_INVALID" && e.message.includes("config:2"),
  );
});

Deno.test("resolveTarget() reads no file for known_hosts `none`, and refuses a relative one", () => {
  const r = resolve("Host h\n  UserKnownHostsFile none\n  GlobalKnownHostsFile none\n", { host: "h" });
  assert.deepEqual(r.options.knownHosts.files, [`${HOME}/.ssh/known_hosts`]);
  assert.throws(
    () => resolve("Host h\n  UserKnownHostsFile ~/kh relative_kh\n", { host: "h" }),
    (e) =>
      e instanceof SshMcpError && e.code === "SSH_CONFIG_INVALID" && e.message.includes("config:2") &&
      e.message.includes("relative_kh"),
  );
});

Deno.test("resolveTarget() says which security-relevant lines it does not follow, and refuses RevokedHostKeys", () => {
  const r = resolve("Host h\n  ForwardAgent yes\n  Ciphers aes128-ctr\n  SendEnv LANG\n", { host: "h" });
  assert.deepEqual(r.warnings, [
    `${HOME}/.ssh/config:2 ForwardAgent yes: not followed by this server`,
    `${HOME}/.ssh/config:3 Ciphers aes128-ctr: not followed by this server`,
  ]);
  assert.throws(
    () => resolve("Host h\n  RevokedHostKeys ~/.ssh/revoked\n", { host: "h" }),
    (e) => e instanceof SshMcpError && e.code === "SSH_CONFIG_INVALID" && /revocation list/.test(e.message),
  );
  assert.doesNotThrow(() => resolve("Host h\n  RevokedHostKeys none\n", { host: "h" }));
});

Deno.test("resolveTarget() holds ssh_config users to the username rules", () => {
  assert.throws(
    () => resolve("Host h\n  User a;b\n", { host: "h" }),
    (e) => e instanceof SshMcpError && e.code === "SSH_CONFIG_INVALID" && e.message.includes("config:2"),
  );
});
