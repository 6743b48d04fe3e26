import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { SshMcpError } from "../errors.ts";
import { bcryptRounds, loadPrivateKey } from "./keys.ts";
import { withRounds } from "../../tests/fixtures/key_rounds.ts";

async function withKeys(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "keys-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function keygen(path: string, rounds: number): Promise<void> {
  const args = ["-q", "-t", "ed25519", "-a", String(rounds), "-N", "pw", "-C", "", "-f", path];
  const out = await new Deno.Command("ssh-keygen", { args, stderr: "piped" }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
}

Deno.test("bcryptRounds() reads the rounds of an encrypted OpenSSH key, null for others", async () => {
  await withKeys(async (dir) => {
    await keygen(`${dir}/k`, 16);
    const text = await Deno.readTextFile(`${dir}/k`);
    assert.equal(bcryptRounds(text), 16);
    assert.equal(bcryptRounds(withRounds(text, 0xffffffff)), 0xffffffff);
    assert.equal(bcryptRounds("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"), null);
  });
});

Deno.test("loadPrivateKey() refuses a key whose bcrypt rounds would stop the server, before decrypting", async () => {
  await withKeys(async (dir) => {
    await keygen(`${dir}/k`, 16);
    await Deno.writeTextFile(`${dir}/huge`, withRounds(await Deno.readTextFile(`${dir}/k`), 0xffffffff));
    await assert.rejects(loadPrivateKey(`${dir}/huge`, "pw"), (e) => {
      assert.ok(e instanceof SshMcpError);
      assert.equal(e.code, "KEY_UNREADABLE");
      assert.match(e.message, /4294967295 bcrypt rounds; at most 128/);
      return true;
    });
    await keygen(`${dir}/k200`, 200);
    await assert.rejects(loadPrivateKey(`${dir}/k200`, "pw"), /200 bcrypt rounds/);
    // The default still loads.
    assert.equal((await loadPrivateKey(`${dir}/k`, "pw")).type, "ssh-ed25519");
  });
});

/**
 * A key file in two BEGIN..END blocks: the first ends inside the salt, the
 * second holds the rest, rounds included. ssh2 decodes everything from the
 * first BEGIN to the last END (Node's base64 decoder reads the marker lines'
 * dashes and letters as data), so the salt length is chosen to swallow them.
 */
function splitAcrossBlocks(text: string, rounds: number): string {
  const body = text.match(/-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END/)![1];
  const bin = Buffer.from(body.replace(/\s+/g, ""), "base64");
  let pos = 15;
  const field = () => bin.subarray(pos, pos += 4 + bin.readUInt32BE(pos));
  const cipher = field();
  const kdf = field();
  field(); // the real kdf options, replaced
  const rest = bin.subarray(pos);
  const u32 = (n: number) => Buffer.from([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
  // Header plus the salt's first byte is 48 bytes (64 base64 characters); the marker lines between
  // the blocks are 62 characters, padded with "AA" to 64 (48 bytes of salt); 3 more salt bytes, then rounds.
  const saltLen = 1 + 48 + 3;
  const head = Buffer.concat([bin.subarray(0, 15), cipher, kdf, u32(4 + saltLen + 4), u32(saltLen), Buffer.from([0])]);
  assert.equal(head.length % 3, 0);
  const tail = Buffer.concat([Buffer.alloc(3), u32(rounds), rest]);
  return "-----BEGIN OPENSSH PRIVATE KEY-----\n" + head.toString("base64") +
    "\n-----END OPENSSH PRIVATE KEY-----\n-----BEGIN OPENSSH PRIVATE KEY-----\nAA" + tail.toString("base64") +
    "\n-----END OPENSSH PRIVATE KEY-----\n";
}

Deno.test("bcryptRounds() reads a key as ssh2 does, so a header split over two blocks cannot hide its rounds", async () => {
  await withKeys(async (dir) => {
    await keygen(`${dir}/k`, 16);
    const split = splitAcrossBlocks(await Deno.readTextFile(`${dir}/k`), 0xffffffff);
    await Deno.writeTextFile(`${dir}/split`, split);
    // What ssh2 decodes, by its own pattern: the rounds sit where its parser reads them.
    const m = /^-----BEGIN OPENSSH PRIVATE KEY-----\n([\s\S]+)\n-----END OPENSSH PRIVATE KEY-----$/.exec(split.trim())!;
    const seen = Buffer.from(m[1], "base64");
    assert.equal(seen.readUInt32BE(15 + 4 + 10 + 4 + 6 + 4 + 4 + 52), 0xffffffff);
    assert.equal(bcryptRounds(split), 0xffffffff);
    await assert.rejects(loadPrivateKey(`${dir}/split`, "pw"), /4294967295 bcrypt rounds/);
  });
});
