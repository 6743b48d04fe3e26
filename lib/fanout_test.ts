import assert from "node:assert/strict";
import {
  countResults,
  groupResults,
  hostLabel,
  type HostResult,
  parseTarget,
  summarise,
  targetProblem,
} from "./fanout.ts";

function result(target: string, fields: Partial<HostResult> = {}): HostResult {
  const stdout = fields.stdout ?? "ok\n";
  return {
    target,
    host: `u@${target}:22`,
    exit_code: 0,
    signal: null,
    timed_out: false,
    stdout,
    stderr: "",
    truncated: false,
    stdout_bytes: new TextEncoder().encode(stdout).length,
    stderr_bytes: 0,
    duration_ms: 5,
    ...fields,
  };
}

function failure(target: string, code: string, error = `${code} on ${target}`): HostResult {
  return result(target, { exit_code: null, stdout: "", stdout_bytes: 0, error_code: code, error });
}

Deno.test("parseTarget() reads session ids, user@host:port, bracketed IPv6 and aliases", () => {
  assert.deepEqual(parseTarget("s-0123456789abcdef"), { kind: "session", sessionId: "s-0123456789abcdef" });
  assert.deepEqual(parseTarget("web1"), { kind: "host", host: "web1" });
  assert.deepEqual(parseTarget("deploy@web1:2222"), { kind: "host", host: "web1", port: 2222, username: "deploy" });
  assert.deepEqual(parseTarget("10.0.0.1:22"), { kind: "host", host: "10.0.0.1", port: 22 });
  assert.deepEqual(parseTarget("root@[::1]:2200"), { kind: "host", host: "::1", port: 2200, username: "root" });
  assert.deepEqual(parseTarget("::1"), { kind: "host", host: "::1" });
  // Not quite a session id: a host name like any other.
  assert.deepEqual(parseTarget("s-0123"), { kind: "host", host: "s-0123" });
});

Deno.test("targetProblem() refuses options, metacharacters, bad ports and empty parts", () => {
  for (
    const bad of [
      "-oProxyCommand=touch /tmp/x",
      "u@-oProxyCommand=x",
      "web1;id",
      "$(id)@web1",
      "web1:0",
      "web1:65536",
      "web1:22:1",
      "@web1",
      "u@",
      "",
      "a\nb",
      "[web1",
      "__proto__@h:22x",
    ]
  ) {
    assert.notEqual(targetProblem(bad), null, bad);
  }
  assert.equal(targetProblem("u@h.example:22"), null);
  assert.match(targetProblem("web1:0")!, /port/);
});

Deno.test("hostLabel() brackets IPv6 addresses", () => {
  assert.equal(hostLabel("u", "::1", 22), "u@[::1]:22");
  assert.equal(hostLabel("u", "web1", 2222), "u@web1:2222");
});

Deno.test("groupResults() groups identical outcomes, largest first, failures last, targets in given order", () => {
  const results = [
    failure("db3", "CONNECT_REFUSED"),
    result("web1"),
    result("web2", { stdout: "other\n" }),
    result("web3"),
    result("web4", { exit_code: 3 }),
    failure("db4", "CONNECT_REFUSED"),
    failure("db5", "COMMAND_TIMEOUT"),
  ];
  const groups = groupResults(results).map((g) => g.group);
  assert.deepEqual(groups, [
    { targets: ["web1", "web3"], exit_code: 0, same_output: true },
    { targets: ["web2"], exit_code: 0, same_output: true },
    { targets: ["web4"], exit_code: 3, same_output: true },
    { targets: ["db3", "db4"], exit_code: null, error_code: "CONNECT_REFUSED", same_output: true },
    { targets: ["db5"], exit_code: null, error_code: "COMMAND_TIMEOUT", same_output: true },
  ]);
});

Deno.test("groupResults() keeps apart what differs only in stderr, signal or total bytes", () => {
  const groups = groupResults([
    result("a"),
    result("b", { stderr: "warn\n", stderr_bytes: 5 }),
    result("c", { exit_code: null, signal: "SIGKILL" }),
    // Same head and tail after the cut, different amounts in between.
    result("d", { truncated: true, stdout_bytes: 9000 }),
    result("e", { truncated: true, stdout_bytes: 9001 }),
    result("f"),
  ]);
  assert.deepEqual(groups.map((g) => g.group.targets), [["a", "f"], ["b"], ["c"], ["d"], ["e"]]);
  assert.equal(groups[2].group.signal, "SIGKILL");
});

Deno.test("countResults() counts ok, non-zero exits and signals, and failures", () => {
  assert.deepEqual(
    countResults([
      result("a"),
      result("b", { exit_code: 1 }),
      result("c", { exit_code: null, signal: "SIGTERM" }),
      failure("d", "AUTH_FAILED"),
    ]),
    { hosts: 4, ok: 1, nonzero: 2, failed: 1 },
  );
});

Deno.test("summarise() prints counts, each group's output once, and failures by code", () => {
  const results = [
    ...Array.from({ length: 18 }, (_, i) => result(`web${i + 1}`, { stdout: "same\n" })),
    failure("db3", "CONNECT_REFUSED", "Cannot connect to db3:22: connection refused"),
    { ...failure("db4", "COMMAND_TIMEOUT", "Timed out after 2 s"), stdout: "partial\n", stdout_bytes: 8 },
  ];
  const text = summarise(results, 1234);
  const lines = text.split("\n");
  assert.equal(lines[0], "20 hosts: 18 ok, 2 failed (1.2 s)");
  assert.equal(lines[1], `18 hosts, exit 0, same output: ${results.slice(0, 18).map((r) => r.target).join(", ")}`);
  assert.equal(lines[2], "--- stdout (5 bytes) ---");
  assert.equal(lines[3], "same");
  assert.equal(lines[4], "CONNECT_REFUSED: db3");
  assert.equal(lines[5], "  Cannot connect to db3:22: connection refused");
  assert.equal(lines[6], "COMMAND_TIMEOUT: db4");
  assert.equal(lines[7], "  Timed out after 2 s");
  assert.equal(lines[8], "--- stdout (8 bytes) ---");
  assert.equal(lines[9], "partial");
  assert.equal(lines.length, 10);
  // The shared output appears once, not eighteen times.
  assert.equal(text.split("same\n").length, 2);
});

Deno.test("summarise() names non-zero exits, signals, cut output, reused sessions and output ids", () => {
  const text = summarise([
    result("a", { exit_code: 2, stdout: "", stdout_bytes: 0, stderr: "boom\n", stderr_bytes: 5 }),
    result("b", { exit_code: null, signal: "SIGKILL", stdout: "", stdout_bytes: 0 }),
    result("c", {
      truncated: true,
      stdout_bytes: 70000,
      session_id: "s-0123456789abcdef",
      reused_session: true,
      output_id: "o-abc",
    }),
  ], 50);
  assert.match(text, /^3 hosts: 1 ok, 2 non-zero exit \(0\.1 s\)$/m);
  assert.match(text, /^1 host, exit 2: a\n--- stderr \(5 bytes\) ---\nboom$/m);
  assert.match(text, /^1 host, killed by SIGKILL: b$/m);
  assert.match(text, /^--- stdout \(70000 bytes, cut: head and tail kept\) ---$/m);
  assert.match(text, /^Ran on open sessions: c \(s-0123456789abcdef\)$/m);
  assert.match(text, /^Whole output \(ssh_output_read\): c s-0123456789abcdef o-abc$/m);
});
