import assert from "node:assert/strict";
import { parseFlags } from "./cli.ts";
import { parseConfigFile, resolveConfig } from "./config.ts";

Deno.test("resolveConfig() reads ~/.ssh/known_hosts and writes new keys there by default", () => {
  const c = resolveConfig(parseFlags([]), {}, { home: "/home/u" });
  assert.deepEqual(c.knownHostsFiles, ["/home/u/.ssh/known_hosts"]);
  assert.equal(c.knownHostsWriteFile, "/home/u/.ssh/known_hosts");
  assert.equal(c.hostKeyPolicy, "strict");
  assert.equal(c.agentSocket, undefined);
});

Deno.test("resolveConfig() lets flags win over the file and writes to the last extra known_hosts", () => {
  const file = parseConfigFile(
    JSON.stringify({ known_hosts: ["/etc/kh"], host_key_policy: "strict", log_level: "debug", max_output_bytes: 4096 }),
    "c.json",
  );
  const flags = parseFlags(["--known-hosts", "/tmp/kh", "--host-key-policy", "accept-new"]);
  const c = resolveConfig(flags, file, { home: "/h", sshAuthSock: "/tmp/agent.sock" });
  assert.deepEqual(c.knownHostsFiles, ["/h/.ssh/known_hosts", "/etc/kh", "/tmp/kh"]);
  assert.equal(c.knownHostsWriteFile, "/tmp/kh");
  assert.equal(c.hostKeyPolicy, "accept-new");
  assert.equal(c.logLevel, "debug");
  assert.equal(c.maxOutputBytes, 4096);
  assert.equal(c.agentSocket, "/tmp/agent.sock");
});

Deno.test("resolveConfig() refuses to run without any known_hosts file", () => {
  assert.throws(() => resolveConfig(parseFlags([]), {}, {}), /No known_hosts file/);
});

Deno.test("parseConfigFile() names the bad key and rejects unknown keys", () => {
  assert.throws(() => parseConfigFile(`{"max_sessions": 0}`, "c.json"), /c\.json: max_sessions/);
  assert.throws(() => parseConfigFile(`{"strict_host_key_checking": "no"}`, "c.json"), /c\.json/);
  assert.throws(() => parseConfigFile(`{"__proto__": {"x": 1}}`, "c.json"), /c\.json/);
  assert.throws(() => parseConfigFile(`not json`, "c.json"), /not valid JSON/);
});

Deno.test("parseFlags() rejects unknown flags, bad policies and transports", () => {
  assert.throws(() => parseFlags(["--host-key-policy", "no"]), /host-key-policy/);
  assert.throws(() => parseFlags(["--transport", "websocket"]), /transport/);
  assert.throws(() => parseFlags(["--transport", "sse", "--port", "65536"]), /--port/);
  assert.throws(() => parseFlags(["--transport", "sse", "--port", "1e3"]), /--port/);
  assert.throws(() => parseFlags(["--port", "9810"]), /HTTP transports only/);
  const http = parseFlags([
    "--transport",
    "sse",
    "--port",
    "0",
    "--allow-origin",
    "http://a",
    "--allow-origin",
    "http://b",
  ]);
  assert.equal(http.transport, "sse");
  assert.equal(http.port, 0);
  assert.deepEqual(http.allowOrigins, ["http://a", "http://b"]);
  assert.throws(() => parseFlags(["--StrictHostKeyChecking=no"]), TypeError);
  assert.throws(() => parseFlags(["--log-level", "loud"]), /log-level/);
  assert.deepEqual(parseFlags(["--known-hosts", "a", "--known-hosts", "b"]).knownHosts, ["a", "b"]);
});

Deno.test("resolveConfig() takes the HTTP session cap, the initialize deadline and a TLS pair", () => {
  const defaults = resolveConfig(parseFlags([]), {}, { home: "/h" });
  assert.equal(defaults.httpMaxSessions, 32);
  assert.equal(defaults.httpInitTimeoutSeconds, 60);
  assert.equal(defaults.httpTls, undefined);
  const file = parseConfigFile(
    JSON.stringify({ http_max_sessions: 2, http_init_timeout: 0.5, http_tls_cert: "/c", http_tls_key: "/k" }),
    "c.json",
  );
  const c = resolveConfig(parseFlags(["--transport", "sse"]), file, { home: "/h" });
  assert.equal(c.httpMaxSessions, 2);
  assert.equal(c.httpInitTimeoutSeconds, 0.5);
  assert.deepEqual(c.httpTls, { certFile: "/c", keyFile: "/k" });
  const flags = parseFlags(["--transport", "sse", "--tls-cert", "/fc", "--tls-key", "/fk"]);
  assert.deepEqual(resolveConfig(flags, file, { home: "/h" }).httpTls, { certFile: "/fc", keyFile: "/fk" });
});

Deno.test("resolveConfig() refuses half a TLS pair and an initialize deadline over a minute", () => {
  const half = parseConfigFile(JSON.stringify({ http_tls_cert: "/c" }), "c.json");
  assert.throws(
    () => resolveConfig(parseFlags([]), half, { home: "/h" }),
    /http_tls_cert and http_tls_key go together/,
  );
  assert.throws(() => parseConfigFile(`{"http_init_timeout": 61}`, "c.json"), /http_init_timeout/);
  assert.throws(() => parseConfigFile(`{"http_max_sessions": 0}`, "c.json"), /http_max_sessions/);
});

Deno.test("resolveConfig() reads the guardrails: allowed hosts from file and flags, policies, the audit log", () => {
  const file = parseConfigFile(
    JSON.stringify({
      allowed_hosts: ["*.staging.example.com"],
      host_policies: [{ match: "prod-*", read_only: true, approval: "all" }, { match: ["a", "b:22"], max_timeout: 5 }],
      audit_log: "/var/log/file.jsonl",
      audit_log_keep: 3,
    }),
    "c.json",
  );
  const c = resolveConfig(parseFlags(["--allow-host", "10.0.0.0/8", "--audit-log", "/tmp/a.jsonl"]), file, {
    home: "/h",
  });
  assert.deepEqual(c.allowedHosts, ["*.staging.example.com", "10.0.0.0/8"]);
  assert.deepEqual(c.hostPolicies, [
    {
      match: ["prod-*"],
      readOnly: true,
      approval: "all",
      allowForwards: undefined,
      allowSudo: undefined,
      maxTimeoutSeconds: undefined,
    },
    {
      match: ["a", "b:22"],
      maxTimeoutSeconds: 5,
      readOnly: undefined,
      approval: undefined,
      allowForwards: undefined,
      allowSudo: undefined,
    },
  ]);
  assert.deepEqual(c.audit, { path: "/tmp/a.jsonl", maxBytes: 10 * 1024 * 1024, keep: 3, chain: true, fsync: false });
  const none = resolveConfig(parseFlags([]), {}, { home: "/h" });
  assert.equal(none.allowedHosts, undefined, "no list is no restriction");
  assert.equal(none.audit, undefined);
  assert.deepEqual(
    resolveConfig(parseFlags([]), { allowed_hosts: [] }, { home: "/h" }).allowedHosts,
    [],
    "[] allows none",
  );
});

Deno.test("parseConfigFile() refuses a bad host pattern, naming it", () => {
  assert.throws(
    () => parseConfigFile(JSON.stringify({ host_policies: [{ match: "db:99999" }] }), "c.json"),
    /host_policies\.0\.match\.0: "db:99999": port must be 1-65535/,
  );
  assert.throws(() => parseConfigFile(JSON.stringify({ allowed_hosts: ["a b"] }), "c.json"), /allowed_hosts\.0/);
  assert.throws(() => resolveConfig(parseFlags(["--allow-host", "!"]), {}, { home: "/h" }), /--allow-host !/);
});
