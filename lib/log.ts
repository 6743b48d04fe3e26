/**
 * A stderr-only logger: stdout belongs to the MCP protocol.
 *
 * @module
 */

/** Log levels, most to least verbose. */
export const LOG_LEVELS = ["debug", "info", "warn", "error", "silent"] as const;
/** One of {@linkcode LOG_LEVELS}. */
export type LogLevel = typeof LOG_LEVELS[number];

/** The logger every layer receives. */
export interface Logger {
  /** Detail useful only when debugging. */
  debug(message: string): void;
  /** Normal operation worth a line. */
  info(message: string): void;
  /** Something was wrong but work continues. */
  warn(message: string): void;
  /** An operation failed. */
  error(message: string): void;
}

const encoder = new TextEncoder();

/** Creates a logger that writes lines at or above `level` to stderr. */
export function createLogger(level: LogLevel): Logger {
  const min = LOG_LEVELS.indexOf(level);
  function write(at: LogLevel, message: string): void {
    if (LOG_LEVELS.indexOf(at) < min) return;
    // Control characters from remote input must not drive the user's terminal.
    // deno-lint-ignore no-control-regex
    const clean = message.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "?");
    Deno.stderr.writeSync(
      encoder.encode(`${new Date().toISOString()} ${at.toUpperCase()} ${clean}\n`),
    );
  }
  return {
    debug: (m) => write("debug", m),
    info: (m) => write("info", m),
    warn: (m) => write("warn", m),
    error: (m) => write("error", m),
  };
}

/** A logger that drops everything (tests, library use). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
