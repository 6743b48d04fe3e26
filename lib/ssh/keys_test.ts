import assert from "node:assert/strict";
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
