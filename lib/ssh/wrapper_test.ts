import assert from "node:assert/strict";
import {
  ARG_PART_BYTES,
  DIRECT_MAX_BYTES,
  HOP_LINE,
  isPosixShell,
  killScript,
  MARKER_SEARCH_LIMIT,
  MarkerScan,
  wrapCommand,
} from "./wrapper.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

Deno.test("the hop line is one single-quoted string that fish, csh and sh all take literally", () => {
  const quoted = /^exec \/bin\/sh -c '([^']*)'$/.exec(HOP_LINE);
  assert.ok(quoted, HOP_LINE);
  // fish reads \\ and \' inside single quotes, csh expands ! and refuses a newline there.
  assert.doesNotMatch(quoted[1], /[\\!\n]/);
});

Deno.test("wrapCommand() quotes cwd and env values so the remote sees literals", () => {
  for (const delivery of ["direct", "hop"] as const) {
    const w = wrapCommand({
      command: "echo hi",
      cwd: "/tmp/x; touch /tmp/pwned",
      env: { A: "$(id)", B: "it's" },
      nonce: "n0",
      delivery,
    });
    const script = delivery === "hop" ? w.stdinPrefix : w.commandLine;
    assert.match(script, /export A='\$\(id\)'/);
    assert.match(script, /export B='it'\\''s'/);
    assert.match(script, /cd -- '\/tmp\/x; touch \/tmp\/pwned' \|\| \{/);
    assert.match(script, /__mcp_c0='echo hi'/);
  }
});

Deno.test("the hop script is one line whatever the values hold; direct keeps newlines in quotes", () => {
  const options = { command: "a\nb", env: { V: "1\n2" }, cwd: "/x\ny", nonce: "n1" };
  const hop = wrapCommand({ ...options, delivery: "hop" });
  assert.equal(hop.commandLine, HOP_LINE);
  assert.equal(hop.stdinPrefix.indexOf("\n"), hop.stdinPrefix.length - 1);
  assert.match(hop.stdinPrefix, /__mcp_c0='a'"\$__mcp_n"'b'/);
  const direct = wrapCommand({ ...options, delivery: "direct" });
  assert.equal(direct.stdinPrefix, "");
  assert.match(direct.commandLine, /__mcp_c0='a\nb'/);
});

Deno.test("a direct script too big for one argument goes on stdin instead", () => {
  const w = wrapCommand({ command: `echo ${"x".repeat(DIRECT_MAX_BYTES)}`, nonce: "n2", delivery: "direct" });
  assert.equal(w.delivery, "hop");
  assert.equal(w.commandLine, HOP_LINE);
});

Deno.test("the marker is printed through printf escapes: an echo of the script cannot forge it", () => {
  const w = wrapCommand({ command: "true", nonce: "abc", delivery: "hop" });
  assert.ok(!w.stdinPrefix.includes("\x01"), "raw marker byte in the script");
  const scan = new MarkerScan("abc");
  assert.equal(dec.decode(scan.take(enc.encode(w.stdinPrefix))), "");
  assert.equal(dec.decode(scan.end()), w.stdinPrefix);
  assert.equal(scan.missing, true);
});

Deno.test("MarkerScan keeps login output apart and finds the marker split over chunks", () => {
  const scan = new MarkerScan("abc");
  const all = enc.encode("Welcome!\n\x01MCPabc:4242:g\nhello\n");
  const out: number[] = [];
  for (const b of all) out.push(...scan.take(new Uint8Array([b])));
  assert.equal(dec.decode(new Uint8Array(out)), "hello\n");
  assert.equal(dec.decode(scan.noise), "Welcome!\n");
  assert.deepEqual(scan.report(), { kind: "started", pid: 4242, group: "g" });
  assert.equal(dec.decode(scan.take(enc.encode("more"))), "more");
});

Deno.test("MarkerScan ignores another call's marker, PIDs 0 and 1, and reports a failed cd", () => {
  const other = new MarkerScan("abc");
  other.take(enc.encode("\x01MCPxyz:4242:g\nout\n"));
  assert.equal(dec.decode(other.end()), "\x01MCPxyz:4242:g\nout\n");
  assert.equal(other.report(), null);
  for (const pid of ["0", "1"]) {
    const scan = new MarkerScan("abc");
    scan.take(enc.encode(`\x01MCPabc:${pid}:g\n`));
    assert.equal(scan.report(), null);
  }
  const cwd = new MarkerScan("abc");
  cwd.take(enc.encode("\x01MCPabc:cwd\n"));
  assert.deepEqual(cwd.report(), { kind: "cwd" });
});

Deno.test("MarkerScan gives up after its limit and passes everything through", () => {
  const scan = new MarkerScan("abc");
  const first = scan.take(new Uint8Array(MARKER_SEARCH_LIMIT));
  assert.equal(first.length, 0);
  const rest = scan.take(new Uint8Array(10));
  assert.equal(rest.length, MARKER_SEARCH_LIMIT + 10);
  assert.equal(scan.missing, true);
});

Deno.test("isPosixShell() knows the POSIX family by file name", () => {
  for (const s of ["/bin/bash", "/usr/bin/zsh", "/bin/sh", "/bin/dash", "/bin/ash", "/usr/bin/ksh93"]) {
    assert.ok(isPosixShell(s), s);
  }
  for (const s of ["/usr/bin/fish", "/bin/tcsh", "/bin/csh", "/usr/sbin/nologin", "/bin/rbash", ""]) {
    assert.ok(!isPosixShell(s), s);
  }
});

Deno.test("killScript() refuses PIDs that would widen the kill", () => {
  assert.throws(() => killScript(1, "g"), RangeError);
  assert.throws(() => killScript(0, "n"), RangeError);
  assert.throws(() => killScript(-5, "g"), RangeError);
});

Deno.test("with the group known to be the shell's own, the script skips finding out", () => {
  const known = wrapCommand({ command: "true", nonce: "n3", delivery: "direct", ownGroup: true });
  assert.doesNotMatch(known.commandLine, /proc|setsid/);
  assert.match(known.commandLine, /:%s:g\\n' \$\$; __mcp_c0='true'; eval "\$__mcp_c0"$/);
  const unknown = wrapCommand({ command: "true", nonce: "n3", delivery: "direct" });
  assert.match(unknown.commandLine, /\/proc\/\$\$\/stat/);
  assert.match(unknown.commandLine, /command -v setsid/);
});

Deno.test("a cwd of `-` is the directory named so, not the previous one", () => {
  const w = wrapCommand({ command: "pwd", cwd: "-", nonce: "n4", delivery: "direct" });
  assert.match(w.commandLine, /cd -- '\.\/-' \|\|/);
});

Deno.test("a command over one argument's worth is carried in pieces that never split a character", () => {
  const command = "é".repeat(60_000); // 120,000 UTF-8 bytes: too big for direct, two pieces
  const w = wrapCommand({ command, nonce: "n5", delivery: "direct", ownGroup: true });
  const pieces = [...w.stdinPrefix.matchAll(/__mcp_c(\d)='([^']*)'/g)].map((m) => m[2]);
  assert.equal(pieces.length, 2);
  assert.equal(pieces.join(""), command);
  assert.ok(pieces.every((p) => new TextEncoder().encode(p).length <= ARG_PART_BYTES));
  assert.match(
    w.stdinPrefix,
    /exec "\$__mcp_s" \$\{__mcp_o:\+"\$__mcp_o"\} -c '.*' "\$__mcp_s" "\$__mcp_c0" "\$__mcp_c1"/,
  );
});

Deno.test("a cwd of ~ or ~/… leaves only the ~ unquoted; ~user and a ~ elsewhere stay literal", () => {
  const cd = (cwd: string, delivery: "direct" | "hop" = "direct") => {
    const w = wrapCommand({ command: "pwd", cwd, nonce: "n6", delivery });
    return /cd -- (.*?) \|\|/.exec(w.commandLine + w.stdinPrefix)?.[1];
  };
  assert.equal(cd("~"), "~");
  assert.equal(cd("~/"), "~/");
  assert.equal(cd("~/a b/$(id)"), "~/'a b/$(id)'");
  assert.equal(cd("~/it's"), `~/'it'\\''s'`);
  assert.equal(cd("~root"), "'~root'");
  assert.equal(cd("/x/~"), "'/x/~'");
  assert.equal(cd("a~b"), "'a~b'");
  assert.equal(cd("~/a\nb", "hop"), `~/'a'"$__mcp_n"'b'`);
});
