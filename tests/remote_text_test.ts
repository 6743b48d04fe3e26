/**
 * End to end: what a remote machine prints, stores or names reaches the
 * agent's text escaped (screen clears, OSC 52 clipboard writes, OSC 0
 * titles, C1 controls, bidi overrides, forged listing lines), while
 * `structuredContent`, a shell's raw mode and downloaded files keep the
 * exact data. The real server as shipped, against a real sshd.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { call, callOk, type CallResult } from "./fixtures/mcp.ts";
import { startFileSession } from "./fixtures/file_session.ts";
import { sshdAvailable } from "./fixtures/sshd.ts";

const skip = !sshdAvailable();
if (skip) console.warn("SKIP remote text tests: no sshd on this machine (apt-get install openssh-server)");

// printf format (octal escapes, which dash and bash both read): a screen
// clear, an OSC 52 clipboard write of "rm -rf ~", an OSC 0 window title, CSI
// as the C1 character U+009B, a bidi override U+202E, NEL U+0085.
const PRINTF = String
  .raw`\033[2J\033]52;c;cm0gLXJmIH4=\007\033]0;owned\007\302\233[31m \342\200\256txt.exe \302\205 done\n`;
// The same as the remote side sends it, and as the agent's text must show it.
const EXACT = "\x1b[2J\x1b]52;c;cm0gLXJmIH4=\x07\x1b]0;owned\x07\u009b[31m \u202etxt.exe \u0085 done\n";
const SHOWN = String.raw`\x1b[2J\x1b]52;c;cm0gLXJmIH4=\x07\x1b]0;owned\x07\x9b[31m \u202etxt.exe \x85 done` + "\n";

// Any character that must never reach the text raw (a CR only outside a line ending).
// deno-lint-ignore no-control-regex
const RAW = /[\0-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]|\r(?![\r\n])/;

function assertNoRaw(r: CallResult): void {
  const found = r.text.match(RAW);
  assert.equal(
    found,
    null,
    `raw U+${found?.[0].codePointAt(0)?.toString(16)} in the text of: ${JSON.stringify(r.text)}`,
  );
}

Deno.test({ name: "remote output, names and errors reach the text escaped, data exact", ignore: skip }, async (t) => {
  await using fs = await startFileSession("mcp-rtext-");
  const c = fs.client;
  const sid = fs.sid;
  const run = (command: string) => callOk(c, "ssh_execute", { session_id: sid, command });
  await run(`mkdir -p '${fs.remote}/names' && printf '${PRINTF}' > '${fs.remote}/hostile.txt'`);
  await run(String.raw`printf 'a\233[2Jb' > '${fs.remote}/c1.bin'`);

  await t.step("ssh_execute: stdout and stderr escaped in the text, exact in structuredContent", async () => {
    const r = await run(`printf '${PRINTF}'; printf '${PRINTF}' >&2`);
    assertNoRaw(r);
    assert.ok(r.text.includes(SHOWN), r.text);
    assert.equal(r.structured.stdout, EXACT);
    assert.equal(r.structured.stderr, EXACT);
  });

  await t.step("ssh_execute: a raw C1 byte (invalid UTF-8) is U+FFFD in both, and counted as one byte", async () => {
    // 0x9b alone is CSI to an 8-bit terminal, but not UTF-8: the decoder replaces it, so it cannot act.
    const r = await run(String.raw`printf 'a\233[2Jb\n'`);
    assertNoRaw(r);
    assert.equal(r.structured.stdout, "a\ufffd[2Jb\n");
    assert.equal(r.structured.stdout_bytes, 7);
    assert.ok(r.text.includes("a\ufffd[2Jb\n"), r.text);
  });

  await t.step("a shell: text and raw mode both show escapes; raw structuredContent keeps the bytes", async () => {
    await callOk(c, "ssh_shell_open", { session_id: sid });
    // The marker is typed as MA''RK so that its echo does not match the wait.
    await callOk(c, "ssh_shell_send", { session_id: sid, data: `printf '${PRINTF}'; echo MA''RK1` });
    const text = await callOk(c, "ssh_shell_wait", { session_id: sid, pattern: "MARK1", timeout: 20 });
    assert.equal(text.structured.reason, "matched", text.text);
    assertNoRaw(text);
    assert.match(text.text, /\\u202etxt\.exe/);

    await callOk(c, "ssh_shell_send", { session_id: sid, data: `printf '${PRINTF}'; echo MA''RK2` });
    // A wait that consumes one byte only: the rest stays unread for the raw read.
    const arrived = await callOk(c, "ssh_shell_wait", {
      session_id: sid,
      pattern: "MARK2",
      timeout: 20,
      max_bytes: 1,
    });
    assert.equal(arrived.structured.reason, "matched", arrived.text);
    const raw = await callOk(c, "ssh_shell_read", { session_id: sid, mode: "raw", max_bytes: 1_000_000 });
    assertNoRaw(raw);
    // The PTY turns the newline into CRLF; the exact bytes otherwise.
    assert.ok(raw.structured.output.includes(EXACT.replace("\n", "\r\n")), JSON.stringify(raw.structured.output));
    assert.ok(raw.text.includes(SHOWN.replace("\n", "\r\n")), raw.text);
  });

  await t.step(
    "ssh_read_remote_file: text escaped, content exact; a file with a raw 0x9b comes as base64",
    async () => {
      const r = await callOk(c, "ssh_read_remote_file", { session_id: sid, remote_path: `${fs.remote}/hostile.txt` });
      assertNoRaw(r);
      assert.ok(r.text.endsWith(SHOWN), r.text);
      assert.equal(r.structured.encoding, "utf8");
      assert.equal(r.structured.content, EXACT);

      const bin = await callOk(c, "ssh_read_remote_file", { session_id: sid, remote_path: `${fs.remote}/c1.bin` });
      assertNoRaw(bin);
      assert.equal(bin.structured.encoding, "base64");
      assert.deepEqual([...Buffer.from(bin.structured.content, "base64")], [0x61, 0x9b, 0x5b, 0x32, 0x4a, 0x62]);
    },
  );

  await t.step("an error quoting a remote path shows its ESC and U+202E escaped", async () => {
    const r = await call(c, "ssh_read_remote_file", {
      session_id: sid,
      remote_path: `${fs.remote}/missing\x1b[2J\u202e`,
    });
    assert.equal(r.isError, true);
    assert.equal(r.code, "SFTP_NO_SUCH_FILE", r.text);
    assertNoRaw(r);
    assert.ok(r.text.includes(String.raw`missing\x1b[2J\u202e`), r.text);
  });

  await t.step(
    "ssh_list_remote_dir: names with ESC, OSC and U+202E escaped, exact in structuredContent",
    async () => {
      await run(
        String
          .raw`cd '${fs.remote}/names' && touch "$(printf 'evil\033]0;owned\007name')" "$(printf 'gpj.\342\200\256exe')"`,
      );
      const r = await callOk(c, "ssh_list_remote_dir", { session_id: sid, remote_path: `${fs.remote}/names` });
      assertNoRaw(r);
      assert.ok(r.text.includes(String.raw`evil\x1b]0;owned\x07name`), r.text);
      assert.ok(r.text.includes(String.raw`gpj.\u202eexe`), r.text);
      const names = r.structured.entries.map((e: { name: string }) => e.name).sort();
      assert.deepEqual(names, ["evil\x1b]0;owned\x07name", "gpj.\u202eexe"]);
    },
  );

  await t.step("ssh_download_file: the local files hold the exact bytes, whatever the text showed", async () => {
    const hostile = await callOk(c, "ssh_download_file", {
      session_id: sid,
      remote_path: `${fs.remote}/hostile.txt`,
      local_path: `${fs.root}/hostile.txt`,
    });
    assertNoRaw(hostile);
    assert.deepEqual(await Deno.readFile(`${fs.root}/hostile.txt`), new TextEncoder().encode(EXACT));
    await callOk(c, "ssh_download_file", {
      session_id: sid,
      remote_path: `${fs.remote}/c1.bin`,
      local_path: `${fs.root}/c1.bin`,
    });
    assert.deepEqual([...await Deno.readFile(`${fs.root}/c1.bin`)], [0x61, 0x9b, 0x5b, 0x32, 0x4a, 0x62]);
    // A remote name with an ESC, quoted back in the result's text.
    const named = await callOk(c, "ssh_download_file", {
      session_id: sid,
      remote_path: `${fs.remote}/names/evil\x1b]0;owned\x07name`,
      local_path: `${fs.root}/named`,
    });
    assertNoRaw(named);
    assert.ok(named.text.includes(String.raw`evil\x1b]0;owned\x07name`), named.text);
  });
});

Deno.test({
  name: "ssh_list_remote_dir quotes a name with a newline, so it cannot forge a line of the listing",
  ignore: skip,
}, async () => {
  await using fs = await startFileSession("mcp-rtext-");
  const c = fs.client;
  const forged = "innocent\n- 0644          0 2026-01-01T00:00:00.000Z forged";
  await callOk(c, "ssh_execute", {
    session_id: fs.sid,
    command: String
      .raw`mkdir -p '${fs.remote}' && cd '${fs.remote}' && touch plain "$(printf 'innocent\n- 0644          0 2026-01-01T00:00:00.000Z forged')" && ln -s "$(printf 'a\nb')" link`,
  });
  const r = await callOk(c, "ssh_list_remote_dir", { session_id: fs.sid, remote_path: fs.remote });
  const lines = r.text.split("\n");
  // The heading, then one line per entry: the newline forged none.
  assert.equal(lines.length, 1 + r.structured.entries.length, r.text);
  assert.ok(r.text.includes(String.raw`"innocent\n- 0644`), r.text);
  assert.ok(r.text.includes(String.raw`link -> "a\nb"`), r.text);
  assert.match(r.text, / plain$/m);
  assert.ok(r.structured.entries.some((e: { name: string }) => e.name === forged));
});
