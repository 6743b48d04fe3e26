/**
 * `~` and `%` token expansion of ssh_config values, as ssh.c does after the
 * config is read (tilde first, then tokens). `${VAR}` is refused: it would
 * read the environment of the user's shell, which this server does not have,
 * and a silently different path is worse than an error.
 *
 * @module
 */

import { SshConfigError } from "./errors.ts";

/** Where a value came from, for errors. */
export interface At {
  file: string;
  line: number;
}

/**
 * Expands `%x` tokens from `vars` (`%%` is always a `%`).
 * @param unavailable Tokens OpenSSH knows that cannot be expanded here, with the reason.
 * @throws SshConfigError (invalid) on an unknown token or a lone `%` at the end
 */
export function expandTokens(
  value: string,
  vars: Readonly<Record<string, string>>,
  at: At,
  keyword: string,
  unavailable: Readonly<Record<string, string>> = {},
): string {
  let out = "";
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c !== "%") {
      out += c;
      continue;
    }
    const t = value[++i];
    if (t === "%") out += "%";
    else if (t !== undefined && Object.hasOwn(vars, t)) out += vars[t];
    else if (t !== undefined && Object.hasOwn(unavailable, t)) {
      throw new SshConfigError("unsupported", at, `${keyword} uses %${t} but ${unavailable[t]}`);
    } else {
      const what = t === undefined ? "a lone % at the end" : `unknown token %${t}`;
      throw new SshConfigError("invalid", at, `${keyword} has ${what} (write %% for a literal %)`);
    }
  }
  return out;
}

/**
 * Expands a leading `~` or `~/` to `home`; refuses `${VAR}` and `~user`.
 */
export function expandTilde(value: string, home: string, at: At, keyword: string): string {
  if (value === "~") return home;
  if (value.startsWith("~/")) return home.replace(/\/+$/, "") + value.slice(1);
  if (value.startsWith("~")) {
    throw new SshConfigError("unsupported", at, `${keyword} uses ~user, which this reader does not look up`);
  }
  return value;
}

/** Refuses `${VAR}` in a keyword where OpenSSH would expand it from the environment. */
export function refuseEnv(value: string, at: At, keyword: string): void {
  if (value.includes("${")) {
    throw new SshConfigError(
      "unsupported",
      at,
      `${keyword} uses \${…} environment expansion; the server does not read the environment of your shell`,
    );
  }
}
