import assert from "node:assert/strict";
import { parseSshConfig, type SshConfigContext, SshConfigError, type SshConfigErrorKind } from "./mod.ts";

const CTX: SshConfigContext = { home: "/home/me", localUser: "me", localHost: "box.lan", uid: 1000 };

function config(text: string, ctx: SshConfigContext = CTX) {
  return parseSshConfig(text, "/home/me/.ssh/config", ctx);
}

function assertConfigError(
  fn: () => unknown,
  kind: SshConfigErrorKind,
  line: number,
  message: RegExp,
  file = "/home/me/.ssh/config",
): void {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof SshConfigError, String(e));
    assert.equal(e.kind, kind, e.message);
    assert.equal(e.file, file);
    assert.equal(e.line, line, e.message);
    assert.match(e.message, message);
    assert.equal(e.code, "INVALID_ARGUMENT");
    return true;
  });
}

Deno.test("resolve() takes the first value and says which line it came from", () => {
  const c = config(
    "Host web\n  Port 2222\nHost *\n  Port 22\n  User u\n  IdentityFile ~/a\nHost web\n  IdentityFile ~/b\n",
  );
  const r = c.resolve("web");
  assert.equal(r.port, 2222);
  assert.equal(r.user, "u");
  assert.deepEqual(r.identityFiles, ["/home/me/a", "/home/me/b"]);
  assert.deepEqual(r.applied.map((a) => `${a.keyword}=${a.value}@${a.line}`), [
    "Port=2222@2",
    "User=u@5",
    "IdentityFile=~/a@6",
    "IdentityFile=~/b@8",
  ]);
  const other = c.resolve("db");
  assert.equal(other.port, 22);
  assert.equal(other.hostName, "db");
});

Deno.test("resolve() leaves unset values undefined and the caller's user wins like ssh -l", () => {
  const r = config("Host x\n  HostName real\n").resolve("x");
  assert.equal(r.user, undefined);
  assert.equal(r.port, undefined);
  assert.deepEqual(r.identityFiles, []);
  assert.deepEqual(r.proxyJump, []);
  const c = config("Host x\n  User cfg\nMatch user given\n  Port 2000\n");
  assert.equal(c.resolve("x").user, "cfg");
  const given = c.resolve("x", { user: "given" });
  assert.equal(given.user, "given");
  assert.equal(given.port, 2000);
});

Deno.test("resolve() refuses ProxyCommand only for hosts it applies to", () => {
  const c = config(
    "Host legacy\n  ProxyCommand nc %h %p\nHost jumped\n  ProxyJump bastion\nHost *\n  ProxyCommand ssh -W %h:%p gw\n",
  );
  assertConfigError(() => c.resolve("legacy"), "refused", 2, /ProxyCommand .*cannot run programs/);
  assert.deepEqual(c.resolve("jumped").proxyJump, [{ host: "bastion" }]); // the first obtained proxy wins
  assertConfigError(() => c.resolve("other"), "refused", 6, /ProxyCommand/);
  const none = config("Host *\n  ProxyCommand none\n  ProxyJump bastion\n").resolve("x");
  assert.deepEqual(none.proxyJump, []);
  assert.equal(none.applied[0].keyword, "ProxyCommand");
});

Deno.test("resolve() refuses every line that would run or load local code, where it applies", () => {
  const cases: [string, RegExp][] = [
    ["LocalCommand echo hi", /LocalCommand/],
    ["PermitLocalCommand yes", /PermitLocalCommand/],
    ["KnownHostsCommand /bin/find-keys %h", /KnownHostsCommand/],
    ["ProxyUseFdpass yes", /ProxyUseFdpass/],
    ["SecurityKeyProvider /usr/lib/libsk.so", /SecurityKeyProvider/],
    ["PKCS11Provider /usr/lib/p11.so", /PKCS11Provider/],
    ["SmartcardDevice /usr/lib/p11.so", /SmartcardDevice/],
  ];
  for (const [line, re] of cases) {
    const c = config(`Host bad\n  ${line}\n`);
    assertConfigError(() => c.resolve("bad"), "refused", 2, re);
    assert.doesNotThrow(() => c.resolve("good"), line);
  }
  for (const harmless of ["PermitLocalCommand no", "ProxyUseFdpass no", "KnownHostsCommand none"]) {
    assert.doesNotThrow(() => config(`Host *\n  ${harmless}\n`).resolve("x"), harmless);
  }
  // First obtained wins here too: an earlier "no" means the later "yes" is never used.
  assert.doesNotThrow(() => config("Host *\n  PermitLocalCommand no\n  PermitLocalCommand yes\n").resolve("x"));
});

Deno.test("resolve() refuses Match exec only when ssh would run it", () => {
  const c = config('Match host db* exec "test -f /tmp/x"\n  Port 3000\nHost *\n  User u\n');
  assertConfigError(() => c.resolve("db1"), "refused", 1, /Match exec would run "test -f \/tmp\/x"/);
  assert.equal(c.resolve("web").user, "u"); // host failed first: ssh skips the exec
  const inactiveInclude = parseSshConfig(
    "Host other\n  Include extra\n",
    "/home/me/.ssh/config",
    CTX,
    () => [{ file: "/home/me/.ssh/extra", text: 'Match exec "true"\n  Port 1\n' }],
  );
  assert.equal(inactiveInclude.resolve("web").port, undefined); // never matches: its outcome cannot matter
  assertConfigError(() => inactiveInclude.resolve("other"), "refused", 1, /exec/, "/home/me/.ssh/extra");
});

Deno.test("resolve() records recognised keywords as ignored, RemoteCommand with a note", () => {
  const r = config(
    "Host *\n  ForwardAgent yes\n  ForwardAgent no\n  SendEnv LANG\n  SendEnv LC_*\n  RemoteCommand tmux\n  Cipher blowfish\n",
  ).resolve("x");
  assert.deepEqual(r.ignored.map((i) => `${i.keyword} ${i.value}@${i.line}`), [
    "ForwardAgent yes@2",
    "SendEnv LANG@4",
    "SendEnv LC_*@5",
    "RemoteCommand tmux@6",
    "Cipher blowfish@7",
  ]);
  assert.match(r.ignored[3].note ?? "", /remote/);
  assert.deepEqual(r.applied, []);
});

Deno.test("resolve() rejects an unknown keyword, even in a block that does not apply, unless IgnoreUnknown lists it", () => {
  const c = config("Host other\n  Frobnicate yes\n");
  assertConfigError(() => c.resolve("x"), "invalid", 2, /bad configuration option: frobnicate/);
  assert.doesNotThrow(() => config("IgnoreUnknown frob*,x\nHost other\n  Frobnicate yes\n").resolve("x"));
});

Deno.test("resolve() expands tokens like ssh, and rejects unknown ones with file:line", () => {
  const c = config(
    [
      "Host t",
      "  HostName %h.Example.%%",
      "  User alice",
      "  Port 2200",
      "  IdentityFile %d/k_%h_%r_%p_%u_%l_%L_%n_%i_%k",
      "  UserKnownHostsFile ~/kh %d/kh_%n",
      "  IdentityAgent ~/agent",
      "  GlobalKnownHostsFile ~/not-expanded %h",
      "  HostKeyAlias Alias-%h",
    ].join("\n"),
  );
  const r = c.resolve("t");
  assert.equal(r.hostName, "t.example.%");
  assert.deepEqual(r.identityFiles, ["/home/me/k_t.example.%_alice_2200_me_box.lan_box_t_1000_alias-%h"]);
  assert.deepEqual(r.userKnownHostsFiles, ["/home/me/kh", "/home/me/kh_t"]);
  assert.equal(r.identityAgent, "/home/me/agent");
  assert.deepEqual(r.globalKnownHostsFiles, ["~/not-expanded", "%h"]); // OpenSSH 9.2 expands nothing here
  assert.equal(r.hostKeyAlias, "alias-%h");
  assertConfigError(() => config("Host *\n  IdentityFile ~/id_%j\n").resolve("x"), "invalid", 2, /unknown token %j/);
  assertConfigError(() => config("Host *\n  HostName %u.x\n").resolve("x"), "invalid", 2, /unknown token %u/);
  assertConfigError(() => config("Host *\n  IdentityFile ~/id_%\n").resolve("x"), "invalid", 2, /lone %/);
  // Match host expands HostName as far as it is known, as readconf does.
  assertConfigError(() => config("Host *\n  HostName %p\nMatch host x\n").resolve("x"), "invalid", 2, /%p/);
});

Deno.test("resolve() refuses ${VAR}, ~user and %i without a uid, naming the line", () => {
  assertConfigError(() => config("Host *\n  IdentityFile ${HOME}/k\n").resolve("x"), "unsupported", 2, /environment/);
  assertConfigError(() => config("Host *\n  UserKnownHostsFile ${X}\n").resolve("x"), "unsupported", 2, /\$\{/);
  assertConfigError(() => config("Host *\n  IdentityAgent $AGENT\n").resolve("x"), "unsupported", 2, /AGENT/);
  assertConfigError(() => config("Host *\n  IdentityFile ~bob/k\n").resolve("x"), "unsupported", 2, /~user/);
  const noUid = { ...CTX, uid: undefined };
  assertConfigError(() => config("Host *\n  IdentityFile ~/k%i\n", noUid).resolve("x"), "unsupported", 2, /uid/);
  // HostName has no environment expansion in OpenSSH: the text is kept.
  assert.equal(config("Host *\n  HostName ${X}\n").resolve("x").hostName, "${x}");
  // Only a value that applies is expanded.
  assert.doesNotThrow(() => config("Host other\n  IdentityFile ${HOME}/k\n").resolve("x"));
});

Deno.test("resolve() keeps the agent keywords", () => {
  for (const [v, want] of [["none", "none"], ["SSH_AUTH_SOCK", "SSH_AUTH_SOCK"], ["$SSH_AUTH_SOCK", "SSH_AUTH_SOCK"]]) {
    assert.equal(config(`Host *\n  IdentityAgent ${v}\n`).resolve("x").identityAgent, want);
  }
});

Deno.test("parseSshConfig() rejects bad lines with file:line, wherever they are", () => {
  const bad: [string, SshConfigErrorKind, number, RegExp][] = [
    ["Host x\n  Port 0\n", "invalid", 2, /bad port/],
    ["Host x\n  Port 22 23\n", "invalid", 2, /extra arguments/],
    ["\n\nHostName\n", "invalid", 3, /no argument/],
    ['Host x\n  IdentityFile "a\n', "invalid", 2, /quotes/],
    ["Host x\n  IdentitiesOnly maybe\n", "invalid", 2, /yes or no/],
    ["Host x\n  ConnectTimeout 5x\n", "invalid", 2, /time value/],
    ["Host x\n  StrictHostKeyChecking sometimes\n", "invalid", 2, /accept-new/],
    ["Host x\n  ProxyJump a:99999\n", "invalid", 2, /ProxyJump/],
    ["Match all host x\n", "invalid", 1, /cannot be combined/],
    ["Match host\n", "invalid", 1, /missing Match criteria/],
    ["Match colour blue\n", "invalid", 1, /unsupported Match attribute colour/],
    ["Match tagged\n", "invalid", 1, /missing Match criteria for tagged/],
    [`# long\nHost ${"x".repeat(4100)}\n`, "invalid", 2, /longer than 4096 bytes/],
    ["Host x\n  User a\0b\n", "invalid", 2, /NUL/],
  ];
  for (const [text, kind, line, re] of bad) assertConfigError(() => config(text), kind, line, re);
  assertConfigError(() => config("#".repeat(1024 * 1024 + 1)), "invalid", 0, /larger than/);
});

Deno.test("resolve() refuses Match canonical/final/tagged/localnetwork only for the hosts that reach them", () => {
  const text = [
    "Host web",
    "  User w",
    "Match host x canonical",
    "  User c",
    "Match final",
    "  Port 2",
    "Match tagged t",
    "  Port 3",
    "Match localnetwork 10.0.0.0/8",
    "  Port 4",
    "",
  ].join("\n");
  // `host x` fails first for "y": canonical is never needed; final is reached by every host.
  assertConfigError(() => config(text).resolve("y"), "unsupported", 5, /Match final would decide .*"y"/);
  assertConfigError(() => config(text).resolve("x"), "unsupported", 3, /Match canonical/);
  const noFinal = text.replace("Match final\n  Port 2\n", "");
  assertConfigError(() => config(noFinal).resolve("y"), "unsupported", 5, /Match tagged/);
  assertConfigError(
    () => config(noFinal.replace("Match tagged t\n  Port 3\n", "")).resolve("y"),
    "unsupported",
    5,
    /localnetwork/,
  );
  // Loading never fails on them: other hosts of the same file still resolve where nothing reaches them.
  assert.equal(config("Host web\n  User w\nMatch host db final\n  Port 2\n").resolve("web").user, "w");
});

Deno.test("hosts() lists concrete aliases in file order", () => {
  const c = parseSshConfig(
    "Host web db\nHost *.prod !bastion ?x\nMatch host m\nHost web cache\nInclude more\n",
    "/home/me/.ssh/config",
    CTX,
    () => [{ file: "/home/me/.ssh/more", text: "Host from-include\n" }],
  );
  // "more" is included inside the `Host web cache` block: it applies only there.
  assert.deepEqual(c.hosts(), ["web", "db", "cache"]);
  const top = parseSshConfig("Include more\nHost a\n", "/home/me/.ssh/config", CTX, () => [
    { file: "/home/me/.ssh/more", text: "Host from-include\n" },
  ]);
  assert.deepEqual(top.hosts(), ["from-include", "a"]);
  assert.deepEqual(top.files, ["/home/me/.ssh/config", "/home/me/.ssh/more"]);
});
