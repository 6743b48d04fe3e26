import assert from "node:assert/strict";
import { matchHostname, matchPattern, matchPatternList } from "./pattern.ts";

Deno.test("matchPattern() globs with * and ?, case-sensitively", () => {
  assert.ok(matchPattern("web1.prod", "*.prod"));
  assert.ok(matchPattern("ab", "?b*"));
  assert.ok(matchPattern("", "*"));
  assert.ok(!matchPattern("Web", "web"));
  assert.ok(!matchPattern("abc", "a?"));
  assert.ok(matchPattern("a[b]", "a[b]")); // no character classes in ssh_config
});

Deno.test("matchPattern() is not exponential on hostile patterns", () => {
  assert.ok(!matchPattern("a".repeat(5000), "*a*a*a*a*a*a*a*a*b"));
});

Deno.test("matchPatternList() lets a negation veto the whole list", () => {
  assert.ok(matchPatternList("alice", "bob,alice", false));
  assert.ok(!matchPatternList("alice", "*,!alice", false));
  assert.ok(!matchPatternList("alice", "!bob", false)); // a negation alone matches nothing
  assert.ok(!matchPatternList("Alice", "alice", false));
});

Deno.test("matchHostname() lowercases both sides", () => {
  assert.ok(matchHostname("Web.Example.COM", "*.example.com"));
  assert.ok(matchHostname("web.example.com", "*.EXAMPLE.com"));
});
