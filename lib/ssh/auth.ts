/**
 * Choosing how to authenticate from what the caller gave, and failing early
 * (before any network traffic) when nothing usable was given.
 *
 * @module
 */

import { SshMcpError } from "../errors.ts";
import { type LoadedKey, loadPrivateKey } from "./keys.ts";

/** What the caller offers for authentication. */
export interface AuthInput {
  password?: string;
  privateKeyPath?: string;
  passphrase?: string;
  agentSocket?: string;
}

/** The methods to try, in order, and the decrypted key if any. */
export interface PreparedAuth {
  methods: ("password" | "publickey" | "agent")[];
  key?: LoadedKey;
}

/**
 * Loads the key (if any) and lists the methods to try: key, then password; the agent only when neither is given.
 * `signal` ends the key read (the connect deadline, or the caller's cancel).
 */
export async function prepareAuth(options: AuthInput, signal?: AbortSignal): Promise<PreparedAuth> {
  const methods: PreparedAuth["methods"] = [];
  let key: LoadedKey | undefined;
  if (options.privateKeyPath !== undefined) {
    key = await loadPrivateKey(options.privateKeyPath, options.passphrase, signal);
    methods.push("publickey");
  }
  if (options.password !== undefined) methods.push("password");
  if (methods.length === 0) {
    if (!options.agentSocket) {
      throw new SshMcpError(
        "AUTH_METHOD_MISSING",
        "No way to authenticate: no password, no private key and no ssh-agent",
        {
          hint:
            "Pass `password` or `private_key_path`, or start the server with SSH_AUTH_SOCK set to a running ssh-agent",
        },
      );
    }
    try {
      await Deno.stat(options.agentSocket);
    } catch (error) {
      throw new SshMcpError("AGENT_UNAVAILABLE", `ssh-agent socket ${options.agentSocket} is not usable`, {
        hint: "Start ssh-agent and add keys (ssh-add), or pass `password` or `private_key_path`",
        cause: error,
      });
    }
    methods.push("agent");
  }
  return { methods, key };
}
