import assert from "node:assert/strict";
import { envNameProblem, hostHint, hostProblem, hostWithPort, shellQuote, userProblem } from "./validate.ts";

Deno.test("hostProblem() accepts names, IPv4 and IPv6 addresses", () => {
  for (
    const h of [
      "example.com",
      "a-b.c_d",
      "127.0.0.1",
      "::1",
      "::",
      "fe80::1%eth0",
      "2001:db8::1",
      "::ffff:127.0.0.1",
      "h",
    ]
  ) {
    assert.equal(hostProblem(h), null, h);
  }
});

Deno.test("hostProblem() rejects options, metacharacters and control characters", () => {
  for (
    const h of [
      "",
      "-oProxyCommand=touch /tmp/pwned",
      "host;id",
      "host name",
      "$(id)",
      "`id`",
      "a\nb",
      "a\0b",
      "x".repeat(254),
      "[::1",
      "[::1]",
      "[127.0.0.1]",
      "[h]:2222",
      "::g",
      "host/../x",
      "__proto__:",
    ]
  ) {
    assert.notEqual(hostProblem(h), null, JSON.stringify(h));
  }
});

Deno.test("userProblem() accepts ordinary and domain-style users", () => {
  for (const u of ["root", "deploy-bot", "a.b", "user@corp.example", "svc_1"]) {
    assert.equal(userProblem(u), null, u);
  }
});

Deno.test("userProblem() rejects options, metacharacters and control characters", () => {
  for (const u of ["", "-oProxyCommand=x", "a b", "a;b", "$(id)", "`id`", "a\nb", "a'b", "a|b", "a\\b"]) {
    assert.notEqual(userProblem(u), null, JSON.stringify(u));
  }
});

Deno.test("envNameProblem() allows only portable names", () => {
  assert.equal(envNameProblem("MY_VAR1"), null);
  assert.match(envNameProblem("__mcp_k") ?? "", /reserved/);
  for (const n of ["", "1A", "A-B", "A B", "A=B", "__proto__", "__proto__;x", "PATH\n"]) {
    assert.notEqual(envNameProblem(n), null, n);
  }
});

Deno.test("shellQuote() makes one literal argument of hostile text", () => {
  assert.equal(shellQuote("plain"), "'plain'");
  assert.equal(shellQuote("it's"), `'it'\\''s'`);
  assert.equal(shellQuote("$(id) `id` ; x\ny"), "'$(id) `id` ; x\ny'");
  assert.throws(() => shellQuote("a\0b"), RangeError);
});

Deno.test("hostProblem() accepts an IPv6 literal only when it parses as one", () => {
  for (
    const h of [":::::", "1::2::3", "1:2:3:4:5:6:7:8:9", "::1::", "fe80::1%", "fe80::1%a%b", "::1:2:3:4:5:6:7:8:9"]
  ) {
    assert.match(hostProblem(h) ?? "", /not a valid IPv6 address/, JSON.stringify(h));
  }
});

Deno.test("hostProblem() refuses host:port and says the port has its own field", () => {
  for (const h of ["127.0.0.1:2222", "localhost:22", "example.com:65535", "h:0"]) {
    assert.match(hostProblem(h) ?? "", /port.*`port`/, h);
  }
  assert.match(hostProblem("[::1]:2222") ?? "", /`port`/);
});

Deno.test("hostWithPort() and hostHint() split host:port, bracketed or not, and nothing else", () => {
  assert.deepEqual(hostWithPort("127.0.0.1:2222"), { host: "127.0.0.1", port: 2222 });
  for (const v of ["::1", "127.0.0.1", "h:", ":22", "h:22:33", "h:abc"]) assert.equal(hostWithPort(v), null, v);
  assert.equal(hostHint("127.0.0.1:2222"), 'Call again with host "127.0.0.1" and port 2222');
  assert.equal(hostHint("[::1]:2222"), 'Call again with host "::1" and port 2222');
  assert.equal(hostHint("[::1]"), 'Call again with host "::1"');
  assert.equal(hostHint(":::::"), undefined);
});
