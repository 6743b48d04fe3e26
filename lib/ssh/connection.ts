/**
 * One authenticated SSH connection: channels (exec, shell, SFTP, forwards)
 * within a budget below the server's `MaxSessions`, and its end. Setting it
 * up (TCP, host key, authentication, deadline) is ./connect.ts.
 *
 * @module
 */

import { SshMcpError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { type Client, type ClientChannel, prepareSftpPatches, type SFTPWrapper, signalChannel } from "../ssh2/mod.ts";
import { ChannelBudget } from "./budget.ts";
import { failRequestsWhen, isAbandoned, sftpOpenError } from "./sftp.ts";
import { mapRuntimeError } from "./connect_errors.ts";
import { connect, type Connected, type ConnectionInfo, type ConnectOptions, type Transport } from "./connect.ts";
import { JumpChain } from "./jump.ts";

export type { ConnectionInfo, ConnectOptions, JumpInfo } from "./connect.ts";

/** Terminal settings of an interactive shell. */
export interface PtyOptions {
  /** TERM value, e.g. `xterm-256color`. */
  term: string;
  cols: number;
  rows: number;
}

/** A connection to a remote listener (`ssh -R`): accept it to get its channel, or reject it. */
export type TcpInHandler = (
  details: { destIP: string; destPort: number; srcIP: string; srcPort: number },
  accept: () => ClientChannel,
  reject: () => void,
) => void;

type OpenChannel = (callback: (err: Error | undefined, channel: ClientChannel) => void) => void;

/** Exit status of a remote command, filled in when the server reports it. */
export interface ExitStatus {
  /** Exit code, or null until reported (or when a signal ended the process). */
  code: number | null;
  /** Signal name as ssh2 reports it (e.g. `SIGKILL`), or null. */
  signal: string | null;
}

/** Options of {@linkcode SshConnection.exec}. */
export interface ExecOpenOptions {
  /** Bounds the whole wait: queue, channel open and exec request. */
  signal?: AbortSignal;
  /** Goes to the front of the queue (killing a timed-out command). */
  urgent?: boolean;
  /**
   * Called once the channel open is on its way: from then on the command
   * may run even if `signal` ends the wait (ssh2 sends the exec request as
   * soon as the channel opens).
   */
  onSent?: () => void;
  /** Called when the server refused the channel: what {@linkcode onSent} announced did not run. */
  onRefused?: () => void;
  /**
   * Takes over a channel that opened after `signal` ended the wait; it must
   * read both streams to their end and close the channel. By default it is
   * drained, signalled KILL (OpenSSH >= 7.9 ends the session's process) and
   * closed; its slot is freed when the close arrives.
   */
  onLate?: (late: ExecChannel) => void;
}

/** An open exec channel with its status tracked from the first packet. */
export interface ExecChannel {
  channel: ClientChannel;
  status: ExitStatus;
  /** Resolves when the exit status arrived, or the channel closed without one. */
  exited: Promise<void>;
  /** Resolves when the channel has closed (its budget slot is free again). */
  closed: Promise<void>;
}

/** A shell started ahead of its command (see {@linkcode SshConnection.startSpare}). */
interface Spare {
  /** Its exec request: what a caller must ask for to take it. */
  line: string;
  /** Its channel once open; null when the open failed. */
  opened: Promise<ExecChannel | null>;
  /** The connection's activity count when it was started: a change since makes it stale. */
  activity: number;
  /** A command took it: its channel counts as busy from then on. */
  taken: boolean;
  /** Its slot was given back (the open failed, or the channel closed). */
  freed: boolean;
  /** It ended (exit status or close) before anyone took it. */
  ended: boolean;
  /** When it was started (performance.now()): one older than {@linkcode SPARE_MAX_AGE_MS} is not used. */
  born: number;
}

/** The SFTP channel every file tool shares, while it opens and once it is open. */
interface SharedOpen {
  channel: Promise<SFTPWrapper>;
  /** The channel once open. */
  opened: SFTPWrapper | null;
  /** Callers waiting for the open now. */
  waiters: number;
  /** Ends the open when its last waiter gave up. */
  abandon: AbortController;
}

// Waits before asking again for a channel the server refused (see SshConnection #afterRefusal).
const REFUSED_WAITS_MS = [50, 100, 200, 400];

/** The short waits one channel open has had after refusals: with none of ours open, and with some. */
interface Refusals {
  settleWaits: number;
  busyWaits: number;
}

/**
 * An authenticated SSH connection. Close it with {@linkcode SshConnection.close}.
 * One reached through jump hosts owns them: they close after it, and it ends when any of them does.
 */
export class SshConnection {
  /** Facts fixed at connect time. */
  readonly info: ConnectionInfo;
  #client: Client;
  #budget: ChannelBudget;
  #closed = false;
  #closeReason: SshMcpError | null = null;
  #onClose = new Set<(reason: SshMcpError | null) => void>();
  #logger: Logger;

  #socket: Transport;
  /** The jump hosts, or null for a direct connection. */
  #chain: JumpChain | null = null;
  /** Settles once every jump host has closed, after this connection did. */
  #hopsClosed: Promise<void> = Promise.resolve();
  #sftp: SharedOpen | null = null;
  /** Remote listeners (ssh -R) by "address:port", as the server reports connections to them. */
  #listeners = new Map<string, TcpInHandler>();
  /** The shell started ahead for the next command, if any. */
  #spare: Spare | null = null;
  /** Counts every channel asked for (exec, shell, SFTP) other than a spare. */
  #activity = 0;
  /** Exec and shell channels of ours open or opening, a spare counted only once taken. */
  #busy = 0;
  /** A spare asked for while channels were busy: started once the last of them closes. */
  #wanted: string | null = null;
  /** close() was called: no spare is started any more (#closed follows only with ssh2's close). */
  #closing = false;
  /** The server closes a channel opened as another's process exits ({@linkcode opensRaceExits}). */
  #opensRaceExits: boolean;
  /** There, the close of the last retired spare: a new channel is asked for only after it. */
  #retiredSpareClosed: Promise<void> | null = null;

  private constructor(parts: {
    client: Client;
    socket: Transport;
    info: ConnectionInfo;
    /** Jump host connections, outermost first; this connection owns them. */
    hops: Connected[];
    maxChannels: number;
    logger: Logger;
    /** Why the host was refused during a re-exchange, if it was. */
    rekeyRefused: () => SshMcpError | null;
  }) {
    const { client, info, logger } = parts;
    this.#client = client;
    this.#socket = parts.socket;
    this.info = info;
    this.#budget = new ChannelBudget(parts.maxChannels);
    this.#logger = logger;
    this.#opensRaceExits = opensRaceExits(info.serverVersion);
    if (parts.hops.length > 0) {
      this.#chain = new JumpChain(parts.hops, (reason) => {
        if (this.#closed) return;
        // A hop that ended took this connection's channel with it; the reason names the hop.
        this.#closeReason ??= reason;
        logger.warn(`SSH ${info.username}@${info.host}:${info.port}: ${reason.message}`);
        this.#teardown();
      });
    }
    client.on("error", (err: Error & { level?: string }) => {
      this.#closeReason ??= parts.rekeyRefused() ?? mapRuntimeError(err, `${info.host}:${info.port}`);
      logger.warn(`SSH ${info.username}@${info.host}:${info.port}: ${err.message}`);
    });
    client.on("tcp connection", (details, accept, reject) => {
      const handler = this.#listeners.get(`${details.destIP}:${details.destPort}`);
      if (handler === undefined) return reject();
      handler(details, accept, reject);
    });
    client.on("close", () => {
      this.#closed = true;
      if (this.#chain !== null) this.#hopsClosed = this.#chain.close();
      const reason = this.#closeReason ??
        new SshMcpError("CONNECTION_LOST", `Connection to ${info.host}:${info.port} closed`, {
          hint: "Call ssh_connect again to open a new session",
        });
      this.#budget.fail(reason);
      for (const listener of this.#onClose) listener(reason);
    });
  }

  /** Connects, verifies the host key before any authentication, and authenticates (see ./connect.ts). */
  static async open(options: ConnectOptions): Promise<SshConnection> {
    const { client, socket, info, rekeyRefused, hops } = await connect(options);
    return new SshConnection({
      client,
      socket,
      info,
      hops,
      maxChannels: options.maxChannels ?? 10,
      logger: options.logger,
      rekeyRefused,
    });
  }

  /** Why the connection ended, once it has. */
  get closeReason(): SshMcpError | null {
    return this.#closed ? this.#lostError() : null;
  }

  /** Channel slots taken (open or opening) and callers queued for one: what a leak would show. */
  get channelSlots(): { inUse: number; waiting: number } {
    return { inUse: this.#budget.inUse, waiting: this.#budget.waiting };
  }

  /** Whether the connection is still up. */
  get alive(): boolean {
    return !this.#closed;
  }

  /** Registers a listener for the end of the connection; returns a function that removes it. */
  onClose(listener: (reason: SshMcpError | null) => void): () => void {
    this.#onClose.add(listener);
    return () => this.#onClose.delete(listener);
  }

  /**
   * Opens an exec channel within the channel budget, waiting for a free slot;
   * the slot is released when the channel closes. If the server refuses the
   * channel while others of ours are open (its MaxSessions is lower than our
   * budget), waits for one of them to close and tries again. `signal` bounds
   * the whole wait, queue and channel open included.
   */
  async exec(command: string, options: ExecOpenOptions = {}): Promise<ExecChannel> {
    this.#noteActivity();
    return await this.#open((cb) => {
      this.#client.exec(command, {}, cb);
      options.onSent?.();
    }, options);
  }

  /**
   * Opens an interactive shell on a PTY, within the same channel budget as
   * exec (a shell holds its slot until it closes).
   */
  async shell(pty: PtyOptions, options: { signal?: AbortSignal } = {}): Promise<ExecChannel> {
    const window = { term: pty.term, cols: pty.cols, rows: pty.rows, width: 0, height: 0 };
    this.#noteActivity();
    return await this.#open((cb) => this.#client.shell(window, {}, cb), options);
  }

  /**
   * The connection's SFTP session, opened on first use and shared by every
   * file tool (one channel, like OpenSSH's sftp). Reopened if it closed.
   * `signal` bounds this caller's wait only: the open goes on while anyone
   * still waits for it, and is given up (its queue position or late channel
   * released) once every caller has.
   */
  async sftp(options: { signal?: AbortSignal } = {}): Promise<SFTPWrapper> {
    // A new SFTP channel needs a slot: the spare gives its own back. Requests that change files
    // retire it themselves (see #watchChanges): reading files leaves it in place.
    if (this.#sftp === null) this.#noteActivity();
    for (;;) {
      const sftp = await this.#sharedSftp(options.signal);
      if (!isAbandoned(sftp)) return sftp;
      // Given up as stuck (./sftp_request.ts): sshd keeps that channel, and
      // its slot, until the blocked sftp-server returns; a new one serves the calls.
      if (this.#sftp?.opened === sftp) this.#sftp = null;
    }
  }

  async #sharedSftp(signal?: AbortSignal): Promise<SFTPWrapper> {
    if (this.#closed) throw this.#lostError();
    signal?.throwIfAborted();
    let open = this.#sftp;
    if (open === null) {
      const abandon = new AbortController();
      const pending: SharedOpen = { waiters: 0, abandon, opened: null } as SharedOpen;
      pending.channel = this.#openSftp(abandon.signal).then((sftp) => {
        // Given up in the same turn as it opened: nobody will use it.
        if (abandon.signal.aborted) {
          sftp.end();
          throw abandon.signal.reason;
        }
        return (pending.opened = sftp);
      }, (error) => {
        if (this.#sftp === pending) this.#sftp = null;
        throw error;
      });
      this.#sftp = open = pending;
    }
    open.waiters++;
    try {
      return await untilAborted(open.channel, signal);
    } finally {
      // The last caller to give up ends the open; a channel that did open stays for the next caller.
      if (--open.waiters === 0 && signal?.aborted && open.opened === null) {
        open.abandon.abort(signal.reason);
        if (this.#sftp === open) this.#sftp = null;
      }
    }
  }

  /** Opens the SFTP channel; a refused open is tried again as {@linkcode #open} does. */
  async #openSftp(signal: AbortSignal): Promise<SFTPWrapper> {
    await this.#afterRetiredSpare(signal);
    const refusals: Refusals = { settleWaits: 0, busyWaits: 0 };
    for (let attempt = 0;; attempt++) {
      try {
        return await this.#openSftpOnce(signal);
      } catch (error) {
        // Where opens race exits, a channel closed before its subsystem started (any channel of ours
        // ending at that moment, not only a retired spare) looks like a server without SFTP: tried
        // again a few times, after the same short waits.
        const raced = this.#opensRaceExits && error instanceof SshMcpError && error.code === "SFTP_UNAVAILABLE" &&
          refusals.settleWaits < REFUSED_WAITS_MS.length;
        if (raced) {
          await delay(REFUSED_WAITS_MS[refusals.settleWaits++], signal);
          continue;
        }
        const refused = error instanceof SshMcpError && error.code === "CHANNEL_OPEN_FAILED";
        if (!refused || attempt >= 50 || !(await this.#afterRefusal(refusals, signal))) throw error;
      }
    }
  }

  async #openSftpOnce(signal: AbortSignal): Promise<SFTPWrapper> {
    if (this.#closed) throw this.#lostError();
    // SFTP's repairs of ssh2 are decided at the first open in this process: a process that only runs
    // commands never pays for their self-tests.
    await prepareSftpPatches(this.#logger);
    if (this.#closed) throw this.#lostError();
    const release = await this.#budget.acquire(signal);
    return await new Promise<SFTPWrapper>((resolve, reject) => {
      let abandoned = false;
      const onAbort = () => {
        abandoned = true;
        reject(signal.reason);
      };
      if (signal.aborted) {
        release();
        return reject(signal.reason);
      }
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        this.#client.sftp((err, sftp) => {
          signal.removeEventListener("abort", onAbort);
          if (err) {
            release();
            if (abandoned) return;
            if (this.#closed) return reject(this.#lostError());
            // The channel itself refused (ssh2 gives its reason): a full server, not a missing subsystem.
            if ((err as { reason?: unknown }).reason !== undefined) return reject(this.#mapChannelError(err));
            // With the connection up, the subsystem was refused or spoke no SFTP (./sftp_open.ts).
            return reject(sftpOpenError(err, this.info));
          }
          sftp.on("error", () => {}); // surfaced through each request's callback
          this.#watchChanges(sftp);
          let offClose: () => void = () => {};
          const lost = new Promise<never>((_, fail) => (offClose = this.onClose(() => fail(this.#lostError()))));
          failRequestsWhen(sftp, lost);
          sftp.once("close", () => {
            offClose(); // a reopened channel must not leave one listener per open behind
            release();
            if (this.#sftp?.opened === sftp) this.#sftp = null;
          });
          if (abandoned) {
            sftp.end(); // every caller gave up; its slot is freed when the close arrives
            return;
          }
          resolve(sftp);
        });
      } catch (error) {
        signal.removeEventListener("abort", onAbort);
        release();
        reject(new SshMcpError("CONNECTION_LOST", `Connection to ${this.info.host} is gone`, { cause: error }));
      }
    });
  }

  async #open(start: OpenChannel, options: ExecOpenOptions): Promise<ExecChannel> {
    await this.#afterRetiredSpare(options.signal);
    const refusals: Refusals = { settleWaits: 0, busyWaits: 0 };
    for (let attempt = 0;; attempt++) {
      if (this.#closed) throw this.#lostError();
      const slot = await this.#budget.acquire(options.signal, options.urgent);
      this.#busy++;
      let freed = false;
      const release = () => {
        if (!freed) this.#idle();
        freed = true;
        slot();
      };
      try {
        return await this.#openChannel(start, release, options);
      } catch (error) {
        const refused = error instanceof SshMcpError && error.code === "CHANNEL_OPEN_FAILED";
        if (refused) options.onRefused?.();
        if (!refused || attempt >= 50 || !(await this.#afterRefusal(refusals, options.signal))) throw error;
      }
    }
  }

  /**
   * After the server refused a channel: waits until one of ours closes (its MaxSessions is below our
   * budget), or a short while. sshd frees a session slot only once it has handled our close, which can
   * arrive after a new open: a channel that just closed (a retired spare, a command that ended) may still
   * count there. A few short waits settle that (raced with a close of ours while any is open); then only
   * a close of ours helps, and with none open the refusal stands (a server that refuses every channel
   * costs 0.75 s more before the error).
   * @returns false when trying again cannot help.
   */
  async #afterRefusal(refusals: Refusals, signal?: AbortSignal): Promise<boolean> {
    if (this.#budget.inUse === 0) {
      if (refusals.settleWaits >= REFUSED_WAITS_MS.length) return false;
      await delay(REFUSED_WAITS_MS[refusals.settleWaits++], signal);
      return true;
    }
    if (refusals.busyWaits >= REFUSED_WAITS_MS.length) {
      await this.#budget.nextRelease(signal);
      return true;
    }
    const settle = REFUSED_WAITS_MS[refusals.busyWaits++];
    // Whichever comes first; the other is called off.
    const done = new AbortController();
    const either = signal === undefined ? done.signal : AbortSignal.any([signal, done.signal]);
    try {
      await Promise.race([this.#budget.nextRelease(either), delay(settle, either)]);
    } finally {
      done.abort();
    }
    return true;
  }

  // Owns `release`: called when the open fails or the channel closes. An
  // open abandoned by `signal` keeps its slot until the server answers, then
  // closes the late channel. The caller owns the channel's streams: "close"
  // (and the slot) comes only once both were read to their end.
  #openChannel(
    start: OpenChannel,
    release: () => void,
    options: { signal?: AbortSignal; onLate?: (late: ExecChannel) => void },
  ): Promise<ExecChannel> {
    const { signal, onLate } = options;
    return new Promise<ExecChannel>((resolve, reject) => {
      let settled = false;
      const onAbort = () => {
        settled = true;
        reject(signal!.reason);
      };
      if (signal?.aborted) {
        release();
        return reject(signal.reason);
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      try {
        start((err, channel) => {
          signal?.removeEventListener("abort", onAbort);
          if (err) {
            release();
            if (!settled) reject(this.#mapChannelError(err));
            return;
          }
          // Listeners go on before this callback returns: the rest of the
          // packet that confirmed the channel may already hold the command's
          // exit status and close, and ssh2 emits those synchronously.
          const status: ExitStatus = { code: null, signal: null };
          let onExit!: () => void;
          const exited = new Promise<void>((r) => (onExit = r));
          channel.on("exit", (code: number | null, signalName?: string) => {
            if (typeof code === "number") status.code = code;
            else if (signalName) status.signal = signalName;
            onExit();
          });
          const closed = new Promise<void>((done) =>
            channel.once("close", () => {
              release();
              onExit();
              done();
            })
          );
          if (settled) {
            // Nobody waits for it any more: it is ended, and its slot is
            // freed by its close, which ssh2 emits only after both streams
            // were read to their end. Left unread, it was never given back.
            channel.on("error", () => {});
            if (onLate) onLate({ channel, status, exited, closed });
            else endLate(channel);
            return;
          }
          settled = true;
          resolve({ channel, status, exited, closed });
        });
      } catch (error) {
        // ssh2 throws "Not connected" when the socket is no longer writable.
        signal?.removeEventListener("abort", onAbort);
        release();
        this.#socket.destroy();
        reject(
          new SshMcpError("CONNECTION_LOST", `Connection to ${this.info.host}:${this.info.port} is gone`, {
            hint: "Call ssh_connect again to open a new session",
            cause: error,
          }),
        );
      }
    });
  }

  /**
   * Starts a shell for the next command before it is asked for: `line` is its exec request, a
   * shell that waits for its script on stdin (./wrapper.ts `spareLine`). That command then skips
   * the channel open, the server's session setup and the shell's start (most of a short
   * command's time). Only on an idle connection: none of our exec or shell channels open or
   * opening, nobody queued for a slot, and a slot left free beside it. It holds one slot until
   * taken ({@linkcode takeSpare}) or retired: any other channel asked for (exec, shell, SFTP)
   * retires it at once, so it never keeps a slot from other work, and a command never runs in a
   * shell started before the last thing done on this connection (a login file a file tool
   * edited is read again). Retired or left at close, it ends having run nothing.
   */
  startSpare(line: string): void {
    // A command's call returns before its channel's close handshake: the spare follows that close.
    this.#wanted = this.#busy > 0 ? line : null;
    if (this.#closed || this.#closing || this.#spare !== null || this.#busy > 0) return;
    if (this.#budget.waiting > 0 || this.#budget.inUse + 1 >= this.#budget.max) return;
    const spare: Spare = {
      line,
      activity: this.#activity,
      taken: false,
      freed: false,
      ended: false,
      born: performance.now(),
      opened: Promise.resolve(null),
    };
    const slot = this.#budget.acquire(); // a slot is free: taken in this turn, before any await
    const release = () => {
      if (!spare.freed && spare.taken) this.#idle();
      spare.freed = true;
    };
    spare.opened = slot.then((free) => {
      const both = () => {
        release();
        free();
      };
      return this.#openChannel((cb) => this.#client.exec(line, {}, cb), both, {});
    }).then((opened) => {
      void opened.exited.then(() => {
        if (spare.taken) return;
        spare.ended = true;
        if (this.#spare === spare) this.#spare = null;
        endSpare(opened);
      });
      return opened;
    }, () => {
      release();
      if (this.#spare === spare) this.#spare = null;
      return null;
    });
    this.#spare = spare;
  }

  /**
   * The shell {@linkcode startSpare} started with `line`, once open, now the caller's: it owns the
   * channel and its slot from here on, as one from {@linkcode exec}; nothing was written to it. null
   * when there is none fit to use (none, another line, stale, its open failed, it ended).
   * When `signal` ends the wait for its open, it is retired (it ran nothing) and the signal's reason thrown.
   */
  async takeSpare(line: string, signal?: AbortSignal): Promise<ExecChannel | null> {
    const spare = this.#spare;
    if (spare === null) return null;
    const old = performance.now() - spare.born > SPARE_MAX_AGE_MS;
    if (spare.line !== line || spare.activity !== this.#activity || this.#closed || spare.ended || old) {
      this.#retire(spare);
      return null;
    }
    this.#spare = null;
    spare.taken = true;
    if (!spare.freed) this.#busy++;
    let opened: ExecChannel | null;
    try {
      opened = await untilAborted(spare.opened, signal);
    } catch (error) {
      void spare.opened.then((late) => late !== null && endSpare(late));
      throw error;
    }
    if (opened === null) return null;
    if (spare.ended || opened.status.code !== null || opened.status.signal !== null) {
      endSpare(opened); // it ended on its own before anything was written to it
      return null;
    }
    return opened;
  }

  /** One busy channel fewer; the last one to close starts a spare asked for meanwhile. */
  #idle(): void {
    if (--this.#busy > 0 || this.#wanted === null) return;
    const line = this.#wanted;
    this.#wanted = null;
    queueMicrotask(() => this.startSpare(line));
  }

  /**
   * Makes the shared SFTP channel's requests that change files count as activity, when sent and
   * again when answered: a spare started while a file tool wrote (a `.bashrc` half written, or
   * renamed into place later) is retired, and none is started for a command done meanwhile.
   * Reads (stat, read, list) leave the spare alone. The methods are shadowed on this one object
   * (the public API, no private fields of ssh2's).
   */
  #watchChanges(sftp: SFTPWrapper): void {
    const target = sftp as unknown as Record<string, unknown>;
    for (const name of SFTP_CHANGES) {
      const original = target[name];
      if (typeof original !== "function") continue;
      target[name] = (...args: unknown[]) => {
        if (name === "open" && !opensForWrite(args[1])) return original.apply(sftp, args);
        this.#noteActivity();
        const last = args.length - 1;
        const callback = args[last];
        if (typeof callback === "function") {
          args[last] = (...answer: unknown[]) => {
            this.#noteActivity();
            return callback(...answer);
          };
        }
        return original.apply(sftp, args);
      };
    }
  }

  /** Every channel asked for retires the spare: it would keep a slot, and would be stale. */
  #noteActivity(): void {
    this.#activity++;
    this.#wanted = null;
    if (this.#spare !== null) this.#retire(this.#spare);
  }

  #retire(spare: Spare): void {
    if (this.#spare === spare) this.#spare = null;
    const closed = spare.opened.then((opened) => {
      if (opened === null) return;
      endSpare(opened);
      return opened.closed;
    });
    // endSpare closes the channel after its grace, and a lost connection closes it too: this settles.
    if (this.#opensRaceExits) this.#retiredSpareClosed = closed.then(() => {}, () => {});
  }

  /**
   * On a server whose channel opens race its exits, waits until the spare just retired has closed: it
   * exits when retired, and a channel asked for at that moment would be closed by the server.
   */
  async #afterRetiredSpare(signal?: AbortSignal): Promise<void> {
    const closed = this.#retiredSpareClosed;
    if (closed === null) return;
    // Bounded: Dropbear closes the channel only once its process has exited, and a login file that
    // hangs keeps it running until the grace's KILL (endSpare) lands, if the server takes signals.
    const bound = new AbortController();
    try {
      await untilAborted(Promise.race([closed, delay(RETIRED_SPARE_WAIT_MS, bound.signal).catch(() => {})]), signal);
    } finally {
      bound.abort();
    }
    if (this.#retiredSpareClosed === closed) this.#retiredSpareClosed = null;
  }

  /**
   * Opens a direct-tcpip channel: the server connects to `host:port` on our
   * behalf (as `ssh -L` and `ssh -D` do). Not counted in the channel budget:
   * OpenSSH's MaxSessions limits session channels only.
   */
  tcpOut(host: string, port: number, from: { address: string; port: number }): Promise<ClientChannel> {
    if (this.#closed) return Promise.reject(this.#lostError());
    return new Promise<ClientChannel>((resolve, reject) => {
      const off = this.onClose(() => reject(this.#lostError()));
      try {
        this.#client.forwardOut(from.address, from.port, host, port, (err, channel) => {
          off();
          if (!err) return resolve(channel);
          const e = err as Error & { reason?: number };
          reject(
            e.reason === 1
              ? new SshMcpError("FORWARD_REFUSED", `Server ${this.info.host} does not allow TCP forwarding`, {
                hint: "The server's sshd_config sets AllowTcpForwarding or PermitOpen against it",
                cause: err,
              })
              : new SshMcpError(
                "FORWARD_TARGET_FAILED",
                `Server ${this.info.host} could not connect to ${host}:${port}: ${e.message.replace(/^\(SSH\) /, "")}`,
                { hint: "Check that something listens there, as seen from the SSH server", cause: err },
              ),
          );
        });
      } catch (error) {
        off();
        reject(new SshMcpError("CONNECTION_LOST", `Connection to ${this.info.host} is gone`, { cause: error }));
      }
    });
  }

  /**
   * Asks the server to listen on `address:port` (as `ssh -R`; port 0 lets it
   * choose) and hands each connection to it to `handler`. Returns the port
   * bound and a function that stops the listener.
   */
  tcpIn(address: string, port: number, handler: TcpInHandler): Promise<{ port: number; stop: () => Promise<void> }> {
    if (this.#closed) return Promise.reject(this.#lostError());
    return new Promise((resolve, reject) => {
      const off = this.onClose(() => reject(this.#lostError()));
      try {
        this.#client.forwardIn(address, port, (err, bound) => {
          off();
          if (err) {
            return reject(
              new SshMcpError("FORWARD_REFUSED", `Server ${this.info.host} refused to listen on ${address}:${port}`, {
                hint: "The port may be in use there, below 1024, or the server forbids remote forwarding " +
                  "(AllowTcpForwarding, GatewayPorts for non-loopback addresses)",
                cause: err,
              }),
            );
          }
          const actual = port === 0 ? bound : port;
          const key = `${address}:${actual}`;
          this.#listeners.set(key, handler);
          resolve({
            port: actual,
            // Bounded: a stalled server may never answer, and closing a
            // forward or a session must not hang on it.
            stop: () =>
              new Promise<void>((done) => {
                this.#listeners.delete(key);
                if (this.#closed) return done();
                const finish = () => {
                  offStop();
                  clearTimeout(timer);
                  done();
                };
                const offStop = this.onClose(finish);
                const timer = setTimeout(finish, 2000);
                try {
                  this.#client.unforwardIn(address, actual, finish);
                } catch {
                  finish();
                }
              }),
          });
        });
      } catch (error) {
        off();
        reject(new SshMcpError("CONNECTION_LOST", `Connection to ${this.info.host} is gone`, { cause: error }));
      }
    });
  }

  /** Closes the connection and every channel on it, then its jump hosts, innermost first. */
  async close(): Promise<void> {
    this.#closing = true;
    this.#wanted = null;
    if (this.#spare !== null) this.#retire(this.#spare);
    if (!this.#closed) {
      await new Promise<void>((resolve) => {
        this.#closeReason ??= new SshMcpError("SESSION_NOT_FOUND", "Session was closed", {
          hint: "Call ssh_connect to open a new session",
        });
        // A wedged peer never answers the disconnect: after a grace period the
        // socket is torn down here (ssh2's destroy() does nothing once ended).
        const timer = setTimeout(() => this.#teardown(), 2000);
        this.#client.once("close", () => {
          clearTimeout(timer);
          resolve();
        });
        this.#client.end();
      });
    }
    await this.#hopsClosed;
  }

  /** Tears the transport down at once: the socket, or through jump hosts the outermost one's socket. */
  #teardown(): void {
    if (this.#chain !== null) this.#chain.destroy();
    else this.#socket.destroy();
  }

  /** Closes the connection (for `await using`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #lostError(): SshMcpError {
    return this.#closeReason ??
      new SshMcpError("CONNECTION_LOST", `Connection to ${this.info.host}:${this.info.port} is closed`, {
        hint: "Call ssh_connect again to open a new session",
      });
  }

  #mapChannelError(err: Error & { reason?: number | string }): SshMcpError {
    if (this.#closed) return this.#lostError();
    // reason 1 = SSH_OPEN_ADMINISTRATIVELY_PROHIBITED: OpenSSH's answer past MaxSessions.
    const prohibited = err.reason === 1;
    this.#logger.debug(`channel open failed: ${err.message}`);
    return new SshMcpError(
      "CHANNEL_OPEN_FAILED",
      prohibited
        ? `Server ${this.info.host} refused a new channel (MaxSessions reached)`
        : `Server ${this.info.host} refused a new channel`,
      {
        hint: prohibited
          ? "Run fewer commands at once on this session, or lower max_channels_per_session to the server's MaxSessions"
          : "Retry; if it persists, reconnect",
        cause: err,
        retryable: true,
      },
    );
  }
}

const endedSpares = new WeakSet<ClientChannel>();

/**
 * Ends a spare shell nobody will use: EOF on its stdin ends its `read`, so it exits having run
 * nothing, and its streams are drained so the close (which frees its slot) can come. A shell that
 * does not end within the grace (a login file still running) has its channel closed.
 */
function endSpare(spare: ExecChannel): void {
  const { channel } = spare;
  if (endedSpares.has(channel)) return;
  endedSpares.add(channel);
  channel.on("error", () => {});
  channel.resume();
  channel.stderr.resume();
  // ssh2 writes nothing on a channel already closed or a connection already gone (the channel
  // then closes with it); eof() and close() return quietly there.
  channel.eof();
  // A shell still in its login files after the grace is killed, then closed: a server such as Dropbear
  // closes the channel only once the process has exited.
  const timer = setTimeout(() => {
    signalChannel(channel, "KILL");
    channel.close();
  }, SPARE_END_GRACE_MS);
  Deno.unrefTimer(timer);
  void spare.closed.then(() => clearTimeout(timer));
}

/**
 * The oldest a spare shell may be when a command takes it. Freshness otherwise covers only this
 * connection's own channels: a login file changed by another session or a background installer is
 * not seen, so a spare older than this is retired instead, and the command gets a fresh shell.
 */
const SPARE_MAX_AGE_MS = 60_000;

/** SFTP requests that may change what a login shell reads (see SshConnection #watchChanges). */
const SFTP_CHANGES = [
  "open",
  "write",
  "fchmod",
  "chmod",
  "fsetstat",
  "setstat",
  "futimes",
  "utimes",
  "fchown",
  "chown",
  "mkdir",
  "rmdir",
  "unlink",
  "rename",
  "ext_openssh_rename",
  "ext_openssh_hardlink",
  "symlink",
] as const;

/** Whether SFTP open flags (ssh2's string form, or the protocol's bits) can change the file. */
function opensForWrite(flags: unknown): boolean {
  if (typeof flags === "number") return (flags & ~SFTP_READ) !== 0;
  return flags !== "r";
}
const SFTP_READ = 0x1;

/**
 * Whether the server is a Dropbear before 2024.86, which closes a session channel opened just as
 * another channel's process exits, before the new channel's request runs (mkj/dropbear#173, fixed
 * by mkj/dropbear#326): an SFTP open then fails "Unable to start subsystem", a command never runs.
 * Debian 12 ships 2022.83. A Dropbear without a version counts as one.
 * @param serverVersion The software part of the server's identification, e.g. `dropbear_2022.83`.
 */
export function opensRaceExits(serverVersion: string): boolean {
  if (!/^dropbear/i.test(serverVersion)) return false;
  const version = /^dropbear_(\d+)\.(\d+)/i.exec(serverVersion);
  if (version === null) return true;
  const [year, release] = [Number(version[1]), Number(version[2])];
  return year < 2024 || (year === 2024 && release < 86);
}

/** How long a retired spare shell may take to end before its channel is closed. */
const SPARE_END_GRACE_MS = 2000;

/** The longest a new channel waits for a retired spare's close where opens race exits (Dropbear). */
const RETIRED_SPARE_WAIT_MS = SPARE_END_GRACE_MS + 1000;

/** Ends a channel nobody waits for: drained (so its close can come), signalled KILL, closed. */
function endLate(channel: ClientChannel): void {
  channel.resume();
  channel.stderr.resume();
  signalChannel(channel, "KILL");
  channel.close();
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Settles as `promise` does, or rejects with the signal's reason as soon as it aborts (`promise` goes on). */
function untilAborted<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
