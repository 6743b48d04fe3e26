import assert from "node:assert/strict";
import { mapConnectError, mapRuntimeError } from "./connect_errors.ts";

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
