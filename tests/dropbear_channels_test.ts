/**
 * Dropbear before 2024.86 (Debian 12 ships 2022.83) closes a session channel opened just as another
 * channel's process exits, before the new channel's request runs (mkj/dropbear#173). After a command
 * the connection keeps a spare shell; the first SFTP call retires it (its shell exits) and opens the
 * SFTP channel at that moment: without lib/ssh/connection.ts waiting for the spare's close there, about
 * one such call in three failed SFTP_UNAVAILABLE ("Unable to start subsystem").
 *
 * @module
 */

import assert from "node:assert/strict";
import { joinTestAccount } from "./fixtures/account.ts";
import { dropbearAvailable, startDropbear } from "./fixtures/dropbear.ts";
import { call, callOk, connectAs } from "./fixtures/mcp.ts";
import { startInProcessServer } from "./fixtures/in_process.ts";
import { waitFor } from "./fixtures/process.ts";
import { opensRaceExits } from "../lib/ssh/connection.ts";

const root = Deno.uid() === 0 && Deno.build.os === "linux";
const skip = !root || !dropbearAvailable();
if (skip) console.warn("SKIP Dropbear channel tests: they need root on Linux and dropbear");

/** How many spare shells (a shell waiting for its script: lib/ssh/wrapper.ts) the user `uid` runs. */
function spareShells(uid: number): number {
  let found = 0;
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      if (Deno.statSync(`/proc/${entry.name}`).uid !== uid) continue;
      if (Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).includes("read -r __mcp")) found++;
    } catch { /* exited while we looked */ }
  }
  return found;
}

/** Sessions tried: with the race open, all of them passing by chance is about (2/3)^8, 4%. */
const ROUNDS = 8;

Deno.test(
  { name: "on Dropbear, the first SFTP call after a command is not lost to the spare's exit", ignore: skip },
  async () => {
    const account = await joinTestAccount({ name: "mcp-rssh-dbchan", shell: "/bin/bash" });
    try {
      await using dropbear = await startDropbear({ user: account });
      const kh = await dropbear.writeKnownHosts();
      await using server = await startInProcessServer({ args: ["--known-hosts", kh] });
      const c = server.client;
      for (let round = 0; round < ROUNDS; round++) {
        const connected = await connectAs(c, dropbear, account.name, dropbear.key.path);
        assert.match(connected.structured.server_version ?? connected.text, /dropbear/i);
        const id = connected.structured.session_id;
        const r = await callOk(c, "ssh_execute", { session_id: id, command: "echo ok" });
        assert.equal(r.structured.stdout, "ok\n");
        // The spare for the next command (it follows the command's close) is running: its retire is
        // what races the SFTP open.
        await waitFor(() => spareShells(account.uid) === 1, `round ${round + 1}: the spare shell is running`);
        const listed = await call(c, "ssh_list_remote_dir", { session_id: id, remote_path: "/" });
        assert.equal(listed.isError, false, `round ${round + 1}: ${listed.text}`);
        const again = await callOk(c, "ssh_execute", { session_id: id, command: "echo still" });
        assert.equal(again.structured.stdout, "still\n");
        await callOk(c, "ssh_close_session", { session_id: id });
      }
    } finally {
      account.leave();
    }
  },
);

Deno.test("opensRaceExits() is true for Dropbear before 2024.86 only", () => {
  for (const version of ["dropbear_2022.83", "dropbear_2020.81", "dropbear_2024.85", "dropbear", "Dropbear_2019.78"]) {
    assert.equal(opensRaceExits(version), true, version);
  }
  for (const version of ["dropbear_2024.86", "dropbear_2025.87", "OpenSSH_9.2p1", "OpenSSH_for_Windows_9.5"]) {
    assert.equal(opensRaceExits(version), false, version);
  }
});
