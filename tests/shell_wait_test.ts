/**
 * End to end: an agent's regular expression in ssh_shell_wait cannot freeze
 * the server (issue 13 item 2), on the shipped permission set against a real
 * sshd. V8's backtracking engine ran `(A+)+B` over 3000 `A`s for longer than
 * any test lasts, and nothing else (other sessions, `ping`) was answered.
 */

import assert from "node:assert/strict";
import { call, callOk, connectWithKey } from "./fixtures/mcp.ts";
import { startInProcessServer } from "./fixtures/in_process.ts";
import { sshdAvailable, startSshd } from "./fixtures/sshd.ts";
import { within } from "./fixtures/process.ts";

const skip = !sshdAvailable();

// Bound on each answer, far above what a loaded machine needs (the wait
// itself lasts 1 s), so the old code fails here instead of hanging the suite.
const ANSWER_WITHIN_MS = 30_000;

Deno.test(
  { name: "a pathological regex wait times out while other sessions and ping keep answering", ignore: skip },
  async () => {
    await using sshd = await startSshd();
    const kh = await sshd.writeKnownHosts();
    await using server = await startInProcessServer({ args: ["--known-hosts", kh] });
    const c = server.client;
    const shellSession = await connectWithKey(c, sshd);
    const otherSession = await connectWithKey(c, sshd);
    await callOk(c, "ssh_shell_open", { session_id: shellSession });
    // The login banner is read first: it has a "B" after capital letters.
    await callOk(c, "ssh_shell_send", { session_id: shellSession, data: "PS1='[mcp]''$ '" });
    const prompt = await callOk(c, "ssh_shell_wait", { session_id: shellSession, pattern: "[mcp]$ ", timeout: 20 });
    assert.equal(prompt.structured.reason, "matched", prompt.text);

    // 3000 A's, then a marker (typed as DO''NE so its echo does not match).
    // Waiting for the marker with max_bytes 1 consumes one byte only, so the
    // A's are known to have arrived and are still unread for the next wait.
    await callOk(c, "ssh_shell_send", {
      session_id: shellSession,
      data: "head -c 3000 /dev/zero | tr '\\0' A; echo; echo DO''NE",
    });
    const arrived = await callOk(c, "ssh_shell_wait", {
      session_id: shellSession,
      pattern: "DONE",
      timeout: 20,
      max_bytes: 1,
    });
    assert.equal(arrived.structured.reason, "matched", arrived.text);
    assert.ok(arrived.structured.remaining_bytes > 3000, arrived.text);

    const wait = call(c, "ssh_shell_wait", { session_id: shellSession, pattern: "(A+)+B", regex: true, timeout: 1 });
    const exec = call(c, "ssh_execute", { session_id: otherSession, command: "echo still-$((6*7))" });
    const ping = c.ping();
    const [w, e] = await Promise.all([
      within(ANSWER_WITHIN_MS, "ssh_shell_wait", wait),
      within(ANSWER_WITHIN_MS, "ssh_execute on another session", exec),
      within(ANSWER_WITHIN_MS, "ping", ping),
    ]);
    assert.equal(w.isError, false, w.text);
    assert.equal(w.structured.reason, "timeout", w.text);
    assert.equal(w.structured.match, null);
    assert.equal(e.isError, false, e.text);
    assert.equal(e.structured.stdout, "still-42\n");

    assert.ok(w.structured.output.includes("A".repeat(3000)), "the wait had the A's to search");

    // Where there is a match, the nested quantifier that froze V8 finds it:
    // the whole line of A's (the timed-out wait read the first ones). Not
    // "$": the A's arrive in chunks, and the end of the output so far is
    // the end of a line until more arrives.
    await callOk(c, "ssh_shell_send", { session_id: shellSession, data: "head -c 3000 /dev/zero | tr '\\0' A; echo" });
    const m = await within(
      ANSWER_WITHIN_MS,
      "ssh_shell_wait with a match",
      callOk(c, "ssh_shell_wait", { session_id: shellSession, pattern: "^(A+)+\\n", regex: true, timeout: 20 }),
    );
    assert.equal(m.structured.reason, "matched", m.text);
    assert.equal(m.structured.match, "A".repeat(3000) + "\n");

    // What a linear engine cannot run is refused up front, naming it.
    const refused = await call(c, "ssh_shell_wait", {
      session_id: shellSession,
      pattern: "(a)\\1",
      regex: true,
      timeout: 1,
    });
    assert.equal(refused.isError, true);
    assert.equal(refused.code, "INVALID_ARGUMENT");
    assert.match(refused.text, /backreference "\\1"/);
    await callOk(c, "ssh_shell_close", { session_id: shellSession });
  },
);
