import assert from "node:assert/strict";
import {
  COMMAND_OUTCOME_UNKNOWN,
  DEFAULT_HINTS,
  type ErrorCode,
  outcomeUnknown,
  SshMcpError,
  toToolResult,
} from "./errors.ts";

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

Deno.test("outcomeUnknown() takes the retry advice back and says to check the remote state", () => {
  const lost = new SshMcpError("CONNECTION_LOST", "Connection lost", { hint: "Call ssh_connect again" });
  assert.equal(lost.retryable, true); // lost before anything was sent: safe to repeat
  const unknown = outcomeUnknown(lost);
  assert.equal(unknown.code, "CONNECTION_LOST");
  assert.equal(unknown.message, "Connection lost");
  assert.equal(unknown.retryable, false);
  assert.equal(unknown.cause, lost);
  assert.equal(unknown.hint, `${COMMAND_OUTCOME_UNKNOWN}. Call ssh_connect again`);
  assert.deepEqual(toToolResult(unknown)._meta, { code: "CONNECTION_LOST", retryable: false, hint: unknown.hint });
});

Deno.test("outcomeUnknown() applied twice says it once", () => {
  const once = outcomeUnknown(new SshMcpError("CONNECTION_LOST", "Connection lost"));
  assert.equal(outcomeUnknown(once), once);
  assert.equal(once.hint, `${COMMAND_OUTCOME_UNKNOWN}. ${DEFAULT_HINTS.CONNECTION_LOST}`);
});

Deno.test("an SshMcpError thrown without a hint carries its code's default hint", () => {
  const codes = Object.keys(DEFAULT_HINTS) as ErrorCode[];
  assert.ok(codes.length > 40);
  for (const code of codes) {
    const e = new SshMcpError(code, "x");
    assert.ok(e.hint.length > 10, code);
    assert.equal(e.hint, DEFAULT_HINTS[code]);
    const r = toToolResult(e);
    assert.equal(r.content[0].text, `[${code}] x\nHint: ${DEFAULT_HINTS[code]}`);
    assert.equal(r._meta.hint, DEFAULT_HINTS[code]);
  }
  // A throw site's own hint wins.
  assert.equal(new SshMcpError("INTERNAL", "x", { hint: "Do this" }).hint, "Do this");
});
