/**
 * Remote paths as people type them: `~` and `~/…` mean the remote user's
 * home, as they do in OpenSSH's sftp. `~user/…` is refused rather than
 * taken as a file name nobody meant; a `~` anywhere else (`a~b`, `/x/~`,
 * `./~`) is an ordinary character.
 *
 * The home is asked of the SFTP server once per connection: SFTP `realpath`
 * of `.`. The server starts its sftp-server (OpenSSH's external one and
 * `internal-sftp`, Dropbear's too) in the user's home directory, so `.`
 * resolves to it; OpenSSH's own `expand-path@openssh.com` answers `~` from
 * the same current directory, so both agree even where sftp-server was
 * given another start directory (`-d`). SFTP has no request for "home",
 * and `$HOME` belongs to a shell the file tools never start.
 *
 * @module
 */

import type { SFTPWrapper } from "../ssh2/mod.ts";
import { SshMcpError } from "../errors.ts";
import { call } from "./sftp_request.ts";

/** A `~name` at the start of a path: another user's home, which is never expanded. */
const OTHER_HOME = /^~([A-Za-z_][A-Za-z0-9_.-]*\$?)(\/|$)/;

/**
 * Whether `path` starts in the home: it is `~` or starts with `~/`.
 *
 * @example
 * ```ts
 * startsAtHome("~/app.py"); // true
 * startsAtHome("a~b"); // false
 * ```
 */
export function startsAtHome(path: string): boolean {
  return path === "~" || path.startsWith("~/");
}

/**
 * `path` with a leading `~` or `~/` replaced by `home`; any other path as it
 * is. A `~user/…` throws `INVALID_ARGUMENT`: OpenSSH's sftp-server would
 * look that user up, but a file tool names paths of its own session's user,
 * and taking it literally would create a directory called `~user`.
 *
 * @param path The path as given.
 * @param home The remote user's home, absolute.
 * @returns The path to send to the server.
 *
 * @example
 * ```ts
 * expandHome("~/app.py", "/home/ann"); // "/home/ann/app.py"
 * expandHome("~", "/home/ann"); // "/home/ann"
 * expandHome("/x/~", "/home/ann"); // "/x/~"
 * ```
 */
export function expandHome(path: string, home: string): string {
  refuseOtherHome(path);
  if (!startsAtHome(path)) return path;
  const rest = path.slice(2);
  if (path === "~" || rest === "") return home;
  return home.endsWith("/") ? home + rest : `${home}/${rest}`;
}

/**
 * Throws `INVALID_ARGUMENT` for a path starting `~user` (another user's home).
 *
 * @param path The path as given.
 */
export function refuseOtherHome(path: string): void {
  const user = OTHER_HOME.exec(path)?.[1];
  if (user === undefined) return;
  throw new SshMcpError("INVALID_ARGUMENT", `Cannot use ${path}: only ~ and ~/… are expanded, not ~${user}`, {
    hint: `Give the absolute path (ssh_execute 'getent passwd ${user}' shows that home), ` +
      `or ./~${user} for a name that starts with ~`,
  });
}

// The home of each connection (the key is whatever object stands for it), asked once. A failed
// question is forgotten so the next call asks again.
const homes = new WeakMap<object, Promise<string>>();

/**
 * The remote user's home, asked of `sftp` once per `owner` (the
 * connection: it outlives any one SFTP channel).
 *
 * @param owner What the answer is cached for.
 * @param sftp The channel to ask on.
 * @returns The absolute home directory.
 */
export function remoteHome(owner: object, sftp: SFTPWrapper): Promise<string> {
  let home = homes.get(owner);
  if (home === undefined) {
    // No cancel signal: the answer is shared; the channel's deadline bounds it.
    home = call<string>(sftp, "~", "resolve", (cb) => sftp.realpath(".", cb)).then((path) => {
      if (typeof path !== "string" || !path.startsWith("/")) {
        throw new SshMcpError("SFTP_FAILURE", "The server did not say where the home directory is", {
          hint: "Give absolute paths instead of ~",
        });
      }
      return path;
    });
    homes.set(owner, home);
    home.catch(() => {
      if (homes.get(owner) === home) homes.delete(owner);
    });
  }
  return home;
}

/**
 * `path` as the server must see it: `~` and `~/…` in the home (asked only
 * when needed), `~user/…` refused, anything else unchanged.
 *
 * @param path The path as given.
 * @param home Gives the home when the path needs it.
 */
export async function resolveRemotePath(path: string, home: () => Promise<string>): Promise<string> {
  refuseOtherHome(path);
  return startsAtHome(path) ? expandHome(path, await home()) : path;
}
