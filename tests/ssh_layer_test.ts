/**
 * The SSH layer on its own against a real sshd: behaviour that the MCP
 * tools rely on but cannot show directly.
 */

import assert from "node:assert/strict";
import type { SshConnection } from "../lib/ssh/connection.ts";
import { signalChannel } from "../lib/ssh2/mod.ts";
import { Shell } from "../lib/ssh/shell.ts";
import { execHeapGrowthKiB, heapAfterGc } from "./fixtures/heap.ts";
import { openConnection, type Sshd, sshdAvailable, startSshd } from "./fixtures/sshd.ts";

const skip = !sshdAvailable();

function connect(sshd: Sshd): Promise<SshConnection> {
  return openConnection(sshd);
}

Deno.test({ name: "signalChannel() reaches the remote process after stdin EOF was sent", ignore: skip }, async () => {
  await using sshd = await startSshd();
  await using conn = await connect(sshd);
  // `exec` replaces the shell, so the signal lands on sleep itself.
  const { channel, status, closed } = await conn.exec("exec sleep 625");
  channel.resume();
  channel.stderr.resume();
  channel.eof(); // stdin closed first, as every command does
  // The signal must find the process: wait until it runs, not for a fixed time.
  for (const end = Date.now() + 10_000; !(await running("sleep 625")) && Date.now() < end;) {
    await new Promise((r) => setTimeout(r, 50));
  }
  signalChannel(channel, "KILL");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    closed.then(() => "closed"),
    new Promise((r) => (timer = setTimeout(() => r("still running"), 10_000))),
  ]);
  clearTimeout(timer);
  if (outcome !== "closed") channel.close();
  assert.equal(outcome, "closed");
  assert.equal(status.signal, "SIGKILL");
});

Deno.test({ name: "commands leave nothing behind: heap stays flat over 500 execs", ignore: skip }, async () => {
  if (!heapAfterGc()) return;
  await using sshd = await startSshd();
  await using conn = await connect(sshd);
  // Measured noise over 300 execs after warming up: -200..+400 KiB. A leak of 1.5 KiB or more per
  // command shows here; `deno task soak` runs 1500 (tests/soak/heap_soak.ts), where 0.5 KiB shows.
  const grownKiB = await execHeapGrowthKiB(conn, { warmup: 200, runs: 500 });
  assert.ok(grownKiB < 750, `heap grew by ${grownKiB.toFixed(0)} KiB over 500 commands`);
});

Deno.test(
  { name: "a shell's retained memory stays within its buffer bound however much it prints", ignore: skip },
  async () => {
    const heap = heapAfterGc();
    if (!heap) return;
    await using sshd = await startSshd();
    await using conn = await connect(sshd);
    const shell = await Shell.open(conn, "default", { bufferBytes: 500_000 });
    try {
      const print = async (count: number, tag: string) => {
        shell.send(`seq 1 ${count}; echo ${tag}-$((1+1))-done\r`);
        const w = await shell.wait({ pattern: `${tag}-2-done`, timeoutMs: 120_000, maxBytes: 1000 });
        assert.equal(w.reason, "matched");
        await shell.read("screen", 1); // the emulator has caught up
        return w;
      };
      const start = heap();
      const ten = await print(1_500_000, "a"); // 10.9 MB
      assert.ok(ten.droppedBytes > 9_000_000);
      const afterTen = heap();
      await print(3_000_000, "b"); // 22 MB more
      const afterThirty = heap();
      const mib = (n: number) => (n / 1024 / 1024).toFixed(2);
      // The 500 KB buffer plus the emulator's screen and scrollback.
      assert.ok(afterTen - start < 4 * 1024 * 1024, `heap grew ${mib(afterTen - start)} MiB over 10 MB`);
      assert.ok(afterThirty - afterTen < 1024 * 1024, `heap grew ${mib(afterThirty - afterTen)} MiB more over 22 MB`);
    } finally {
      shell.close();
    }
  },
);

/** Whether a process with exactly this command line runs on this machine (the test sshd is local). */
async function running(commandLine: string): Promise<boolean> {
  const out = await new Deno.Command("pgrep", { args: ["-xf", commandLine], stdout: "null", stderr: "null" }).output();
  return out.code === 0;
}
