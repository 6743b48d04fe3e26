/**
 * Choosing how to authenticate from what the caller gave (and what ssh_config
 * adds: identity files, IdentitiesOnly, PreferredAuthentications and the
 * per-method switches), and failing early (before any network traffic) when
 * nothing usable was given. Identity files are matched with the ssh-agent's
 * keys by public key and offered in ssh's order (sshconnect2.c
 * pubkey_prepare).
 *
 * @module
 */

import { SshMcpError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { BoundedReadError } from "../read_bounded.ts";
import { loadSsh2, type ParsedKey, selectedAgent } from "../ssh2/mod.ts";
import { type LoadedKey, loadPrivateKey, loadPublicKey } from "./keys.ts";
import type { ConnectPrompts } from "./prompts.ts";
import type { ConnectObserver } from "./connect_options.ts";

/** The method names PreferredAuthentications orders; others are ignored. */
export type AuthMethodName = "publickey" | "password" | "keyboard-interactive";

/** What the caller offers for authentication. */
export interface AuthInput {
  password?: string;
  privateKeyPath?: string;
  /** Passphrase of `privateKeyPath`; without one, also tried on encrypted identity files. */
  passphrase?: string;
  agentSocket?: string;
  /**
   * Key files tried after `privateKeyPath`; missing ones are skipped silently, as ssh skips them. A file may
   * be a public key (`id.pub`) whose private half only the agent holds.
   */
  identityFiles?: string[];
  /**
   * Only the identity files' keys: the agent's copies of them, never the agent's other keys.
   * @default false
   */
  identitiesOnly?: boolean;
  /** Order of methods; a method missing from the list is not tried. Undefined: the default order. */
  preferredAuthentications?: string[];
  /**
   * False: the password is never sent, by password or keyboard-interactive authentication.
   * @default true
   */
  passwordAuthentication?: boolean;
  /**
   * False: keyboard-interactive prompts are never answered.
   * @default true
   */
  kbdInteractiveAuthentication?: boolean;
  /** Present when a human can answer keyboard-interactive prompts. */
  ask?: ConnectPrompts;
  /** Where skipped identity files are reported (debug). */
  logger?: Logger;
  /** Told each identity file skipped for a reason other than its absence (the doctor lists them). */
  observer?: Pick<ConnectObserver, "keySkipped">;
}

/** One authentication attempt; each public key from a file is an attempt of its own. */
export type AuthAttempt =
  | { type: "publickey"; key: LoadedKey; path: string }
  /**
   * The agent, offering only `keys` (in this order). `path`: the identity file whose key the agent holds
   * (then `keys` is that one key); undefined for the agent's other keys.
   */
  | { type: "agent"; keys: ParsedKey[]; path?: string }
  | { type: "password" }
  | { type: "keyboard-interactive" };

/** The attempts to make, in order. */
export interface PreparedAuth {
  attempts: AuthAttempt[];
  /**
   * Why keyboard-interactive is not among the attempts although it was not turned off: nobody can answer
   * its prompts (no prompts and no password). Said when the server wants it.
   */
  kbdUnanswerable: boolean;
}

const DEFAULT_ORDER: readonly AuthMethodName[] = ["publickey", "password", "keyboard-interactive"];

/**
 * Loads the keys and lists the attempts: the explicit key; then, as ssh orders them, the agent's copies of the
 * identity files (in the agent's order), the agent's other keys (not under `identitiesOnly`), and the identity
 * files the agent does not hold; then the password, then keyboard-interactive (only when a human can answer, or
 * with a password for servers that ask for it that way), reordered and filtered by `preferredAuthentications`.
 * The agent is used only when neither password nor key was given explicitly, and asked for its keys only when
 * one of them can be offered. `signal` ends the key reads and the agent's answer (the connect deadline, or the
 * caller's cancel).
 *
 * @param options What the caller gave.
 * @param signal Ends the key reads and the agent's answer.
 * @returns The attempts in order.
 * @throws {SshMcpError} AUTH_METHOD_MISSING when nothing can be tried, a key error for the explicit key (or for
 *   the only identity file left), AGENT_UNAVAILABLE when the agent was the only way and it did not answer.
 */
export async function prepareAuth(options: AuthInput, signal?: AbortSignal): Promise<PreparedAuth> {
  await loadSsh2(); // the agent and key parsing are ssh2's; loaded at first use
  const order = methodOrder(options.preferredAuthentications);
  const passwordOk = options.password !== undefined && options.passwordAuthentication !== false;
  const kbdOn = order.includes("keyboard-interactive") && options.kbdInteractiveAuthentication !== false;
  const kbdAnswerable = options.ask !== undefined || passwordOk;
  const explicit = options.password !== undefined || options.privateKeyPath !== undefined;
  const agentSocket = explicit ? undefined : options.agentSocket;
  const identitiesOnly = options.identitiesOnly === true;

  const keys: AuthAttempt[] = [];
  const skipped: SshMcpError[] = [];
  let agentProblem: SshMcpError | null = null;
  // Why the agent, though it answered, has nothing to offer.
  let agentUnused: string | null = null;
  if (order.includes("publickey")) {
    if (options.privateKeyPath !== undefined) {
      // The key the caller named: any problem with it is the answer.
      const key = await loadPrivateKey(options.privateKeyPath, options.passphrase, signal);
      keys.push({ type: "publickey", key, path: options.privateKeyPath });
    }
    const skip = (path: string, error: unknown) => {
      if (!(error instanceof SshMcpError)) throw error;
      if (isMissing(error)) return; // as ssh: an IdentityFile that does not exist is no error
      options.logger?.debug(`Skipping identity file ${path}: ${error.message}`);
      options.observer?.keySkipped?.(path, error);
      skipped.push(error);
    };
    // Each identity file's public key, known without a passphrase; null: known only by loading the key.
    const files: { path: string; publicKey: ParsedKey | null }[] = [];
    for (const path of options.identityFiles ?? []) {
      if (path === options.privateKeyPath || files.some((f) => f.path === path)) continue;
      try {
        files.push({
          path,
          publicKey: agentSocket === undefined ? null : (await loadPublicKey(path, signal))?.parsed ?? null,
        });
      } catch (error) {
        skip(path, error);
      }
    }
    const unmatched = [...files];
    if (agentSocket !== undefined && (!identitiesOnly || files.some((f) => f.publicKey !== null))) {
      try {
        const others: ParsedKey[] = [];
        const agentKeys = await listAgentKeys(agentSocket, signal);
        for (const agentKey of agentKeys) {
          const index = unmatched.findIndex((f) => f.publicKey !== null && sameKey(f.publicKey, agentKey));
          if (index < 0) {
            others.push(agentKey);
            continue;
          }
          // ssh prefers the agent's copy of an identity file: signed by the agent, no passphrase needed.
          keys.push({ type: "agent", keys: [agentKey], path: unmatched[index].path });
          unmatched.splice(index, 1);
        }
        if (!identitiesOnly && others.length > 0) keys.push({ type: "agent", keys: others });
        if (agentKeys.length === 0) agentUnused = `the ssh-agent at ${agentSocket} holds no keys`;
        else if (identitiesOnly && keys.every((a) => a.type !== "agent")) {
          agentUnused =
            `IdentitiesOnly is set and the ssh-agent at ${agentSocket} holds none of the identity files' keys`;
        }
      } catch (error) {
        if (signal?.aborted && error === signal.reason) throw error;
        agentProblem = new SshMcpError("AGENT_UNAVAILABLE", `ssh-agent socket ${agentSocket} is not usable`, {
          hint: "Start ssh-agent and add keys (ssh-add), or pass `password` or `private_key_path`",
          cause: error,
        });
      }
    }
    // The identity files the agent does not hold, in their order, signed here.
    const identityPassphrase = options.privateKeyPath === undefined ? options.passphrase : undefined;
    for (const { path } of unmatched) {
      try {
        keys.push({ type: "publickey", key: await loadPrivateKey(path, identityPassphrase, signal), path });
      } catch (error) {
        skip(path, error);
      }
    }
  }

  const attempts: AuthAttempt[] = [];
  for (const method of order) {
    if (method === "publickey") attempts.push(...keys);
    else if (method === "password" && passwordOk) attempts.push({ type: "password" });
    else if (method === "keyboard-interactive" && kbdOn && kbdAnswerable) {
      attempts.push({ type: "keyboard-interactive" });
    }
  }
  if (attempts.length > 0) {
    if (agentProblem !== null) options.logger?.debug(`Not using the agent: ${agentProblem.message}`);
    return { attempts, kbdUnanswerable: kbdOn && !kbdAnswerable };
  }
  // Nothing to try: the reason a skipped way failed is more useful than "nothing given".
  if (skipped.length > 0) throw skipped[0];
  if (agentProblem !== null) throw agentProblem;
  if (agentUnused !== null) {
    throw new SshMcpError("AUTH_METHOD_MISSING", `No way to authenticate: ${agentUnused}`, {
      hint: "Add the key to the agent (ssh-add), name its file in IdentityFile, or pass `password` or " +
        "`private_key_path`",
    });
  }
  if (options.preferredAuthentications !== undefined && (explicit || options.agentSocket || options.identityFiles)) {
    throw new SshMcpError(
      "AUTH_METHOD_MISSING",
      `No way to authenticate: PreferredAuthentications (${options.preferredAuthentications.join(",")}) ` +
        "allows none of the methods given",
      { hint: "Give credentials for an allowed method, or change PreferredAuthentications in ssh_config" },
    );
  }
  throw new SshMcpError(
    "AUTH_METHOD_MISSING",
    "No way to authenticate: no password, no private key and no ssh-agent",
    {
      hint: "Pass `password` or `private_key_path`, or start the server with SSH_AUTH_SOCK set to a running ssh-agent",
    },
  );
}

/** The keys the agent at `socket` holds, in its order; `signal` ends the wait (and the agent connection). */
function listAgentKeys(socket: string, signal?: AbortSignal): Promise<ParsedKey[]> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => reject(signal!.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    selectedAgent(socket, { pick: (all) => all, signal }).getIdentities((err, keys) => {
      signal?.removeEventListener("abort", onAbort);
      if (err !== undefined && err !== null) reject(err);
      else resolve((keys ?? []) as ParsedKey[]);
    });
  });
}

/** Whether two keys are the same public key (their SSH wire blobs are equal). */
export function sameKey(a: ParsedKey, b: ParsedKey): boolean {
  return a.getPublicSSH().equals(b.getPublicSSH());
}

/** The methods to try in order: `preferred` with unknown names dropped, or the default order. */
function methodOrder(preferred: string[] | undefined): AuthMethodName[] {
  if (preferred === undefined) return [...DEFAULT_ORDER];
  const order: AuthMethodName[] = [];
  for (const name of preferred) {
    const method = name.trim().toLowerCase();
    if ((DEFAULT_ORDER as readonly string[]).includes(method) && !order.includes(method as AuthMethodName)) {
      order.push(method as AuthMethodName);
    }
  }
  return order;
}

/** The key file does not exist. */
function isMissing(error: SshMcpError): boolean {
  const cause = error.cause;
  return cause instanceof BoundedReadError && cause.problem === "not-found";
}

/** How a keyboard-interactive round can be answered without asking anyone. */
export interface KbdPasswordRule {
  /** The password, when it may be sent. */
  password?: string;
}

/**
 * The answers to a keyboard-interactive round that the password alone gives: many servers (PAM) ask for it
 * as one hidden prompt that says "password". Null when the round asks for anything else.
 *
 * @param prompts The round's prompts.
 * @param rule The password, if it may be sent.
 * @returns `[password]`, or null.
 */
export function passwordAnswers(prompts: { prompt: string; echo: boolean }[], rule: KbdPasswordRule): string[] | null {
  if (rule.password === undefined || prompts.length !== 1) return null;
  const [only] = prompts;
  return !only.echo && /password/i.test(only.prompt) ? [rule.password] : null;
}
