import assert from "node:assert/strict";
import { hostMatches, normalHost, OPEN_POLICY, patternProblem, policyFor } from "./policy.ts";

Deno.test("hostMatches() takes globs without regard to case, and a port when the pattern has one", () => {
  const list = ["*.staging.example.com", "db1:2222"];
  assert.equal(hostMatches(list, "WEB.staging.example.com", 22), true);
  assert.equal(hostMatches(list, "web.staging.example.com.", 22), true, "a trailing dot is the same name");
  assert.equal(hostMatches(list, "staging.example.com", 22), false);
  assert.equal(hostMatches(list, "db1", 2222), true);
  assert.equal(hostMatches(list, "db1", 22), false);
  assert.equal(hostMatches(["db1:*"], "db1", 8022), true);
  assert.equal(hostMatches([], "anything", 22), false);
});

Deno.test("hostMatches() lets an exclusion win over any inclusion", () => {
  const list = ["*.example.com", "!prod-*.example.com"];
  assert.equal(hostMatches(list, "dev-1.example.com", 22), true);
  assert.equal(hostMatches(list, "prod-1.example.com", 22), false);
  assert.equal(hostMatches(["!prod-*"], "dev", 22), false, "exclusions alone allow nothing");
});

Deno.test("hostMatches() reads every spelling of an IPv4 address as the resolver does", () => {
  const list = ["*", "!10.0.0.0/8", "!127.*"];
  for (
    const host of ["10.0.0.1", "167772161", "10.1", "0x0a.0.0.1", "012.0.0.1", "::ffff:10.0.0.1", "[::ffff:a00:1]"]
  ) {
    assert.equal(hostMatches(list, host, 22), false, host);
  }
  for (const host of ["127.0.0.1", "2130706433", "127.1", "0x7f000001"]) {
    assert.equal(hostMatches(list, host, 22), false, host);
  }
  assert.equal(hostMatches(list, "11.0.0.1", 22), true);
  assert.equal(hostMatches(list, "10.example.com", 22), true, "a name is not an address");
  assert.equal(normalHost("0x7f.1"), "127.0.0.1");
  assert.equal(normalHost("256.1.1.1"), "256.1.1.1", "not an address: a name, matched as written");
});

Deno.test("hostMatches() compares IPv6 blocks by value, with brackets and ports", () => {
  assert.equal(hostMatches(["2001:db8::/32"], "2001:DB8:0:0::5", 22), true);
  assert.equal(hostMatches(["2001:db8::/32"], "2001:db9::5", 22), false);
  assert.equal(hostMatches(["[::1]:2222"], "::1", 2222), true);
  assert.equal(hostMatches(["[::1]:2222"], "::1", 22), false);
  assert.equal(hostMatches(["::1/128"], "0:0:0:0:0:0:0:1", 22), true);
  assert.equal(hostMatches(["10.0.0.0/8"], "::1", 22), false);
});

Deno.test("patternProblem() names what is wrong with a pattern", () => {
  assert.equal(patternProblem("db-*.example.com:22"), null);
  assert.equal(patternProblem("[fd00::1]:22"), null);
  assert.match(patternProblem("10.0.0.0/33")!, /out of range/);
  assert.match(patternProblem("db:0")!, /port/);
  assert.match(patternProblem("db:http")!, /port/);
  assert.match(patternProblem("a b")!, /one host/);
  assert.match(patternProblem("a,b")!, /one host/);
  assert.match(patternProblem("!")!, /nothing after/);
  assert.match(patternProblem("")!, /empty/);
  assert.match(patternProblem("example.com/8")!, /ADDRESS\/BITS/);
});

Deno.test("policyFor() takes each field from the first rule that covers the host and sets it", () => {
  const rules = [
    { match: ["prod-*"], readOnly: true },
    { match: ["prod-db"], readOnly: false, approval: "all" as const },
    { match: ["*"], approval: "destructive" as const, maxTimeoutSeconds: 60 },
  ];
  assert.deepEqual(policyFor(rules, "prod-db", 22), {
    ...OPEN_POLICY,
    readOnly: true,
    approval: "all",
    maxTimeoutSeconds: 60,
  });
  assert.deepEqual(policyFor(rules, "dev", 22), { ...OPEN_POLICY, approval: "destructive", maxTimeoutSeconds: 60 });
  assert.deepEqual(policyFor([], "dev", 22), OPEN_POLICY);
});

Deno.test("hostMatches() reads every spelling of an IPv6 address as one, in globs and exclusions", () => {
  for (const host of ["fd00:0::5", "fd00:0:0:0:0:0:0:5", "FD00::0005", "[fd00::5]"]) {
    assert.equal(hostMatches(["fd00::5"], host, 22), true, host);
    assert.equal(hostMatches(["*", "!fd00::5"], host, 22), false, host);
    assert.equal(hostMatches(["[FD00:0::5]:22"], host, 22), true, host);
  }
  assert.equal(normalHost("2001:DB8:0:0:1:0:0:1"), "2001:db8::1:0:0:1", "the first of two equal zero runs");
  assert.equal(normalHost("2001:db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1", "one zero group is not ::");
});

Deno.test("hostMatches() never allows the unspecified addresses, which reach this machine", () => {
  for (const host of ["0", "0.0.0.0", "0.1.2.3", "::", "0:0:0:0:0:0:0:0", "[::]"]) {
    assert.equal(hostMatches(["*"], host, 22), false, host);
    assert.equal(hostMatches(["0.0.0.0/0", "::/0", host], host, 22), false, host);
  }
  assert.equal(hostMatches(["*"], "1.0.0.0", 22), true);
});
