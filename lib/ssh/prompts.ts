/**
 * Questions the SSH layer puts to the human during a connect: an unknown
 * host key under strict checking, and keyboard-interactive prompts (one-time
 * codes, 2FA). The layer only knows this interface; lib/tools/ask.ts answers
 * it with MCP elicitation when the client can show a form.
 *
 * A human needs time to read a fingerprint or fetch a code, so the connect
 * deadline stops while a question is open ({@linkcode PausableTimer}) and
 * each question has its own bound instead ({@linkcode QUESTION_TIMEOUT_MS}).
 * One clock this layer does not own keeps running: the server's
 * LoginGraceTime (OpenSSH default 120 s from the TCP accept to a completed
 * login). A human slower than that finds the connection closed by the
 * server (CONNECTION_LOST during set-up); the open question is then cancelled.
 *
 * @module
 */

import { SshMcpError } from "../errors.ts";

/** What the human is asked about an unknown host key. */
export interface UnknownHostKeyQuestion {
  host: string;
  port: number;
  /** Key type, e.g. `ssh-ed25519`. */
  keyType: string;
  /** `SHA256:…` of the presented key. */
  fingerprint: string;
  /** False when known_hosts cannot be written (the process gave up write permission): offer only once/refuse. */
  canRecord: boolean;
  /** True when the fingerprint equals the one the user gave (`expectedFingerprint`); that alone trusts nothing. */
  matchesExpected: boolean;
}

/** What the human is asked for in one keyboard-interactive round. */
export interface KeyboardInteractiveQuestion {
  host: string;
  port: number;
  username: string;
  /** The server's name for the round (often empty). */
  name: string;
  /** The server's instructions (often empty). */
  instructions: string;
  /** One entry per answer wanted; `echo` false marks a secret (password, code). */
  prompts: { prompt: string; echo: boolean }[];
}

/**
 * Questions a connect may put to the human. Absent from the connect options:
 * nothing is asked, and the connect behaves as without a human.
 */
export interface ConnectPrompts {
  /** An unknown host key under strict: "once" trusts for this connection, "record" also writes known_hosts. */
  unknownHostKey(info: UnknownHostKeyQuestion, signal?: AbortSignal): Promise<"once" | "record" | "refuse">;
  /** keyboard-interactive prompts (OTP, 2FA); null = the human declined/cancelled. */
  keyboardInteractive(info: KeyboardInteractiveQuestion, signal?: AbortSignal): Promise<string[] | null>;
}

/** How long one question may stay open: long enough to read a fingerprint or fetch a code. */
export const QUESTION_TIMEOUT_MS = 5 * 60_000;

/**
 * A one-shot timer that can be paused: the connect deadline, which does not
 * run while the human answers a question.
 */
export class PausableTimer {
  #left: number;
  #onExpire: () => void;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #startedAt = 0;
  #pauses = 0;
  #done = false;

  /** Starts a timer that calls `onExpire` after `ms` of running time. */
  constructor(ms: number, onExpire: () => void) {
    this.#left = ms;
    this.#onExpire = onExpire;
    this.#run();
  }

  /** Stops the clock until the returned function is called (pauses nest). */
  pause(): () => void {
    if (this.#done) return () => {};
    if (this.#pauses++ === 0 && this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#left -= performance.now() - this.#startedAt;
    }
    let resumed = false;
    return () => {
      if (resumed) return;
      resumed = true;
      if (--this.#pauses === 0 && !this.#done) this.#run();
    };
  }

  /** Stops the timer for good. */
  clear(): void {
    this.#done = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #run(): void {
    this.#startedAt = performance.now();
    this.#timer = setTimeout(() => {
      this.#done = true;
      this.#onExpire();
    }, Math.max(0, this.#left));
  }
}

/** Options of {@linkcode timedPrompts}. */
export interface TimedPromptsOptions {
  /** The connect deadline, paused while a question is open. */
  clock: { pause(): () => void };
  /** Ends an open question (the connect ended or was cancelled); passed on to the prompts. */
  signal: AbortSignal;
  /**
   * Bound of one question.
   * @default QUESTION_TIMEOUT_MS
   */
  timeoutMs?: number;
}

/**
 * `ask` with the connect deadline paused during each question, each question
 * bounded by its own timeout (then a coded CONNECT_TIMEOUT), and ended when
 * `signal` aborts (the connect is over: its question must not stay open).
 */
export function timedPrompts(ask: ConnectPrompts, options: TimedPromptsOptions): ConnectPrompts {
  const timeoutMs = options.timeoutMs ?? QUESTION_TIMEOUT_MS;
  async function asked<T>(what: string, question: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const resume = options.clock.pause();
    const expired = new SshMcpError("CONNECT_TIMEOUT", `No answer to the ${what} within ${timeoutMs / 1000} s`, {
      hint: "Connect again when someone can answer the question",
    });
    const bound = new AbortController();
    const timer = setTimeout(() => bound.abort(expired), timeoutMs);
    const signal = AbortSignal.any([bound.signal, options.signal]);
    try {
      return await new Promise<T>((resolve, reject) => {
        const onAbort = () => reject(signal.reason);
        if (signal.aborted) return onAbort();
        signal.addEventListener("abort", onAbort, { once: true });
        question(signal).then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
      });
    } finally {
      clearTimeout(timer);
      resume();
    }
  }
  return {
    unknownHostKey: (info) => asked("host key question", (signal) => ask.unknownHostKey(info, signal)),
    keyboardInteractive: (info) =>
      asked("keyboard-interactive prompt", (signal) => ask.keyboardInteractive(info, signal)),
  };
}
