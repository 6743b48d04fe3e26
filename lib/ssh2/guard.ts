/**
 * The ssh2 version guard: the repairs in this folder were written against
 * ssh2's private fields and behaviour in one exact version, so each one runs
 * only when the installed ssh2 is that version.
 *
 * The version is read from ssh2's own package.json as a JSON module: that
 * needs no permission beyond loading the module itself, and `deno compile`
 * embeds it with the package.
 *
 * @module
 */

import ssh2Package from "ssh2/package.json" with { type: "json" };

/** The ssh2 version the repairs were written for; deno.json pins exactly this one. */
export const PINNED_SSH2_VERSION = "1.17.0";

let pretended: string | undefined;

/**
 * TEST ONLY: makes {@linkcode installedSsh2Version} report `version`, so a
 * test can see the repairs turn themselves off (the hidden
 * `--test-ssh2-version` flag of main.ts calls this). Must run before the
 * first connection: the decision is taken once per process.
 */
export function pretendSsh2Version(version: string): void {
  pretended = version;
}

/** The version of the ssh2 package loaded, as its package.json states it. */
export function installedSsh2Version(): string {
  return pretended ?? String(ssh2Package.version);
}

/**
 * Why the repairs cannot trust ssh2's internals, or null when the installed
 * ssh2 is the pinned version.
 *
 * @example
 * ```ts
 * const problem = ssh2VersionProblem();
 * if (problem !== null) console.warn(problem);
 * ```
 */
export function ssh2VersionProblem(installed: string = installedSsh2Version()): string | null {
  return installed === PINNED_SSH2_VERSION
    ? null
    : `ssh2 is ${installed}, not ${PINNED_SSH2_VERSION} (the version they were written and tested for)`;
}
