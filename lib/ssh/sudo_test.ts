import assert from "node:assert/strict";
import { SshMcpError } from "../errors.ts";
import type { ExecResult } from "./exec.ts";
import { buildSudoCommand, classifySudoRefusal, newSudoMarker, sudoOutcome } from "./sudo.ts";

Deno.test("buildSudoCommand() reads the password from stdin, gives the command /dev/null and a root-side bound", () => {
  const withPassword = buildSudoCommand("echo 'hi'; id", { withPassword: true, timeoutSeconds: 2.5, marker: "M1" });
  assert.ok(withPassword.startsWith("LC_ALL=C sudo -S -k -p '' -- sh -c 'printf "), withPassword);
  assert.match(withPassword, /exec <\/dev\/null; /);
  assert.match(withPassword, /exec timeout -s KILL "\$1" sh -c "\$2"/);
  assert.ok(withPassword.endsWith(` sh 3 'echo '\\''hi'\\''; id' 'M1' "\${LC_ALL-}" "\${LC_ALL+1}"`), withPassword);
  const noPassword = buildSudoCommand("id", { withPassword: false, timeoutSeconds: 60, marker: "M2" });
  assert.ok(noPassword.startsWith("LC_ALL=C sudo -n -- sh -c "), noPassword);
  assert.ok(noPassword.includes(" sh 60 'id' 'M2' "), noPassword);
  assert.notEqual(newSudoMarker(), newSudoMarker());
});

const root = Deno.uid() === 0 && new Deno.Command("sh", { args: ["-c", "command -v sudo"] }).outputSync().success;

Deno.test({
  name: "buildSudoCommand() writes the marker before the command and gives the command the user's LC_ALL back",
  ignore: !root,
  fn: async () => {
    const probe = 'printf "%s|%s\\n" "${LC_ALL-unset}" "$(cat)"; echo to-stderr >&2';
    const line = buildSudoCommand(probe, { withPassword: false, timeoutSeconds: 30, marker: "MARK" });
    for (const [env, want] of [[{ LC_ALL: "C.UTF-8" }, "C.UTF-8|\n"], [{}, "unset|\n"]] as const) {
      const out = await new Deno.Command("sh", {
        args: ["-c", line],
        env,
        clearEnv: true,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const w = out.stdin.getWriter();
      await w.write(new TextEncoder().encode("secret\n"));
      await w.close();
      const done = await out.output();
      assert.equal(new TextDecoder().decode(done.stdout), want); // the command's stdin is /dev/null
      assert.equal(new TextDecoder().decode(done.stderr), "MARK\nto-stderr\n");
    }
  },
});

Deno.test("classifySudoRefusal() names sudo's own messages (sudo 1.9, LC_ALL=C)", () => {
  const cases: [string, string | null][] = [
    [
      "Sorry, try again.\n\nsudo: no password was provided\nsudo: 1 incorrect password attempt\n",
      "SUDO_PASSWORD_WRONG",
    ],
    ["sudo: 3 incorrect password attempts\n", "SUDO_PASSWORD_WRONG"],
    ["u is not in the sudoers file.\n", "SUDO_NOT_ALLOWED"],
    ["u is not in the sudoers file.  This incident will be reported.\n", "SUDO_NOT_ALLOWED"],
    ["Sorry, user u is not allowed to execute '/usr/bin/sh -c id' as root on vm.\n", "SUDO_NOT_ALLOWED"],
    ["Sorry, user u may not run sudo on vm.\n", null],
    ["sudo: a password is required\n", "SUDO_PASSWORD_REQUIRED"],
    ["\nsudo: no password was provided\n", "SUDO_PASSWORD_REQUIRED"],
    ["sh: 1: sudo: not found\n", null],
    ["", null],
  ];
  for (const [stderr, want] of cases) assert.equal(classifySudoRefusal(stderr), want, stderr);
});

function result(over: Partial<ExecResult>): ExecResult {
  return {
    stdout: "",
    stderr: "",
    exitCode: 0,
    signal: null,
    timedOut: false,
    loginOutput: "",
    markerMissing: false,
    group: null,
    truncated: false,
    stdoutBytes: 0,
    stderrBytes: 0,
    durationMs: 1,
    ...over,
  };
}

Deno.test("sudoOutcome() takes the marker out of a command's stderr, whatever its exit and stderr", () => {
  const r = sudoOutcome(
    result({ stderr: "M\nsudo: a password is required\n", stderrBytes: 31, exitCode: 1 }),
    { marker: "M", withPassword: false },
  );
  assert.equal(r.stderr, "sudo: a password is required\n"); // the command's own text: not sudo's refusal
  assert.equal(r.stderrBytes, 29);
  assert.equal(r.exitCode, 1);
});

Deno.test("sudoOutcome() turns sudo's refusal into a coded error that says the command did not run", () => {
  const wrong = () =>
    sudoOutcome(
      result({
        stderr: "Sorry, try again.\n\nsudo: no password was provided\nsudo: 1 incorrect password attempt\n",
        exitCode: 1,
      }),
      { marker: "M", withPassword: true },
    );
  assert.throws(wrong, (e: unknown) => {
    assert.ok(e instanceof SshMcpError);
    assert.equal(e.code, "SUDO_PASSWORD_WRONG");
    assert.match(e.message, /1 incorrect password attempt.*did not run/);
    assert.match(e.hint, /password/);
    assert.equal(e.retryable, false);
    return true;
  });
  assert.throws(
    () =>
      sudoOutcome(result({ stderr: "sudo: a password is required\n", exitCode: 1 }), {
        marker: "M",
        withPassword: false,
      }),
    (e: unknown) => e instanceof SshMcpError && e.code === "SUDO_PASSWORD_REQUIRED" && /`password`/.test(e.hint),
  );
});

Deno.test("sudoOutcome() leaves alone what it cannot judge: forced commands, timeouts, unknown failures", () => {
  const said = "sudo: a password is required\n";
  for (
    const r of [
      result({ stderr: said, exitCode: 1, markerMissing: true }),
      result({ stderr: said, exitCode: null, timedOut: true }),
      result({ stderr: "sh: 1: sudo: not found\n", exitCode: 127 }),
      result({ stderr: said, exitCode: 0 }),
    ]
  ) {
    assert.equal(sudoOutcome(r, { marker: "M", withPassword: false }), r);
  }
});
