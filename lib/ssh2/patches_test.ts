import assert from "node:assert/strict";
import crypto from "node:crypto";
import { Buffer } from "node:buffer";
import type { Logger } from "../log.ts";
import { preparePatches, prepareSftpPatches } from "./patches.ts";
import { EXPECTED_WINDOW_ADJUST, queuedWindowAdjust } from "./rekey_fix.ts";
import { feedSftp, UTF8_GREETING } from "./sftp_fix.ts";

function recorder(): { logger: Logger; warnings: string[] } {
  const warnings: string[] = [];
  const keep = (m: string) => void warnings.push(m);
  return { logger: { debug() {}, info() {}, warn: keep, error: keep }, warnings };
}

Deno.test("preparePatches() turns every repair of a connection on for the pinned ssh2, silently, once per process", async () => {
  const first = recorder();
  const status = await preparePatches(first.logger);
  assert.deepEqual(status, {
    leakFix: true,
    rekeyFix: true,
    fastDecipher: true,
    socketLending: true,
    fastCipher: true,
  });
  assert.deepEqual(first.warnings, []);
  // The repairs really run: ssh2's queued packets are exact, chacha20 ciphers are finished.
  assert.equal(queuedWindowAdjust(), EXPECTED_WINDOW_ADJUST);
  const c = crypto.createCipheriv("chacha20", Buffer.alloc(32), Buffer.alloc(16));
  c.update(Buffer.from("x"));
  assert.throws(() => c.update(Buffer.from("y")));
  // SFTP's wait for the first SFTP channel: text before SFTP still throws in ssh2's own parser.
  assert.notEqual(feedSftp([UTF8_GREETING]).threw, null);
  // Decided once: a second caller gets the same answer and no log line.
  const second = recorder();
  assert.equal(await preparePatches(second.logger), status);
  assert.deepEqual(second.warnings, []);
});

Deno.test("prepareSftpPatches() turns SFTP's repairs on for the pinned ssh2, silently, once per process", async () => {
  const first = recorder();
  const status = await prepareSftpPatches(first.logger);
  assert.deepEqual(status, { sftpFix: true, sftpWrite: true, sftpRead: true });
  assert.deepEqual(first.warnings, []);
  // Text before SFTP now fails the channel instead of throwing.
  const sftp = feedSftp([UTF8_GREETING]);
  assert.equal(sftp.threw, null);
  assert.equal(sftp.errors.length, 1);
  const second = recorder();
  assert.equal(await prepareSftpPatches(second.logger), status);
  assert.deepEqual(second.warnings, []);
});

Deno.test("preparePatches() leaves every repair off, with one warning, when the ssh2 version differs", async () => {
  // A fresh process: the decision is taken once per process, and this one has taken it.
  const here = (file: string) => new URL(file, import.meta.url).href;
  const script = `
    import crypto from "node:crypto";
    import { Buffer } from "node:buffer";
    import { pretendSsh2Version } from "${here("./guard.ts")}";
    import { preparePatches, prepareSftpPatches } from "${here("./patches.ts")}";
    import { EXPECTED_WINDOW_ADJUST, queuedWindowAdjust } from "${here("./rekey_fix.ts")}";
    import { feedSftp, UTF8_GREETING } from "${here("./sftp_fix.ts")}";
    pretendSsh2Version("1.17.1");
    const warnings = [];
    const logger = { debug() {}, info() {}, warn: (m) => warnings.push(m), error: (m) => warnings.push(m) };
    const status = { ...await preparePatches(logger), ...await prepareSftpPatches(logger) };
    await preparePatches(logger);
    await prepareSftpPatches(logger);
    const c = crypto.createCipheriv("chacha20", Buffer.alloc(32), Buffer.alloc(16));
    c.update(Buffer.from("x"));
    let finished = false;
    try { c.update(Buffer.from("y")); } catch { finished = true; }
    const sftpThrew = feedSftp([UTF8_GREETING]).threw !== null;
    console.log(JSON.stringify({
      status, warnings, finished, sftpThrew, rekeyExact: queuedWindowAdjust() === EXPECTED_WINDOW_ADJUST,
    }));
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", "--frozen", "--config", new URL("../../deno.json", import.meta.url).pathname, script],
    stderr: "inherit",
  }).output();
  assert.equal(out.code, 0);
  const got = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.deepEqual(got.status, {
    leakFix: false,
    rekeyFix: false,
    fastDecipher: false,
    socketLending: false,
    fastCipher: false,
    sftpFix: false,
    sftpWrite: false,
    sftpRead: false,
  });
  assert.equal(got.finished, false);
  assert.equal(got.sftpThrew, true, "ssh2's own SFTP parser, unrepaired");
  assert.equal(got.rekeyExact, false);
  assert.equal(got.warnings.length, 1);
  assert.match(got.warnings[0], /ssh2 is 1\.17\.1, not 1\.17\.0/);
  assert.match(got.warnings[0], /SFTP first-packet check/);
});
