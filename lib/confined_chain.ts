/**
 * The rule behind the "chain" route of lib/confined.ts, used where there is
 * no /proc (macOS): local files are acted on by absolute path text, which the
 * kernel resolves again component by component, so the action stays where
 * the check was only if nobody can swap a component in between.
 *
 * Only someone who can change a directory's entries can swap one of them:
 * its owner (who can also chmod it), root, and whoever its group/other write
 * bits let in. So, as OpenSSH's StrictModes does for authorized_keys, every
 * directory from `/` down to the one acted in must be owned by this
 * process's user or by root, and have no group/other write bit. A sticky
 * directory (`/tmp`, `/private/tmp`) may be writable by others when it is not
 * the directory acted in: others can add names to it but cannot rename or
 * remove an entry they do not own, and the next directory on the way must be
 * ours or root's anyway. The directory acted in itself must be private:
 * in a shared one, another user could have put the very file read there (a
 * hard link to any file on the volume, which macOS lets anyone make). For
 * the same reason a file with more than one hard link is not read on this
 * route at all (lib/confined.ts): it may have been linked there while the
 * directory was shared, or by a tool that does not know.
 *
 * The user is not looked up (`Deno.uid()` needs `--allow-sys`, which the
 * shipped permission set does not grant): the self-test creates a file and
 * takes its owner, which is the process's effective user.
 *
 * What this does not cover, and the README says so: a process running as
 * the same user (or as root) can still race the check; it already has the
 * same access to those files. Access control lists (macOS `chmod +a`) are
 * not visible through Deno, so a directory whose ACL lets another user write
 * is not detected, exactly as OpenSSH's StrictModes does not detect it.
 *
 * @module
 */

import fs from "node:fs";
import nodePath from "node:path";

/** What the chain route's self-test found. */
export type ChainSelfTest =
  | { ok: true; umask: number; owner: number }
  /** `transient`: the environment (no temp directory, a failed system call), not the platform, made it fail. */
  | { ok: false; reason: string; transient?: boolean };

/**
 * Why the directory at `path` (described by its lstat `info`) cannot be on
 * the way to a file acted on by path text, or null if it can. `owner` is the
 * process's user; `last` says whether it is the directory acted in.
 */
export function chainProblem(path: string, info: Deno.FileInfo, last: boolean, owner: number): string | null {
  if (info.mode === null || info.uid === null) {
    return `the directory ${show(path)} reports no owner or permission bits, so who can change it cannot be checked`;
  }
  if (info.uid !== owner && info.uid !== 0) {
    return `the directory ${show(path)} belongs to another user (uid ${info.uid}), who could swap its entries ` +
      "between the check and the use";
  }
  const writers = info.mode & 0o022;
  if (writers === 0) return null;
  const who = writers === 0o022 ? "its group and everyone" : writers === 0o020 ? "its group" : "everyone";
  const mode = (info.mode & 0o7777).toString(8).padStart(4, "0");
  if ((info.mode & 0o1000) === 0) {
    return `the directory ${show(path)} is writable by ${who} (mode ${mode}), so another user could swap its ` +
      "entries between the check and the use";
  }
  if (last) {
    return `the directory ${show(path)} is writable by ${who} (mode ${mode}, sticky), so another user may have put ` +
      "its entries there; use a private directory below it";
  }
  return null;
}

/**
 * Checks once that this platform gives what the chain route relies on:
 * owners and permission bits in lstat, a descriptor's device and inode that
 * tell an opened file from a symbolic link to it, and getcwd() naming the
 * working directory by its real path. Measures
 * the umask and the process's user on the way. `restore` puts the working
 * directory back at the end (the caller knows where it belongs).
 */
export function chainSelfTest(restore: () => void): ChainSelfTest {
  if (Deno.build.os === "windows") {
    return {
      ok: false,
      reason: "on Windows Deno reports neither owners nor permission bits, so who could swap a directory on the " +
        "way cannot be checked",
    };
  }
  let base: string | null = null;
  try {
    base = Deno.realPathSync(Deno.makeTempDirSync({ prefix: "mcp-remote-ssh-selftest-" }));
    const file = nodePath.join(base, "f");
    Deno.writeTextFileSync(file, "x");
    const info = Deno.lstatSync(file);
    if (info.uid === null || info.mode === null) {
      return { ok: false, reason: "lstat reports no owner or permission bits here" };
    }
    Deno.mkdirSync(nodePath.join(base, "umask"), { mode: 0o777 });
    const umask = ~(Deno.statSync(nodePath.join(base, "umask")).mode ?? 0o755) & 0o777;
    // Under -P Deno resolves links itself and opens the target (strace, Deno
    // 2.9.6: readlink("l"), then openat("f", O_NOFOLLOW)), so O_NOFOLLOW does
    // not refuse a final link: the descriptor's dev/ino differing from an
    // lstat of the name does. Check that this comparison works here.
    Deno.symlinkSync("f", nodePath.join(base, "l"));
    const flags = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;
    if (!sameFile(fs.openSync(file, flags), Deno.lstatSync(file))) {
      return { ok: false, reason: "a descriptor's device and inode differ from an lstat of its file" };
    }
    let fd: number | null = null;
    try {
      fd = fs.openSync(nodePath.join(base, "l"), flags);
    } catch (error) {
      const code = (error as { code?: unknown })?.code;
      if (code !== "ELOOP" && code !== "EMLINK") return { ok: false, reason: `O_NOFOLLOW failed: ${describe(error)}` };
    }
    if (fd !== null && sameFile(fd, Deno.lstatSync(nodePath.join(base, "l")))) {
      return { ok: false, reason: "a descriptor opened through a symbolic link matches an lstat of the link" };
    }
    Deno.chdir(base);
    if (Deno.cwd() !== base) {
      return { ok: false, reason: "getcwd() does not name the working directory by its real path" };
    }
    return { ok: true, umask, owner: info.uid };
  } catch (error) {
    return { ok: false, reason: `the self-test failed: ${describe(error)}`, transient: true };
  } finally {
    restore();
    if (base !== null) {
      try {
        Deno.removeSync(base, { recursive: true });
      } catch {
        // A leftover private temp directory is not worth failing over.
      }
    }
  }
}

/** Whether the open `fd` is the file `info` describes; closes `fd`. */
function sameFile(fd: number, info: Deno.FileInfo): boolean {
  try {
    const opened = fs.fstatSync(fd);
    return opened.dev === info.dev && opened.ino === info.ino;
  } finally {
    fs.closeSync(fd);
  }
}

function show(value: string): string {
  return JSON.stringify(value);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
