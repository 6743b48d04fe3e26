/**
 * Choosing how to authenticate from what the caller gave (and what ssh_config
 * adds: identity files, PreferredAuthentications and the per-method
 * switches), and failing early (before any network traffic) when nothing
 * usable was given.
 *
 * @module
 */

import { SshMcpError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { BoundedReadError } from "../read_bounded.ts";
import { type LoadedKey, loadPrivateKey } from "./keys.ts";
import type { ConnectPrompts } from "./prompts.ts";

/** The method names PreferredAuthentications orders; others are ignored. */
export type AuthMethodName = "publickey" | "password" | "keyboard-interactive";

/** What the caller offers for authentication. */
export interface AuthInput {
  password?: string;
  privateKeyPath?: string;
  /** Passphrase of `privateKeyPath`; without one, also tried on encrypted identity files. */
  passphrase?: string;
  agentSocket?: string;
  /** Key files tried in order after `privateKeyPath`; missing ones are skipped silently, as ssh skips them. */
  identityFiles?: string[];
  /**
   * No agent at all: ssh would offer only the agent's keys that match the identity files, but an agent's
   * keys cannot be matched to files here, so none is offered.
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
}

/** One authentication attempt; each public key is an attempt of its own. */
export type AuthAttempt =
  | { type: "publickey"; key: LoadedKey; path: string }
  | { type: "agent" }
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
 * Loads the keys and lists the attempts: the explicit key, the agent (only when neither password nor key was
 * given explicitly), the identity files, the password, then keyboard-interactive (only when a human can
 * answer, or with a password for servers that ask for it that way), reordered and filtered by
 * `preferredAuthentications`. `signal` ends the key reads (the connect deadline, or the caller's cancel).
 *
 * @param options What the caller gave.
 * @param signal Ends the key reads.
 * @returns The attempts in order.
 * @throws {SshMcpError} AUTH_METHOD_MISSING when nothing can be tried, a key error for the explicit key (or for
 *   the only identity file left), AGENT_UNAVAILABLE when the agent was the only way and its socket is unusable.
 */
export async function prepareAuth(options: AuthInput, signal?: AbortSignal): Promise<PreparedAuth> {
  const order = methodOrder(options.preferredAuthentications);
  const passwordOk = options.password !== undefined && options.passwordAuthentication !== false;
  const kbdOn = order.includes("keyboard-interactive") && options.kbdInteractiveAuthentication !== false;
  const kbdAnswerable = options.ask !== undefined || passwordOk;
  const explicit = options.password !== undefined || options.privateKeyPath !== undefined;
  const wantsAgent = !explicit && options.identitiesOnly !== true && !!options.agentSocket;

  const keys: AuthAttempt[] = [];
  const skipped: SshMcpError[] = [];
  let agentProblem: SshMcpError | null = null;
  if (order.includes("publickey")) {
    if (options.privateKeyPath !== undefined) {
      // The key the caller named: any problem with it is the answer.
      const key = await loadPrivateKey(options.privateKeyPath, options.passphrase, signal);
      keys.push({ type: "publickey", key, path: options.privateKeyPath });
    }
    // The agent's keys before the identity files, as ssh offers them.
    if (wantsAgent) {
      try {
        await Deno.stat(options.agentSocket!);
        keys.push({ type: "agent" });
      } catch (error) {
        agentProblem = new SshMcpError("AGENT_UNAVAILABLE", `ssh-agent socket ${options.agentSocket} is not usable`, {
          hint: "Start ssh-agent and add keys (ssh-add), or pass `password` or `private_key_path`",
          cause: error,
        });
      }
    }
    const identityPassphrase = options.privateKeyPath === undefined ? options.passphrase : undefined;
    for (const path of options.identityFiles ?? []) {
      if (path === options.privateKeyPath) continue;
      try {
        keys.push({ type: "publickey", key: await loadPrivateKey(path, identityPassphrase, signal), path });
      } catch (error) {
        if (!(error instanceof SshMcpError)) throw error;
        if (isMissing(error)) continue; // as ssh: an IdentityFile that does not exist is no error
        options.logger?.debug(`Skipping identity file ${path}: ${error.message}`);
        skipped.push(error);
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
