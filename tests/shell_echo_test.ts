/**
 * End to end: shell waits see only what is new (issue 15), on the shipped
 * permission set against a real sshd. A wait after a send never matches the
 * echo of the line just sent nor the prompt from before it; prompts from
 * `read -p` and Python's input() are caught; repainting programs settle in
 * screen mode; keystrokes typed as `less` quits reach the shell; a character
 * split across packets arrives whole in text and raw modes.
 */

import assert from "node:assert/strict";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { callOk, connectWithKey, startServer } from "./fixtures/mcp.ts";
import { sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable();
const PROMPT = "[mcp]$ ";
const hasPython = new Deno.Command("sh", { args: ["-c", "command -v python3"], stdout: "null" }).outputSync().success;

async function shell(c: Client, sid: string) {
  await callOk(c, "ssh_shell_open", { session_id: sid });
  const w = await callOk(c, "ssh_shell_send", { session_id: sid, data: "PS1='[mcp]''$ '", wait_for: PROMPT });
  assert.equal(w.structured.reason, "matched", w.text);
  return {
    send: (data: string, extra: Record<string, unknown> = {}) =>
      callOk(c, "ssh_shell_send", { session_id: sid, data, timeout: 20, ...extra }),
    wait: (args: Record<string, unknown>) => callOk(c, "ssh_shell_wait", { session_id: sid, timeout: 20, ...args }),
    read: (args: Record<string, unknown> = {}) => callOk(c, "ssh_shell_read", { session_id: sid, ...args }),
  };
}

Deno.test({ name: "shell waits see only output that is new", ignore: skip }, async (t) => {
  await using sshd = await startSshd();
  const kh = await sshd.writeKnownHosts();
  // A process of its own: top and less read keys by timing, and a server sharing the test's event loop
  // once sent top's keys close enough together for it to drop them (a loaded full run).
  await using server = await startServer({ args: ["--known-hosts", kh] });
  const c = server.client;
  const sid = await connectWithKey(c, sshd);
  const { send, wait, read } = await shell(c, sid);

  await t.step("the echo of the sent line never satisfies a wait", async () => {
    await send("echo needle-$((40+2))");
    const w = await wait({ pattern: "needle-\\S+", regex: true });
    assert.equal(w.structured.match, "needle-42", w.text);
    await wait({ pattern: PROMPT });
  });

  await t.step("a line sent the moment a shell opens is not typed ahead of the prompt", async () => {
    // Typed ahead, the line is echoed twice: by the terminal at once, and by
    // readline after the prompt; the second echo would satisfy the wait.
    await callOk(c, "ssh_shell_open", { session_id: sid, shell_id: "ahead" });
    const w = await callOk(c, "ssh_shell_send", {
      session_id: sid,
      shell_id: "ahead",
      data: "echo ahead-$((2+3))",
      wait_for: "ahead-$((2+3))",
      timeout: 2,
    });
    assert.equal(w.structured.reason, "timeout", w.text);
    assert.match(w.structured.output, /^ahead-5$/m);
    await callOk(c, "ssh_shell_close", { session_id: sid, shell_id: "ahead" });
  });

  await t.step("a prompt from before the send never satisfies a wait", async () => {
    await send("echo one");
    // max_bytes 1: the prompt is known to have arrived and is left unread.
    const arrived = await wait({ pattern: PROMPT, max_bytes: 1 });
    assert.equal(arrived.structured.reason, "matched");
    assert.ok(arrived.structured.remaining_bytes > 0);
    await send("echo two-$((1+1))");
    const w = await wait({ pattern: PROMPT });
    assert.match(w.structured.output, /^two-2$/m, w.text);
  });

  await t.step("send waits in the same call and says where its output starts", async () => {
    const w = await send("echo same-$((3*3))", { wait_for: "same-\\d", regex: true });
    assert.equal(w.structured.reason, "matched", w.text);
    assert.equal(w.structured.match, "same-9");
    assert.equal(typeof w.structured.sent_at, "number");
    assert.ok(w.structured.offset > w.structured.sent_at);
    await wait({ pattern: PROMPT });
    // An explicit cursor from before the last send still finds older output.
    await send("echo first-$((1+1))");
    await send("echo second");
    const older = await wait({ pattern: "first-2", after: w.structured.sent_at });
    assert.equal(older.structured.reason, "matched", older.text);
    // The prompt after "second", not the one after first-2: the next step must start with nothing unread.
    await wait({ pattern: `\nsecond\n${PROMPT}` });
  });

  await t.step("a prompt printed by read -p is caught, not the echo that contains it", async () => {
    const asked = await send("read -p 'Name: ' n; echo \"hello $n\"", { wait_for: "Name: " });
    assert.equal(asked.structured.reason, "matched", asked.text);
    assert.ok(asked.structured.output.endsWith("\nName: "), JSON.stringify(asked.structured.output));
    const w = await send("Alice", { wait_for: PROMPT });
    assert.match(w.structured.output, /^hello Alice$/m, w.text);
  });

  await t.step({
    name: "a prompt printed by python3 input() is caught",
    ignore: !hasPython,
    fn: async () => {
      await send(`python3 -c 'print("got", input("name? "))'`);
      const asked = await wait({ pattern: "name? " });
      assert.equal(asked.structured.reason, "matched", asked.text);
      assert.ok(asked.structured.output.endsWith("\nname? "), JSON.stringify(asked.structured.output));
      const w = await send("bob", { wait_for: PROMPT });
      assert.match(w.structured.output, /^got bob$/m, w.text);
    },
  });

  await t.step("a program that repaints the same screen settles in screen mode only", async () => {
    await send("while :; do printf '\\033[H\\033[2Jsteady screen\\n'; sleep 0.05; done");
    try {
      // A frame every 50 ms: 1.5 s without a byte would take a stall no loaded machine has.
      const bytes = await wait({ quiet_ms: 1500, timeout: 4 });
      assert.equal(bytes.structured.reason, "timeout", "output never stops arriving");
      const screen = await wait({ quiet_ms: 500, mode: "screen" });
      assert.equal(screen.structured.reason, "quiet", screen.text);
      assert.equal(screen.structured.output.split("\n")[0], "steady screen");
    } finally {
      // Stopped whatever happened, so the next steps get a prompt.
      await callOk(c, "ssh_shell_send_control", { session_id: sid, key: "ctrl+c" });
      await wait({ pattern: PROMPT });
    }
  });

  await t.step("top settles in screen mode, while its repaints keep text-mode quiet from firing", async () => {
    // Watching one sleeping process, with the summary lines (clock, load, CPU, memory) switched off:
    // what top shows then stays the same while it repaints every 0.2 s.
    await send("sleep 900 & top -d 0.2 -p $!", { wait_for: "PID" });
    try {
      for (const key of ["l", "t", "t", "t", "m", "m", "m"]) {
        await send(key, { enter: false });
        // Two frames before the next key: top takes keys that arrive together in one read as one
        // unknown sequence and drops them, which a loaded machine made happen (the summary stayed).
        for (let frame = 0; frame < 2; frame++) await wait({ pattern: "PID" });
      }
      const screen = await wait({ quiet_ms: 1000, mode: "screen" });
      assert.equal(screen.structured.reason, "quiet", screen.text);
      assert.match(screen.structured.output, /PID USER.*\n.* sleep/);
      // A frame every 0.2 s: 1.5 s without a byte would take a stall no loaded machine has.
      const bytes = await wait({ quiet_ms: 1500, timeout: 4 });
      assert.equal(bytes.structured.reason, "timeout", "top kept repainting");
      assert.ok(bytes.structured.bytes > 0);
    } finally {
      await send("q", { enter: false });
      await send("kill %1", { wait_for: PROMPT });
    }
  });

  await t.step("a command typed as less quits reaches the shell", async () => {
    await callOk(c, "ssh_execute", { session_id: sid, command: "seq 1 300 > /tmp/mcp-less-$PPID.txt; echo $PPID" });
    await send("less /tmp/mcp-less-*.txt", { quiet_ms: 300, mode: "screen" });
    await send("q", { enter: false });
    const w = await send("echo after-less-$((1+1))", { wait_for: "after-less-2" });
    assert.equal(w.structured.reason, "matched", w.text);
    await send("less /tmp/mcp-less-*.txt", { quiet_ms: 300, mode: "screen" });
    const same = await send("qecho same-packet-$((1+1))", { wait_for: "same-packet-2" });
    assert.equal(same.structured.reason, "matched", same.text);
    await send("rm -f /tmp/mcp-less-*.txt", { wait_for: PROMPT });
  });

  await t.step("a 4-byte character split across packets at every offset arrives whole", async () => {
    const bytes = [0xf0, 0x9f, 0x98, 0x80]; // U+1F600
    const esc = (b: number[]) => b.map((x) => `\\${x.toString(8)}`).join("");
    for (const mode of ["text", "raw"]) {
      for (let cut = 1; cut < 4; cut++) {
        const flag = `/tmp/mcp-utf8-${crypto.randomUUID()}`;
        await send(`f=${flag}`, { wait_for: PROMPT });
        // The rest is printed once the flag file exists: the first part is
        // read while the character is incomplete. Shorter than the terminal is
        // wide: readline redraws a wrapped line in pieces when the machine is
        // busy, and that echo is not the sent text byte for byte.
        const [head, tail] = [esc(bytes.slice(0, cut)), esc(bytes.slice(cut))];
        await send(`printf 'A${head}'; until [ -e $f ]; do sleep .05; done; rm $f; printf '${tail}B\\n'`);
        const a = await wait({ pattern: "A" });
        assert.equal(a.structured.reason, "matched", a.text);
        let text = "";
        let dropped = 0;
        const first = await read({ mode });
        text += first.structured.output;
        dropped += first.structured.dropped_bytes;
        await callOk(c, "ssh_execute", { session_id: sid, command: `touch ${flag}` });
        // Read (a wait would not look before this send) up to the next prompt.
        for (const end = Date.now() + 20_000; !text.includes(PROMPT) && Date.now() < end;) {
          const r = await read({ mode });
          text += r.structured.output;
          dropped += r.structured.dropped_bytes;
          if (!text.includes(PROMPT)) await new Promise((r) => setTimeout(r, 50));
        }
        assert.ok(text.startsWith("\u{1F600}B"), `${mode} cut ${cut}: ${JSON.stringify(text)}`);
        assert.equal(dropped, 0);
      }
    }
  });
});
