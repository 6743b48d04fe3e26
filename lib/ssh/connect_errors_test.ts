import assert from "node:assert/strict";
import { lookupFailure, mapConnectError, mapRuntimeError } from "./connect_errors.ts";
import { loadSsh2 } from "../ssh2/mod.ts";

// The integrity check is the fast decipher's, loaded with ssh2 at the first connection.
await loadSsh2();

const ctx = {
  options: { host: "h", port: 22, username: "u" },
  lastAuth: null,
  authStarted: false,
  hostKeyChecked: true,
};

function integrity(message: string): Error {
  return Object.assign(new Error(message), { integrity: true });
}

Deno.test("mapConnectError() gives INTEGRITY_FAILED, not retryable, for a decipher's check failure", () => {
  for (const e of [integrity("Invalid MAC"), integrity("Bad packet length"), integrity("Bad padding length")]) {
    const m = mapConnectError(e, ctx);
    assert.equal(m.code, "INTEGRITY_FAILED");
    assert.equal(m.retryable, false);
    assert.match(m.hint!, /altered in transit or the keys disagree/);
    assert.equal(m.cause, e);
  }
  // during authentication it is still altered data, not a refused credential
  assert.equal(mapConnectError(integrity("Invalid MAC"), { ...ctx, authStarted: true }).code, "INTEGRITY_FAILED");
});

Deno.test("mapConnectError() goes by the field, not the message text", () => {
  const m = mapConnectError(new Error("Invalid MAC"), ctx);
  assert.equal(m.code, "HANDSHAKE_FAILED");
});

Deno.test("mapRuntimeError() gives INTEGRITY_FAILED on an established connection, CONNECTION_LOST otherwise", () => {
  const m = mapRuntimeError(integrity("Invalid MAC"), "h:22");
  assert.equal(m.code, "INTEGRITY_FAILED");
  assert.equal(m.retryable, false);
  assert.match(m.message, /h:22/);
  assert.equal(mapRuntimeError(new Error("Invalid MAC")).code, "CONNECTION_LOST");
});

Deno.test("mapConnectError() gives DNS_FAILED naming the host for Deno's and Node's lookup failures", () => {
  const dns = { ...ctx, options: { host: "db1.example.invalid", port: 22, username: "u" } };
  const socket = (e: Error) => Object.assign(e, { level: "client-socket" });
  const temporary = mapConnectError(
    socket(new Error("failed to lookup address information: Temporary failure in name resolution")),
    dns,
  );
  assert.equal(temporary.code, "DNS_FAILED");
  assert.equal(temporary.message, "Cannot resolve host name db1.example.invalid: temporary failure in name resolution");
  assert.equal(temporary.retryable, true);
  const unknown = mapConnectError(
    socket(new Error("failed to lookup address information: Name or service not known")),
    dns,
  );
  assert.equal(unknown.code, "DNS_FAILED");
  assert.match(unknown.message, /db1\.example\.invalid: name or service not known$/);
  assert.equal(unknown.retryable, false);
  assert.match(unknown.hint, /spelling/);
  assert.equal(mapConnectError(socket(Object.assign(new Error("x"), { code: "ENOTFOUND" })), dns).code, "DNS_FAILED");
  // Any other socket failure is not called a lookup failure.
  assert.equal(mapConnectError(socket(new Error("Network is unreachable")), dns).code, "CONNECTION_LOST");
  assert.equal(
    lookupFailure(Object.assign(new Error("failed to lookup address information: x"), { code: "EIO" })),
    null,
  );
});
