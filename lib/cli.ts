/**
 * Command-line flags, help text and version.
 *
 * @module
 */

import { parseArgs } from "node:util";
import denoJson from "../deno.json" with { type: "json" };
import { LOG_LEVELS, type LogLevel } from "./log.ts";

/** The version printed by `--version`, from deno.json. */
export const VERSION: string = denoJson.version;

/** Flags as given; unset ones are undefined so the config file can fill them. */
export interface CliFlags {
  transport: "stdio";
  config?: string;
  knownHosts: string[];
  allowLocalDirs: string[];
  hostKeyPolicy?: "strict" | "accept-new";
  logLevel?: LogLevel;
  version: boolean;
  help: boolean;
}

/** Help text for `--help`. */
export const HELP = `mcp-remote-ssh ${VERSION}
An MCP server that gives AI agents SSH sessions, commands and files on remote hosts.

Usage: mcp-remote-ssh [options]

Options:
  --transport stdio             MCP transport (default: stdio)
  --config FILE                 JSON configuration file (see README)
  --known-hosts FILE            Extra known_hosts file, read after ~/.ssh/known_hosts;
                                the last one given receives new keys under accept-new
                                (repeatable)
  --allow-local-dir DIR         Local directory that uploads may read and downloads may write
                                (repeatable; default: the working directory)
  --host-key-policy POLICY      strict (default): refuse unknown host keys;
                                accept-new: record unknown keys, refuse changed ones
  --log-level LEVEL             debug, info, warn (default), error, silent; logs go to stderr
  --version                     Print the version and exit
  --help                        Print this help and exit

Stdout carries only MCP messages. The server exits on stdin EOF, SIGINT or SIGTERM,
closing every SSH connection it holds.
`;

/** Parses argv; throws a TypeError with a readable message on bad flags. */
export function parseFlags(argv: string[]): CliFlags {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      transport: { type: "string" },
      config: { type: "string" },
      "known-hosts": { type: "string", multiple: true },
      "allow-local-dir": { type: "string", multiple: true },
      "host-key-policy": { type: "string" },
      "log-level": { type: "string" },
      version: { type: "boolean", short: "V" },
      help: { type: "boolean", short: "h" },
    },
  });
  const transport = values.transport ?? "stdio";
  if (transport !== "stdio") {
    throw new TypeError(`Unsupported --transport ${JSON.stringify(transport)}: only stdio is available`);
  }
  const policy = values["host-key-policy"];
  if (policy !== undefined && policy !== "strict" && policy !== "accept-new") {
    throw new TypeError(`Invalid --host-key-policy ${JSON.stringify(policy)}: use strict or accept-new`);
  }
  const level = values["log-level"];
  if (level !== undefined && !(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new TypeError(`Invalid --log-level ${JSON.stringify(level)}: use one of ${LOG_LEVELS.join(", ")}`);
  }
  return {
    transport,
    config: values.config,
    knownHosts: values["known-hosts"] ?? [],
    allowLocalDirs: values["allow-local-dir"] ?? [],
    hostKeyPolicy: policy,
    logLevel: level as LogLevel | undefined,
    version: values.version ?? false,
    help: values.help ?? false,
  };
}
