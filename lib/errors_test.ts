import assert from "node:assert/strict";
import { SshMcpError, toToolResult } from "./errors.ts";

Deno.test("toToolResult() keeps code, hint and retryability of an SshMcpError", () => {
  const r = toToolResult(new SshMcpError("CONNECT_TIMEOUT", "Cannot connect", { hint: "Raise connect_timeout" }));
  assert.equal(r.isError, true);
  assert.equal(r.content[0].text, "[CONNECT_TIMEOUT] Cannot connect\nHint: Raise connect_timeout");
  assert.deepEqual(r._meta, { code: "CONNECT_TIMEOUT", retryable: true, hint: "Raise connect_timeout" });
});

Deno.test("toToolResult() maps unknown errors to INTERNAL without a stack", () => {
  const r = toToolResult(new TypeError("boom"));
  assert.equal(r._meta.code, "INTERNAL");
  assert.match(r.content[0].text, /^\[INTERNAL\] Unexpected failure: TypeError: boom/);
  assert.doesNotMatch(r.content[0].text, /at .*\.ts:\d+/);
});

Deno.test("SshMcpError keeps its cause", () => {
  const cause = new Error("inner");
  assert.equal(new SshMcpError("AUTH_FAILED", "x", { cause }).cause, cause);
  assert.equal(new SshMcpError("AUTH_FAILED", "x").retryable, false);
});
