/**
 * The logger every layer receives. Lines go to stderr (stdout belongs to
 * the MCP protocol); a {@linkcode ClientLog} may also pass them to the MCP
 * client of one server instance as `notifications/message`, once that client
 * has asked for them with `logging/setLevel`.
 *
 * Nothing logged may hold a secret (password, passphrase, key, token): a
 * message goes to the operator's terminal and to the client alike.
 *
 * @module
 */

import { neutralise } from "./remote_text.ts";
/** Log levels, most to least verbose. */
export const LOG_LEVELS = ["debug", "info", "warn", "error", "silent"] as const;
/** One of {@linkcode LOG_LEVELS}. */
export type LogLevel = typeof LOG_LEVELS[number];

/**
 * Facts of a message in machine-readable form (`session_id`, `host`, ...),
 * repeating what the message says; a client gets them beside the message.
 */
export type LogFields = Record<string, string | number | boolean | null>;

/** The logger every layer receives. */
export interface Logger {
  /** Detail useful only when debugging. */
  debug(message: string, fields?: LogFields): void;
  /** Normal operation worth a line. */
  info(message: string, fields?: LogFields): void;
  /** Something was wrong but work continues. */
  warn(message: string, fields?: LogFields): void;
  /** An operation failed. */
  error(message: string, fields?: LogFields): void;
}

const encoder = new TextEncoder();

/** Writes one finished line to the process's stderr. */
function toStderr(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line));
}

/**
 * Creates a logger that writes lines at or above `level` to stderr (the message only, not its fields).
 *
 * @param level The least severe level written.
 * @param write Where each finished line goes: stderr unless given (an in-process test server keeps them).
 */
export function createLogger(level: LogLevel, write: (line: string) => void = toStderr): Logger {
  const min = LOG_LEVELS.indexOf(level);
  function log(at: LogLevel, message: string): void {
    if (LOG_LEVELS.indexOf(at) < min) return;
    // Control characters from remote input (a server's disconnect reason)
    // must not drive the user's terminal: escaped as in tool results, and a
    // line break too, so a message stays one line.
    const clean = neutralise(message).replaceAll("\n", "\\n").replaceAll("\t", "\\t");
    write(`${new Date().toISOString()} ${at.toUpperCase()} ${clean}\n`);
  }
  return {
    debug: (m) => log("debug", m),
    info: (m) => log("info", m),
    warn: (m) => log("warn", m),
    error: (m) => log("error", m),
  };
}

/** A logger that drops everything (tests, library use). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/** Log levels of MCP (the syslog severities of RFC 5424), least to most severe. */
export const CLIENT_LOG_LEVELS = [
  "debug",
  "info",
  "notice",
  "warning",
  "error",
  "critical",
  "alert",
  "emergency",
] as const;
/** One of {@linkcode CLIENT_LOG_LEVELS}. */
export type ClientLogLevel = typeof CLIENT_LOG_LEVELS[number];

/** Our levels as RFC 5424 names them. */
export const CLIENT_LEVEL_OF: Readonly<Record<Exclude<LogLevel, "silent">, ClientLogLevel>> = {
  debug: "debug",
  info: "info",
  warn: "warning",
  error: "error",
};

/** The params of one `notifications/message`. */
export interface ClientLogMessage {
  /** The message's level as MCP names it. */
  level: ClientLogLevel;
  /** Always {@linkcode CLIENT_LOGGER_NAME}. */
  logger: string;
  /** The message, beside the fields it was logged with. */
  data: { message: string } & LogFields;
}

/** The logger name in every notification of this server. */
export const CLIENT_LOGGER_NAME = "mcp-remote-ssh";

/**
 * Log messages for one MCP client: nothing until the client sets a level,
 * then every message at or above it, handed to `send`. A send that fails (the
 * client is gone) is dropped; it never throws into whoever logged.
 *
 * @example
 * ```ts
 * const log = new ClientLog((params) => server.notification({ method: "notifications/message", params }));
 * const logger = log.wrap(createLogger("info")); // stderr as before, plus the client once it asks
 * log.setLevel("debug");
 * ```
 */
export class ClientLog {
  #send: (message: ClientLogMessage) => Promise<void>;
  #threshold: number | null = null;

  /**
   * Creates a client log that sends nothing until {@linkcode ClientLog.setLevel}.
   *
   * @param send Sends one notification to the client of this instance.
   */
  constructor(send: (message: ClientLogMessage) => Promise<void>) {
    this.#send = send;
  }

  /** The level the client asked for, or null before it asked. */
  get level(): ClientLogLevel | null {
    return this.#threshold === null ? null : CLIENT_LOG_LEVELS[this.#threshold];
  }

  /** What the client sent in `logging/setLevel`. */
  setLevel(level: ClientLogLevel): void {
    this.#threshold = CLIENT_LOG_LEVELS.indexOf(level);
  }

  /** Stops sending (the client is gone). */
  stop(): void {
    this.#threshold = null;
  }

  /**
   * A logger that writes to `base` as before and also sends each message the
   * client asked for.
   *
   * @param base The stderr logger (its own level applies to it alone).
   * @returns The logger for this server instance.
   */
  wrap(base: Logger): Logger {
    const both = (at: Exclude<LogLevel, "silent">) => (message: string, fields?: LogFields) => {
      base[at](message, fields);
      this.#forward(CLIENT_LEVEL_OF[at], message, fields);
    };
    return { debug: both("debug"), info: both("info"), warn: both("warn"), error: both("error") };
  }

  #forward(level: ClientLogLevel, message: string, fields: LogFields | undefined): void {
    if (this.#threshold === null || CLIENT_LOG_LEVELS.indexOf(level) < this.#threshold) return;
    // The message key comes last: a field cannot replace it. Strings are
    // escaped as in tool results: a message can quote a remote server
    // (its disconnect reason), and a client may show it to the model.
    const clean: LogFields = {};
    for (const [key, value] of Object.entries(fields ?? {})) {
      clean[key] = typeof value === "string" ? neutralise(value) : value;
    }
    const data = { ...clean, message: neutralise(message) };
    const params: ClientLogMessage = { level, logger: CLIENT_LOGGER_NAME, data };
    let sent: Promise<void>;
    try {
      sent = this.#send(params);
    } catch {
      return; // not connected: nobody to tell, and the caller's work goes on
    }
    sent.catch(() => {}); // the client went away mid-send; the same as above
  }
}
