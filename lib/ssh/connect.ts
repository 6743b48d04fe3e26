/**
 * Setting up one SSH connection: TCP within the connect deadline, the host
 * key verifier, the authentication handler, and the wait for ssh2's "ready"
 * bounded by the same deadline. {@linkcode SshConnection} takes over from
 * there (./connection.ts).
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { SshMcpError } from "../errors.ts";
import {
  type AnyAuthMethod,
  type AuthenticationType,
  type Client,
  connectClient,
  type ConnectConfig,
  createClient,
  DenoSocket,
  loadSsh2,
  type ParsedKey,
  preparePatches,
  selectedAgent,
  serverVersion,
  toSocketError,
} from "../ssh2/mod.ts";
import { fingerprintSha256, type KnownHostsEntry, knownKeyTypes, loadKnownHosts } from "./known_hosts.ts";
import { type AcceptedHostKey, verifyHostKey } from "./host_key_check.ts";
import { hostNotAllowed, mapConnectError } from "./connect_errors.ts";
import { type AuthAttempt, passwordAnswers, prepareAuth, type PreparedAuth } from "./auth.ts";
import { PausableTimer, timedPrompts } from "./prompts.ts";
import type {
  AuthAttemptName,
  AuthAttemptReport,
  Connected,
  ConnectionInfo,
  ConnectOptions,
  Transport,
} from "./connect_options.ts";
import { abandonHops, atJumpHost, jumpHostsOf, jumpInfo, openTunnel, viaJumpHosts } from "./jump.ts";

export type {
  AgreedAlgorithms,
  AuthAttemptName,
  AuthAttemptReport,
  Connected,
  ConnectionInfo,
  ConnectObserver,
  ConnectOptions,
  JumpInfo,
  Transport,
} from "./connect_options.ts";

// chacha20 first, measured with its exact MAC check against AES-GCM in one
// `deno task bench` run (load ~1.5 on 2 cores): through a forward 390 MB/s
// against 124 (aes128-gcm) and 137 (aes256-gcm); SFTP up 265 against
// 102/120, down 428 against 127/147. ssh2 builds a node:crypto cipher per
// GCM packet. See ../ssh2/chacha_decipher.ts and ../ssh2/chacha_fix.ts.
/** Ciphers offered, most preferred first (tests/bench.ts measures the first against the others). */
export const CIPHERS: readonly string[] = [
  "chacha20-poly1305@openssh.com",
  "aes128-gcm@openssh.com",
  "aes256-gcm@openssh.com",
  "aes128-ctr",
  "aes192-ctr",
  "aes256-ctr",
];

const HOST_KEY_ALGORITHMS = [
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "rsa-sha2-512",
  "rsa-sha2-256",
];

/**
 * Connects, verifies the host key before any authentication, and authenticates, all within the deadline:
 * reading the key and known_hosts files counts against it too, so nothing local can make a connect outlast it.
 * `signal` (the caller's cancel) ends it at any step.
 *
 * With `options.jump`, the jump hosts are connected first, outermost first, each one exactly as a direct
 * connection (its own host key check before any credential, its own authentication), each next one over a
 * direct-tcpip channel on the one before; the deadline and `signal` of `options` cover the whole chain, and a
 * failure anywhere closes everything opened so far. Errors keep the failure's code and name the hop.
 */
export async function connect(options: ConnectOptions): Promise<Connected> {
  const timeoutMs = options.connectTimeoutMs ?? 20000;
  const jumps = jumpHostsOf(options);
  // The host being connected now: the deadline's error names it.
  let current: ConnectOptions = jumps[0] ?? options;
  const timeoutError = () =>
    new SshMcpError(
      "CONNECT_TIMEOUT",
      `Cannot connect to ${current.host}:${current.port}: no SSH session within ${timeoutMs / 1000} s`,
      { hint: "Check host and port, that sshd is up and reachable, or raise connect_timeout" },
    );
  // One signal for every step: the deadline (with its own error) or the caller's cancel.
  const expiry = new AbortController();
  // Paused while the human answers a question (./prompts.ts); the end of the connect ends the question.
  const timer = new PausableTimer(timeoutMs, () => expiry.abort(timeoutError()));
  const stop = options.signal ? AbortSignal.any([expiry.signal, options.signal]) : expiry.signal;
  // One human answers for every hop, and the questions pause the one deadline of the chain.
  const ask = options.ask && timedPrompts(options.ask, { clock: timer, signal: stop });
  const steps = { stop };
  const stopped = (error: unknown) => stop.aborted && error === stop.reason ? stopError(current, stop) : error;
  const hops: Connected[] = [];
  try {
    for (const [index, hop] of jumps.entries()) {
      current = hop;
      try {
        hops.push(await connectUntil({ ...hop, ask }, steps, hops.at(-1)));
      } catch (error) {
        throw atJumpHost(stopped(error), hop, index, jumps.length);
      }
    }
    current = options;
    try {
      const target = await connectUntil({ ...options, ask }, steps, hops.at(-1));
      target.info.jumps = jumpInfo(hops);
      return { ...target, hops };
    } catch (error) {
      throw viaJumpHosts(stopped(error), jumps);
    }
  } catch (error) {
    abandonHops(hops);
    throw error;
  } finally {
    timer.clear();
    expiry.abort(); // drops every listener still waiting on the deadline
  }
}

/** The coded error for a connect ended by its deadline or by the caller. */
function stopError(options: ConnectOptions, stop: AbortSignal): SshMcpError {
  if (stop.reason instanceof SshMcpError) return stop.reason;
  return new SshMcpError("CANCELLED", `Connect to ${options.host}:${options.port} was cancelled`, {
    cause: stop.reason,
  });
}

/**
 * The attempts to make. With an observer, a credential that cannot be
 * prepared (a key that needs a passphrase, no agent) is told and leaves
 * only `none`, so the doctor still learns what the server would accept.
 */
async function prepareAuthFor(options: ConnectOptions, stop: AbortSignal): Promise<PreparedAuth> {
  if (options.observer === undefined) return await prepareAuth(options, stop);
  try {
    return await prepareAuth(options, stop);
  } catch (error) {
    if (!(error instanceof SshMcpError) || (stop.aborted && error === stop.reason)) throw error;
    options.observer.authUnprepared?.(error);
    return { attempts: [], kbdUnanswerable: false };
  }
}

/**
 * Connects one host: over TCP, or over a direct-tcpip channel on `via` (the
 * jump host before it), then the handshake, host key check and authentication.
 */
async function connectUntil(
  options: ConnectOptions,
  steps: { stop: AbortSignal },
  via?: Connected,
): Promise<Connected> {
  const { stop } = steps;
  const { observer } = options;
  await loadSsh2(); // ssh2 loads at the first connection, not at start-up (../ssh2/mod.ts)
  const auth = await prepareAuthFor(options, stop);
  const known = await loadKnownHosts(options.knownHosts.files, stop);
  for (const warning of known.warnings) options.logger.warn(warning);
  const began = performance.now();
  const socket = via === undefined ? await connectTcp(options, stop) : await openTunnel(via, options, stop);
  observer?.transport?.({ ms: Math.round(performance.now() - began), tunnel: via !== undefined });
  const patches = await preparePatches(options.logger);
  if (stop.aborted) {
    socket.destroy();
    throw stop.reason;
  }

  const client = createClient();
  const verifier = hostKeyVerifier(options, known.entries);
  const authenticator = authHandler(options, auth, { stop, hostKey: verifier.accepted });
  // The server's version is told once: with the handshake, or when the connect fails before it.
  let versionTold = false;
  const tellVersion = () => {
    if (versionTold || observer?.serverVersion === undefined) return;
    versionTold = true;
    const version = serverVersion(client);
    observer.serverVersion(version === "unknown" ? null : version);
  };
  if (observer !== undefined) {
    client.once("handshake", (agreed) => {
      tellVersion();
      observer.handshake?.({
        kex: agreed.kex,
        hostKey: agreed.serverHostKey,
        cipher: agreed.cs.cipher,
        mac: agreed.cs.mac,
        compression: agreed.cs.compress,
      });
    });
  }
  const ready = readyBefore(client, {
    socket,
    stop,
    onError: (err) =>
      verifier.error() ?? authenticator.error(err) ?? mapConnectError(err, {
        options,
        lastAuth: authenticator.lastMethod(),
        authStarted: authenticator.started(),
        hostKeyChecked: verifier.accepted() !== null,
      }),
    onClose: () =>
      verifier.error() ??
        new SshMcpError("CONNECTION_LOST", `Connection to ${options.host}:${options.port} closed during set-up`, {
          hint: "The server closed the connection before authentication completed; check its logs",
        }),
  });
  connectClient(client, {
    host: options.host,
    port: options.port,
    username: options.username,
    hostVerifier: verifier.verify,
    authHandler: authenticator.next,
    readyTimeout: 0, // readyBefore() covers TCP, handshake and auth together
    keepaliveInterval: options.keepaliveIntervalMs ?? 15000,
    keepaliveCountMax: options.keepaliveCountMax ?? 3,
    // No compression: it would swap in ssh2's zlib packet writer, which the rekey fix does not cover.
    algorithms: {
      cipher: CIPHERS,
      serverHostKey: hostKeyAlgorithms(known.entries, keyName(options)),
      compress: ["none"],
    },
  } as ConnectConfig, { socket, patches, logger: options.logger });
  try {
    await ready;
    stop.throwIfAborted(); // ready in the same turn as the cancel: nobody would own this connection
    authenticator.settle("accepted");
  } catch (error) {
    tellVersion();
    authenticator.settle("unanswered");
    client.end();
    throw error;
  }
  const hostKey = verifier.accepted();
  if (hostKey === null) {
    client.end();
    throw new SshMcpError("INTERNAL", "SSH session became ready without a host key check");
  }
  const info: ConnectionInfo = {
    host: options.host,
    port: options.port,
    username: options.username,
    hostKeyType: hostKey.type,
    hostKeyFingerprint: hostKey.fingerprint,
    serverVersion: serverVersion(client),
    hostKeyAdded: hostKey.added,
    authMethod: authenticator.lastMethod() ?? "password",
    jumps: [],
  };
  return { client, socket, info, rekeyRefused: verifier.rekeyRefused, hops: [] };
}

/** Host key algorithms to offer: those known_hosts lists for this host first, so its key is the one presented. */
/** Where known_hosts has this host's key: its HostKeyAlias alone (port 22 writes no port), else host and port. */
function keyName(options: ConnectOptions): { host: string; port: number } {
  return options.hostKeyAlias === undefined ? options : { host: options.hostKeyAlias, port: 22 };
}

function hostKeyAlgorithms(entries: KnownHostsEntry[], target: { host: string; port: number }): string[] {
  const knownTypes = knownKeyTypes(entries, target.host, target.port)
    .flatMap((t) => t === "ssh-rsa" ? ["rsa-sha2-512", "rsa-sha2-256"] : [t]);
  return [...new Set([...knownTypes, ...HOST_KEY_ALGORITHMS])].filter((a) => HOST_KEY_ALGORITHMS.includes(a));
}

/** ssh2's host key callback, with what it decided. */
interface HostKeyVerifier {
  verify: (key: Buffer, verify: (ok: boolean) => void) => void;
  /** The key accepted at connect, once it is. */
  accepted: () => AcceptedHostKey | null;
  /** Why the key was refused at connect, if it was. */
  error: () => SshMcpError | null;
  /** Why a key presented at a later re-exchange was refused, if one was. */
  rekeyRefused: () => SshMcpError | null;
}

/** Builds the host key policy as one callback: known_hosts at connect, the same key at every re-exchange. */
function hostKeyVerifier(options: ConnectOptions, entries: KnownHostsEntry[]): HostKeyVerifier {
  let accepted: AcceptedHostKey | null = null;
  let acceptedKey: Buffer | null = null;
  let error: SshMcpError | null = null;
  let rekeyRefused: SshMcpError | null = null;
  const verify = (key: Buffer, answer: (ok: boolean) => void): void => {
    // Every re-exchange presents the host key again. It must be the key
    // accepted at connect, and the answer must be synchronous: an answer
    // deferred to a later tick let ssh2 interleave other packets with the
    // end of the key exchange, and sshd dropped the connection as corrupt.
    if (acceptedKey !== null) {
      if (acceptedKey.equals(key)) return answer(true);
      rekeyRefused = new SshMcpError(
        "HOST_KEY_MISMATCH",
        `Host ${options.host}:${options.port} presented a different host key during a key re-exchange`,
        { hint: "The connection was closed; treat this as a possible attack and verify the host" },
      );
      return answer(false);
    }
    options.observer?.hostKey?.(new Uint8Array(key));
    verifyHostKey({ ...options, ...keyName(options) }, entries, new Uint8Array(key)).then(
      (result) => {
        accepted = result;
        acceptedKey = Buffer.from(key);
        options.observer?.hostKeyAccepted?.();
        answer(true);
      },
      (cause: unknown) => {
        error = cause instanceof SshMcpError
          ? cause
          : new SshMcpError("HANDSHAKE_FAILED", `Cannot check the host key of ${options.host}:${options.port}`, {
            hint: "The server's host key could not be parsed or recorded",
            cause,
          });
        answer(false);
      },
    );
  };
  return { verify, accepted: () => accepted, error: () => error, rekeyRefused: () => rekeyRefused };
}

/** ssh2's authentication callback, with what it tried. */
interface AuthHandler {
  next: (
    methodsLeft: AuthenticationType[] | null,
    partial: boolean | null,
    next: (auth: AnyAuthMethod | false) => void,
  ) => void;
  /** The method tried last, if any. */
  lastMethod: () => ConnectionInfo["authMethod"] | null;
  /** Whether the server asked for authentication at all (the host key was accepted). */
  started: () => boolean;
  /** An authentication failure this handler explains better than its method's name would, else null. */
  error: (err: Error & { level?: string }) => SshMcpError | null;
  /** Tells the observer what became of the attempt still waiting for its answer, if one is. */
  settle: (result: "accepted" | "unanswered") => void;
}

/** An attempt of the handler: a prepared one, or `none`, which only an observer asks for. */
type Attempt = AuthAttempt | { type: "none" };

/**
 * Offers the prepared attempts in order, each once, skipping methods the
 * server no longer lists, then gives up. Keyboard-interactive rounds are
 * answered with the password when they ask only for it, else by the human
 * (`options.ask`); answers are handed to ssh2 and kept nowhere else.
 */
/** A hidden keyboard-interactive prompt for a long-lived secret, which is not put to the human through MCP. */
const LONG_LIVED_SECRET = /pass(word|phrase)|passwort|mot de passe|contraseña/i;

function authHandler(
  options: ConnectOptions,
  auth: PreparedAuth,
  context: { stop: AbortSignal; hostKey: () => AcceptedHostKey | null },
): AuthHandler {
  const { stop } = context;
  const { host, port, username } = options;
  const where = `${host}:${port}`;
  const { observer } = options;
  const attempts: Attempt[] = observer === undefined
    ? [...auth.attempts]
    : [{ type: "none" }, ...auth.attempts.flatMap(oneAgentKeyEach)];
  observer?.authPlan?.(attempts.filter((a) => a.type !== "none").map(attemptName));
  // Sent and not yet answered: the next call of `next` (or settle) says what became of it.
  let pending: Attempt | null = null;
  const tell = (attempt: Attempt, result: AuthAttemptReport["result"], methodsLeft?: string[]) =>
    observer?.authAttempt?.({ ...attemptName(attempt), result, ...(methodsLeft ? { methodsLeft } : {}) });
  let last: AuthAttempt | null = null;
  let started = false;
  // ssh2 passes null until the server has answered a first attempt with its list.
  let serverMethods: AuthenticationType[] | null = null;
  const triedKeys: string[] = [];
  // The human's no, or why the question failed: no further method is tried.
  let kbdStop: "declined" | SshMcpError | null = null;
  // Prompts no one could answer (no human to ask).
  let unanswered: string | null = null;
  // The credentials were held back from a host key accepted for a look only.
  let withheld = false;
  const offered = (a: Attempt) =>
    a.type === "none" || serverMethods === null ||
    serverMethods.includes(a.type === "agent" ? "publickey" : a.type);

  const prompt = (
    name: string,
    instructions: string,
    _lang: string,
    prompts: { prompt: string; echo?: boolean }[],
    finish: (answers: string[]) => void,
  ) => {
    const asked = prompts.map((p) => ({ prompt: p.prompt, echo: p.echo === true }));
    // Wrong (empty) answers end the round as a failure, which the server then reports.
    const blank = () => finish(asked.map(() => ""));
    const password = options.passwordAuthentication === false ? undefined : options.password;
    const known = passwordAnswers(asked, { password });
    if (known !== null) return finish(known);
    if (options.ask === undefined) {
      unanswered = asked.map((p) => JSON.stringify(p.prompt.trim())).join(", ");
      return blank();
    }
    // A password or passphrase is never asked for through the MCP client: the answer would pass through it
    // (and may reach the agent), which MCP forbids for form elicitation. One-time codes are asked for.
    const secret = asked.find((p) => !p.echo && LONG_LIVED_SECRET.test(p.prompt));
    if (secret !== undefined) {
      kbdStop = new SshMcpError(
        "AUTH_FAILED",
        `Server ${where} asks ${JSON.stringify(secret.prompt.trim())} by keyboard-interactive authentication; ` +
          "a password is never asked for through the MCP client",
        { hint: "Pass `password` to ssh_connect, or authenticate with a key or the ssh-agent" },
      );
      return blank();
    }
    options.ask.keyboardInteractive({ host, port, username, name, instructions, prompts: asked }).then(
      (answers) => {
        if (answers === null) {
          kbdStop = "declined";
          return blank();
        }
        finish(asked.map((_, i) => answers[i] ?? ""));
      },
      (cause: unknown) => {
        kbdStop = cause instanceof SshMcpError ? cause : new SshMcpError(
          "AUTH_FAILED",
          `Cannot ask the user for the keyboard-interactive answers of ${where}`,
          { hint: "The question to the MCP client failed; try again, or use another authentication method", cause },
        );
        blank();
      },
    );
  };

  const next: AuthHandler["next"] = (methodsLeft, partial, done) => {
    started = true;
    if (methodsLeft) serverMethods = methodsLeft;
    if (pending !== null) tell(pending, partial ? "partial" : "refused", methodsLeft ?? undefined);
    pending = null;
    if (kbdStop !== null) return done(false);
    // A key accepted for a look only (readOnly: the doctor) gets `none` and nothing more: ssh_connect would
    // send a credential only after recording the key, and where it cannot record it, none at all.
    if (attempts[0]?.type !== "none" && context.hostKey()?.unverified === true) {
      withheld = true;
      observer?.authWithheld?.();
      return done(false);
    }
    let attempt = attempts.shift();
    while (attempt !== undefined && !offered(attempt)) {
      tell(attempt, "skipped");
      attempt = attempts.shift();
    }
    if (attempt === undefined) return done(false);
    pending = attempt;
    if (attempt.type === "none") return done({ type: "none", username });
    last = attempt;
    switch (attempt.type) {
      case "password":
        return done({ type: "password", username, password: options.password! });
      case "publickey":
        triedKeys.push(attempt.path);
        return done({ type: "publickey", username, key: attempt.key.parsed });
      case "agent": {
        // Only the keys prepareAuth chose, matched by public key in a fresh list: ssh2 would offer them all.
        const wanted = new Set(attempt.keys.map((k) => k.getPublicSSH().toString("base64")));
        const pick = (keys: ParsedKey[]) => keys.filter((k) => wanted.has(k.getPublicSSH().toString("base64")));
        triedKeys.push(
          attempt.path !== undefined
            ? `${attempt.path} (in the ssh-agent)`
            : `the ssh-agent's other ${attempt.keys.length === 1 ? "key" : `${attempt.keys.length} keys`}`,
        );
        return done({ type: "agent", username, agent: selectedAgent(options.agentSocket!, { pick, signal: stop }) });
      }
      case "keyboard-interactive":
        return done({ type: "keyboard-interactive", username, prompt });
    }
  };

  const error = (err: Error & { level?: string }): SshMcpError | null => {
    if (err.level !== "client-authentication") return null;
    if (withheld) {
      return new SshMcpError(
        "HOST_KEY_UNKNOWN",
        `Host ${where} is not in known_hosts: its key was accepted for a look only, and no credential was sent`,
        { hint: "Verify the host key, add it to known_hosts, then try again", cause: err },
      );
    }
    if (kbdStop === "declined") {
      return new SshMcpError("AUTH_FAILED", `The user declined the keyboard-interactive prompt of ${where}`, {
        hint: "The user chose not to answer; do not retry unless the user asks to",
      });
    }
    if (kbdStop !== null) return kbdStop;
    const noHuman = "which needs a human to answer, and this MCP client does not support elicitation (form mode)";
    const hint = "Use an MCP client that supports elicitation, or authenticate with a key or the ssh-agent";
    if (unanswered !== null) {
      return new SshMcpError(
        "AUTH_FAILED",
        `Server ${where} asked ${unanswered} by keyboard-interactive authentication for user ${username}, ${noHuman}`,
        { hint, cause: err },
      );
    }
    if (auth.kbdUnanswerable && serverMethods?.includes("keyboard-interactive")) {
      return new SshMcpError(
        "AUTH_FAILED",
        `Server ${where} did not accept the methods offered for user ${username}; it accepts keyboard-interactive ` +
          `authentication (prompts such as a one-time code), ${noHuman}`,
        { hint, cause: err },
      );
    }
    if (last?.type === "keyboard-interactive") {
      return new SshMcpError(
        "AUTH_FAILED",
        `Server ${where} rejected the keyboard-interactive answers for ${username}`,
        {
          hint: "Check the answers (a one-time code may have expired) and connect again",
          cause: err,
        },
      );
    }
    // The agent's other keys alone: mapConnectError says "every key in the ssh-agent".
    const named = triedKeys.length > 1 || (last?.type === "publickey" && last.path !== options.privateKeyPath) ||
      (last?.type === "agent" && last.path !== undefined);
    if ((last?.type === "publickey" || last?.type === "agent") && named) {
      return new SshMcpError(
        "AUTH_FAILED",
        `Server ${where} rejected the keys ${triedKeys.join(", ")} for ${username}`,
        {
          hint: "Check username, and that one of the public keys is in the user's authorized_keys",
          cause: err,
        },
      );
    }
    return null;
  };
  const settle = (result: "accepted" | "unanswered") => {
    if (pending !== null) tell(pending, result);
    pending = null;
  };
  return { next, lastMethod: () => last?.type ?? null, started: () => started, error, settle };
}

/** The agent's other keys as one attempt each, so each gets its own answer (for an observer). */
function oneAgentKeyEach(attempt: AuthAttempt): AuthAttempt[] {
  if (attempt.type !== "agent" || attempt.keys.length < 2) return [attempt];
  return attempt.keys.map((key) => ({ type: "agent", keys: [key] }));
}

/** How an attempt is named to an observer. */
function attemptName(attempt: Attempt): AuthAttemptName {
  switch (attempt.type) {
    case "publickey":
      return { method: "publickey", key: attempt.path };
    case "agent": {
      if (attempt.path !== undefined) return { method: "agent", key: `${attempt.path} (in the ssh-agent)` };
      // Type and fingerprint only: the comment (often an e-mail address or a host name) says who the user is.
      const [key] = attempt.keys;
      return { method: "agent", key: `${key.type} ${fingerprintSha256(key.getPublicSSH())}` };
    }
    default:
      return { method: attempt.type };
  }
}

/** How {@linkcode readyBefore} ends the wait when "ready" does not come. */
interface ReadyOptions {
  socket: Transport;
  /**
   * The caller's cancel and the deadline, whose reason is the timeout error; ends the wait with its reason.
   * The deadline is only this signal: connect() pauses it while a human answers a question.
   */
  stop: AbortSignal;
  /** The error for the client's first error event. */
  onError: (err: Error & { level?: string; code?: string }) => SshMcpError;
  /** The error for a close before "ready". */
  onClose: () => SshMcpError;
}

/**
 * Resolves on the client's "ready"; rejects at the deadline (tearing the
 * connection down), on its first error, or when it closes during set-up.
 */
function readyBefore(client: Client, options: ReadyOptions): Promise<void> {
  const { socket, stop } = options;
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const done = () => {
      settled = true;
      stop.removeEventListener("abort", onStop);
    };
    const giveUp = (error: unknown) => {
      done();
      reject(error);
      client.end();
      socket.destroy();
    };
    const onStop = () => giveUp(stop.reason);
    if (stop.aborted) return onStop();
    stop.addEventListener("abort", onStop, { once: true });
    client.once("ready", () => {
      done();
      resolve();
    });
    // Not once(): ssh2 may emit a second error after the first (a refused protocol version,
    // then "Connection lost before handshake" at the close), and an error event nobody listens
    // to is thrown as uncaught, ending the whole server. Later ones have nothing left to report.
    client.on("error", (err: Error & { level?: string; code?: string }) => {
      if (!settled) {
        done();
        reject(options.onError(err));
      }
      socket.destroy();
    });
    client.once("close", () => {
      done();
      reject(options.onClose());
    });
  });
}

/** Opens the TCP connection before `stop` (the connect deadline or the caller's cancel), mapping failures to codes. */
async function connectTcp(options: ConnectOptions, stop: AbortSignal): Promise<DenoSocket> {
  stop.throwIfAborted();
  const attempt = DenoSocket.connect(options.host, options.port);
  let onStop!: () => void;
  const stopped = new Promise<never>((_, reject) => {
    onStop = () => reject(stop.reason);
    stop.addEventListener("abort", onStop, { once: true });
  });
  try {
    return await Promise.race([attempt, stopped]);
  } catch (error) {
    // A connect that completes after we gave up must not leak its socket.
    attempt.then((late) => late.destroy(), () => {});
    if (stop.aborted && error === stop.reason) throw error;
    // Deno's own wall (a narrowed --allow-net) refused it, before any packet: say so, not "socket error".
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      throw hostNotAllowed(options.host, options.port, error);
    }
    const err = Object.assign(toSocketError(error), { level: "client-socket" });
    throw mapConnectError(err, { options, lastAuth: null, authStarted: false, hostKeyChecked: false });
  } finally {
    stop.removeEventListener("abort", onStop);
  }
}
