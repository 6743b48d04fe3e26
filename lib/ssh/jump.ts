/**
 * Jump hosts (OpenSSH's ProxyJump): the chain of hops a connection goes
 * through, the direct-tcpip channel each hop opens to the next host, the
 * errors that name the hop that failed, and the life of the hops once the
 * target is connected (they end with it, and it ends with any of them).
 *
 * Connecting the chain is ./connect.ts's `connect()`: every hop gets the same
 * host key check and authentication as a direct connection, one after the
 * other, within the target's one deadline.
 *
 * @module
 */

import { SshMcpError } from "../errors.ts";
import type { ClientChannel } from "../ssh2/mod.ts";
import type { Connected, ConnectOptions, JumpInfo } from "./connect_options.ts";

export type { JumpInfo } from "./connect_options.ts";
import { mapRuntimeError } from "./connect_errors.ts";

/** Jump hosts allowed in one chain; a longer one is far more likely a configuration loop. */
export const MAX_JUMP_HOSTS = 8;

/** How long a hop may take to answer our disconnect before its socket is torn down. */
const CLOSE_GRACE_MS = 2000;

/**
 * The jump hosts of `options`, outermost first (`target.jump = B, B.jump = A`
 * gives `[A, B]`); `[]` for a direct connection. Throws INVALID_ARGUMENT for
 * a chain that loops back on itself or is longer than {@linkcode MAX_JUMP_HOSTS}.
 */
export function jumpHostsOf(options: ConnectOptions): ConnectOptions[] {
  const hops: ConnectOptions[] = [];
  const seen = new Set<ConnectOptions>([options]);
  for (let hop = options.jump; hop !== undefined; hop = hop.jump) {
    if (seen.has(hop)) {
      throw new SshMcpError("INVALID_ARGUMENT", `Jump host chain of ${options.host} loops back on itself`, {
        hint: "Check the ProxyJump settings: a jump host must not lead back to itself",
      });
    }
    if (hops.length >= MAX_JUMP_HOSTS) {
      throw new SshMcpError("INVALID_ARGUMENT", `Jump host chain of ${options.host} is longer than ${MAX_JUMP_HOSTS}`, {
        hint: "Check the ProxyJump settings for a loop",
      });
    }
    seen.add(hop);
    hops.unshift(hop);
  }
  return hops;
}

/** `user@host:port`, as the hop is named in messages. */
export function hopLabel(hop: { host: string; port: number; username: string }): string {
  return `${hop.username}@${hop.host}:${hop.port}`;
}

/**
 * The same failure, said of jump host `index` (0 = outermost) of `count`:
 * "Jump host bastion:2222 (hop 1 of 2): …". Code, hint and retry advice are the underlying failure's.
 */
export function atJumpHost(error: unknown, hop: ConnectOptions, index: number, count: number): unknown {
  if (!(error instanceof SshMcpError)) return error;
  const what = error.message.charAt(0).toLowerCase() + error.message.slice(1);
  return new SshMcpError(error.code, `Jump host ${hop.host}:${hop.port} (hop ${index + 1} of ${count}): ${what}`, {
    hint: error.hint,
    cause: error,
    retryable: error.retryable,
  });
}

/** The same failure of the target, with the jump hosts it was reached through: "… (via jump host u@b:22)". */
export function viaJumpHosts(error: unknown, hops: ConnectOptions[]): unknown {
  if (!(error instanceof SshMcpError) || hops.length === 0) return error;
  const via = hops.length === 1 ? `jump host ${hopLabel(hops[0])}` : `jump hosts ${hops.map(hopLabel).join(" -> ")}`;
  return new SshMcpError(error.code, `${error.message} (via ${via})`, {
    hint: error.hint,
    cause: error,
    retryable: error.retryable,
  });
}

/**
 * Asks the hop `via` for a direct-tcpip channel to `to.host:to.port`: the
 * stream the next hop's SSH runs over. Rejects with the reason of `stop` as
 * soon as it aborts (a channel that opens later is closed); a refusal is
 * FORWARD_REFUSED (the hop forbids forwarding: AllowTcpForwarding, PermitOpen)
 * or CONNECT_REFUSED (the hop could not reach the host), naming the hop.
 */
export function openTunnel(
  via: Connected,
  to: { host: string; port: number },
  stop: AbortSignal,
): Promise<ClientChannel> {
  const hop = via.info;
  return new Promise<ClientChannel>((resolve, reject) => {
    if (stop.aborted) return reject(stop.reason);
    let settled = false;
    const onStop = () => {
      settled = true;
      reject(stop.reason);
    };
    stop.addEventListener("abort", onStop, { once: true });
    const answer = (err: (Error & { reason?: number }) | undefined, channel: ClientChannel) => {
      stop.removeEventListener("abort", onStop);
      if (settled) {
        channel?.close(); // opened after we gave up: nobody will use it
        return;
      }
      settled = true;
      if (err === undefined) return resolve(channel);
      reject(tunnelError(err, hop, to));
    };
    try {
      // The originator address is informational (sshd logs it); OpenSSH's ssh -J sends 127.0.0.1:0 too.
      via.client.forwardOut("127.0.0.1", 0, to.host, to.port, answer);
    } catch (error) {
      // ssh2 throws "Not connected" once the hop's socket is gone.
      stop.removeEventListener("abort", onStop);
      settled = true;
      reject(
        new SshMcpError("CONNECTION_LOST", `Connection to jump host ${hop.host}:${hop.port} is gone`, {
          cause: error,
        }),
      );
    }
  });
}

function tunnelError(
  err: Error & { reason?: number },
  hop: { host: string; port: number },
  to: { host: string; port: number },
): SshMcpError {
  const said = err.message.replace(/^\(SSH\) /, "");
  // RFC 4254 5.1 reason codes: 1 administratively prohibited, 2 connect failed.
  if (err.reason === 1) {
    return new SshMcpError(
      "FORWARD_REFUSED",
      `Jump host ${hop.host}:${hop.port} refused to open a channel to ${to.host}:${to.port}: ${said}`,
      {
        hint: "The jump host does not allow TCP forwarding to there (AllowTcpForwarding, PermitOpen in its " +
          "sshd_config); a jump host needs it",
        cause: err,
      },
    );
  }
  if (err.reason === 2) {
    return new SshMcpError(
      "CONNECT_REFUSED",
      `Jump host ${hop.host}:${hop.port} could not connect to ${to.host}:${to.port}: ${said}`,
      { hint: "Check the host and port, and that sshd runs there and is reachable from the jump host", cause: err },
    );
  }
  if (err.reason === undefined) {
    // ssh2 fails the pending open with a plain error when the hop's connection closed.
    return new SshMcpError("CONNECTION_LOST", `Connection to jump host ${hop.host}:${hop.port} closed`, {
      hint: "The jump host closed the connection while the next hop was being opened; check its logs",
      cause: err,
    });
  }
  return new SshMcpError(
    "CHANNEL_OPEN_FAILED",
    `Jump host ${hop.host}:${hop.port} refused a channel to ${to.host}:${to.port}: ${said}`,
    { hint: "Retry; if it persists, check the jump host's logs", cause: err, retryable: true },
  );
}

/** The facts of each hop that `ConnectionInfo.jumps` holds. */
export function jumpInfo(hops: Connected[]): JumpInfo[] {
  return hops.map(({ info }) => ({
    host: info.host,
    port: info.port,
    username: info.username,
    hostKeyType: info.hostKeyType,
    hostKeyFingerprint: info.hostKeyFingerprint,
    hostKeyAdded: info.hostKeyAdded,
  }));
}

/**
 * Ends hops at once, innermost first (each one's disconnect travels through
 * the hops outside it, so they go out in order before those end), for a
 * connect that failed part way. The outermost socket is torn down if its
 * server does not answer within the grace period.
 */
export function abandonHops(hops: Connected[]): void {
  for (const hop of hops.toReversed()) hop.client.end();
  if (hops.length > 0) {
    const outer = hops[0];
    const timer = setTimeout(() => outer.socket.destroy(), CLOSE_GRACE_MS);
    outer.client.once("close", () => clearTimeout(timer));
  }
}

/**
 * The jump hosts of an established connection, outermost first: watched
 * while it lives (the first hop to end is reported once, with a reason that
 * names it), and closed after it.
 */
export class JumpChain {
  readonly #hops: Connected[];
  #lost: ((reason: SshMcpError) => void) | null = null;
  #closing = false;
  #outerClosed = false;

  /** Takes over `hops` (connected, outermost first); `onLost` is told when one of them ends. */
  constructor(hops: Connected[], onLost: (reason: SshMcpError) => void) {
    this.#hops = hops;
    this.#lost = onLost;
    const count = hops.length;
    hops.forEach((hop, index) => {
      const { host, port, username } = hop.info;
      const where = `Jump host ${host}:${port} (hop ${index + 1} of ${count})`;
      let reason: SshMcpError | null = null;
      hop.client.on("error", (err: Error & { level?: string }) => {
        const cause = hop.rekeyRefused() ?? mapRuntimeError(err, `${host}:${port}`);
        const what = cause.message.charAt(0).toLowerCase() + cause.message.slice(1);
        reason ??= new SshMcpError(cause.code, `${where}: ${what}`, { hint: cause.hint, cause });
      });
      hop.client.on("close", () => {
        if (index === 0) this.#outerClosed = true;
        if (this.#closing) return;
        this.#report(
          reason ?? new SshMcpError("CONNECTION_LOST", `${where}: connection to ${username}@${host}:${port} closed`, {
            hint: "The jump host closed the connection; call ssh_connect again",
          }),
        );
      });
    });
  }

  /** The hops, outermost first. */
  get hops(): readonly Connected[] {
    return this.#hops;
  }

  /**
   * Ends every hop, innermost first, and resolves once the outermost one has
   * closed (its socket torn down if its server does not answer in time).
   * Ending the outermost ends the rest with it.
   */
  close(): Promise<void> {
    this.#closing = true;
    if (this.#hops.length === 0) return Promise.resolve();
    const outer = this.#hops[0];
    if (this.#outerClosed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => outer.socket.destroy(), CLOSE_GRACE_MS);
      outer.client.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
      for (const hop of this.#hops.toReversed()) hop.client.end();
    });
  }

  /** Tears the whole chain down at once (a wedged hop never answers a disconnect). */
  destroy(): void {
    this.#hops[0]?.socket.destroy();
  }

  #report(reason: SshMcpError): void {
    const lost = this.#lost;
    this.#lost = null;
    lost?.(reason);
  }
}
