/**
 * One connect, watched step by step, for `mcp-remote-ssh doctor` and the
 * ssh_diagnose tool (../doctor/ turns what is seen here into findings and
 * fixes). The connect is ./connect.ts's own, with a {@linkcode ConnectObserver}
 * on every hop: the same ssh_config, known_hosts, keys, agent and jump
 * tunnels as ssh_connect, with differences that only change what is
 * learnt, never what is trusted: known_hosts is never written (a key
 * accept-new would record is accepted for this look only, and then gets
 * nothing but `none`: no credential goes to a key nobody verified),
 * authentication starts with `none` to hear the server's methods, and once
 * logged in the connection is closed at once, without a channel. The whole
 * look, name lookup and disconnect included, keeps to the one connect
 * timeout.
 *
 * @module
 */

import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { SshMcpError } from "../errors.ts";
import { preparePatches } from "../ssh2/mod.ts";
import {
  type AgreedAlgorithms,
  type AuthAttemptName,
  type AuthAttemptReport,
  connect,
  type Connected,
  type ConnectOptions,
} from "./connect.ts";
import { dnsFailed, hostNotAllowed, lookupFailure } from "./connect_errors.ts";
import { jumpHostsOf } from "./jump.ts";
import {
  checkHostKey,
  fingerprintSha256,
  formatKnownHostsLine,
  type HostKeyVerdict,
  keyTypeOf,
  loadKnownHosts,
} from "./known_hosts.ts";

/**
 * What the name lookup of the first hop found. `deferred`: not looked up apart, because Deno's --allow-net
 * names this host only with its port (a lookup needs the name alone); the connect resolves it itself.
 */
export type LookupFacts =
  | { kind: "literal" }
  | { kind: "found"; addresses: string[] }
  | { kind: "deferred" }
  | { kind: "failed"; error: SshMcpError };

/** The host key one hop presented and what known_hosts says of it. */
export interface HostKeyFacts {
  type: string;
  fingerprint: string;
  /** The known_hosts line that would trust it, when the host name can be written as one. */
  line: string | null;
  verdict: HostKeyVerdict;
  /** The files read for it, in order. */
  files: string[];
  /** Where a new key would be recorded. */
  writeFile: string;
  policy: "strict" | "accept-new";
  /** The name known_hosts lists it under (HostKeyAlias, else host), and its port. */
  name: string;
  port: number;
  /** Where the server really is (HostKeyAlias names the key, not the host): what ssh-keyscan must ask. */
  address: { host: string; port: number };
}

/** Everything seen of one hop (a jump host or the target), in connect order. */
export interface HopFacts {
  host: string;
  port: number;
  username: string;
  /** Milliseconds to the transport, and whether it is a channel through the hop before. */
  transport: { ms: number; tunnel: boolean } | null;
  /** The software in the server's identification line; null: none came; undefined: the connect ended before. */
  serverVersion: string | null | undefined;
  algorithms: AgreedAlgorithms | null;
  hostKey: HostKeyFacts | null;
  /** Identity files that could not be used, with why. */
  skippedKeys: { path: string; error: SshMcpError }[];
  /** Why no credential at all could be prepared, if so. */
  unprepared: SshMcpError | null;
  /** The attempts prepared, in order (`none` not included). */
  plan: AuthAttemptName[];
  /** What became of each attempt made, `none` first. */
  attempts: AuthAttemptReport[];
  /** The server accepted this hop's authentication. */
  loggedIn: boolean;
  /** A password was given for this hop (only the target ever has one). */
  passwordGiven: boolean;
  /** The host key check accepted the key (the exchange went on to the server's signature). */
  hostKeyAccepted: boolean;
  /** The key was accepted for this look only (unknown, accept-new): no credential was sent after `none`. */
  credentialsWithheld: boolean;
}

/** The whole connect as seen. */
export interface ConnectFacts {
  lookup: LookupFacts;
  /** Outermost first; the target last. */
  hops: HopFacts[];
  /** Why the connect failed; null when every hop logged in. */
  error: SshMcpError | null;
}

/** The most a disconnect after the login may take before the sockets are torn down. */
const CLOSE_GRACE_MS = 2000;

/**
 * The least a disconnect is given even when the deadline has passed: enough for the goodbye to be written,
 * so the server logs a disconnect rather than a reset. The one time the whole look may exceed its timeout.
 */
const CLOSE_FLOOR_MS = 200;

/**
 * Connects as ssh_connect would with `options` (a jump chain included), watching every step, and
 * disconnects as soon as the target has accepted the login: no channel is opened, nothing runs.
 * known_hosts is never written. A failure is part of the facts, not thrown (a cancel through
 * `options.signal` is a failure like any other).
 *
 * One clock, `options.connectTimeoutMs` (default 20 s), covers the name lookup, the connect and the
 * disconnect: the connect gets what the lookup left, the disconnect what the connect left (at most 2 s, at
 * least {@linkcode CLOSE_FLOOR_MS}), so the whole look ends within the timeout plus that floor.
 *
 * @param options The resolved connect options of the target; observers and `knownHosts.readOnly` are set
 *   here, on a copy of every hop.
 * @returns What was seen, hop by hop.
 */
export async function observeConnect(options: ConnectOptions): Promise<ConnectFacts> {
  const chain = [...jumpHostsOf(options), options];
  const hops = chain.map(newHop);
  const keys = new Map<HopFacts, Uint8Array>();
  // Copies, linked as the original chain is, each with its own observer: the caller's options stay as given.
  let previous: ConnectOptions | undefined;
  const copies = chain.map((hop, index) => {
    const copy: ConnectOptions = {
      ...hop,
      jump: previous,
      ask: undefined,
      knownHosts: { ...hop.knownHosts, readOnly: true },
      observer: observerOf(hops[index], hop, keys),
    };
    previous = copy;
    return copy;
  });
  const target = copies.at(-1)!;
  const first = chain[0];
  // ssh2 loaded and its repairs self-tested before the clock starts: on a busy machine that alone can take
  // seconds, which a short --timeout would otherwise report as a host that does not answer.
  await preparePatches(options.logger);
  const timeoutMs = options.connectTimeoutMs ?? 20_000;
  const deadline = performance.now() + timeoutMs;
  const left = () => Math.max(0, Math.round(deadline - performance.now()));
  const found = await lookUp(first, { timeoutMs, signal: options.signal });
  if (found.kind === "failed") return { lookup: found, hops, error: found.error };
  let error: SshMcpError | null = null;
  try {
    // What the lookup left (at least 1 ms: 0 would be connect's default); all of it when there was none, so
    // a timeout names the time given.
    const looked = found.kind === "found";
    const connected = await connect({ ...target, connectTimeoutMs: looked ? Math.max(1, left()) : timeoutMs });
    await disconnect(connected, Math.min(CLOSE_GRACE_MS, Math.max(CLOSE_FLOOR_MS, left())));
  } catch (caught) {
    if (!(caught instanceof SshMcpError)) throw caught;
    error = caught;
  }
  // Read after the connect: the observer that saw a key is synchronous and cannot wait for a file.
  for (const [hop, key] of keys) {
    const seen = hop.hostKey!;
    const { entries } = await loadKnownHosts(seen.files);
    seen.verdict = checkHostKey(entries, { host: seen.name, port: seen.port, keyType: seen.type, key });
  }
  return { lookup: found, hops, error };
}

function newHop(options: ConnectOptions): HopFacts {
  return {
    host: options.host,
    port: options.port,
    username: options.username,
    transport: null,
    serverVersion: undefined,
    algorithms: null,
    hostKey: null,
    skippedKeys: [],
    unprepared: null,
    plan: [],
    attempts: [],
    loggedIn: false,
    passwordGiven: options.password !== undefined,
    hostKeyAccepted: false,
    credentialsWithheld: false,
  };
}

function observerOf(
  facts: HopFacts,
  options: ConnectOptions,
  keys: Map<HopFacts, Uint8Array>,
): ConnectOptions["observer"] {
  return {
    transport: (event) => facts.transport = event,
    serverVersion: (version) => facts.serverVersion = version,
    handshake: (algorithms) => facts.algorithms = algorithms,
    hostKey: (key) => {
      facts.hostKey = hostKeyFacts(key, options);
      keys.set(facts, key);
    },
    hostKeyAccepted: () => facts.hostKeyAccepted = true,
    authWithheld: () => facts.credentialsWithheld = true,
    keySkipped: (path, error) => facts.skippedKeys.push({ path, error }),
    authUnprepared: (error) => facts.unprepared = error,
    authPlan: (plan) => facts.plan = plan,
    authAttempt: (report) => {
      facts.attempts.push(report);
      if (report.result === "accepted") facts.loggedIn = true;
    },
  };
}

/**
 * The presented key and where it would be looked up; its verdict is filled in by observeConnect from the
 * hop's known_hosts files, read again (the connect's copy is its own): the verdict ssh_connect's check
 * reaches, with the entry that decided it.
 */
function hostKeyFacts(key: Uint8Array, options: ConnectOptions): HostKeyFacts {
  const name = options.hostKeyAlias ?? options.host;
  const port = options.hostKeyAlias === undefined ? options.port : 22;
  let type = "(unparsable key)";
  let line: string | null = null;
  try {
    type = keyTypeOf(key);
    line = formatKnownHostsLine({ host: name, port, key });
  } catch (error) {
    // A malformed key (the check refuses it too), or a name that cannot be one literal known_hosts
    // pattern: no line to offer; the fingerprint still is.
    if (!(error instanceof Error)) throw error;
  }
  return {
    type,
    fingerprint: fingerprintSha256(key),
    line,
    verdict: { kind: "unknown" },
    files: options.knownHosts.files,
    writeFile: options.knownHosts.writeFile,
    policy: options.knownHosts.policy,
    name,
    port,
    address: { host: options.host, port: options.port },
  };
}

/**
 * The name lookup of the first hop, as the connect's own (getaddrinfo) does it, within `within.timeoutMs`.
 * Every failure is a finding. Deno refusing it (a narrowed --allow-net) is HOST_NOT_ALLOWED, as for the
 * connect; but a lookup needs the name alone, and --allow-net may name the host only with its port, which
 * lets the connect go there: then the lookup is left to the connect.
 */
async function lookUp(
  hop: { host: string; port: number },
  within: { timeoutMs: number; signal?: AbortSignal },
): Promise<LookupFacts> {
  const { host, port } = hop;
  if (isIP(host) !== 0) return { kind: "literal" };
  if (!netGranted(host) && netGranted(`${host}:${port}`)) return { kind: "deferred" };
  const expiry = new AbortController();
  const timer = setTimeout(() =>
    expiry.abort(
      new SshMcpError("DNS_FAILED", `Cannot resolve host name ${host}: no answer within ${within.timeoutMs / 1000} s`, {
        hint: "The resolver did not answer: check the network and DNS settings, retry, or give the IP address",
        retryable: true,
      }),
    ), within.timeoutMs);
  const signal = within.signal === undefined ? expiry.signal : AbortSignal.any([expiry.signal, within.signal]);
  let onAbort = () => {};
  const stopped = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    const found = await Promise.race([lookup(host, { all: true }), stopped]);
    return { kind: "found", addresses: [...new Set(found.map((a) => a.address))] };
  } catch (error) {
    return { kind: "failed", error: lookupError(error, { host, port, signal }) };
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
  }
}

/** Whether this process may reach `host` (`name` or `name:port`) without asking: Deno's --allow-net. */
function netGranted(host: string): boolean {
  return Deno.permissions.querySync({ name: "net", host }).state === "granted";
}

/** Why a lookup failed, coded: its deadline or cancel, Deno's permission wall, or the resolver's answer. */
function lookupError(error: unknown, context: { host: string; port: number; signal: AbortSignal }): SshMcpError {
  const { host, port, signal } = context;
  if (signal.aborted && error === signal.reason) {
    return signal.reason instanceof SshMcpError
      ? signal.reason
      : new SshMcpError("CANCELLED", `Lookup of ${host} was cancelled`, { cause: error });
  }
  // node:dns under a narrowed --allow-net fails with EPERM (Deno's own calls with NotCapable).
  const code = error instanceof Error ? (error as Error & { code?: unknown }).code : undefined;
  if (code === "EPERM" || error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
    return hostNotAllowed(host, port, error);
  }
  const failure = error instanceof Error ? lookupFailure(error) : null;
  const reason = error instanceof Error ? error.message : String(error);
  return dnsFailed(host, failure ?? { reason, temporary: false }, error);
}

/**
 * Ends the login at once, within `graceMs` whatever happens: the target's goodbye first (it travels through
 * the hops), then the hops', innermost first; the sockets are torn down when the servers have not closed by
 * then. It listens from the first moment and one timer ends it, so a hop that has already gone, or goes
 * while the target says goodbye, cannot make it wait.
 */
function disconnect(connected: Connected, graceMs: number): Promise<void> {
  const { client, socket, hops } = connected;
  const outer = hops[0] ?? connected;
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      socket.destroy();
      outer.socket.destroy();
      resolve();
    }, graceMs);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    // The outermost connection closing ends the rest with it.
    outer.client.once("close", done);
    if (hops.length > 0) {
      client.once("close", () => {
        for (const hop of hops.toReversed()) hop.client.end();
      });
    }
    client.end();
  });
}
