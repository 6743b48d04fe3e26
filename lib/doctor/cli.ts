/**
 * `mcp-remote-ssh doctor <host or alias>`: the doctor (./mod.ts) from a
 * terminal. It reads the server's own configuration (`--config`, the same
 * flags), so it sees what the server would; prints the findings (or JSON
 * with `--json`) to stdout; exits 0 only when a login would succeed, 1 when
 * it would not, 2 on bad usage. A password comes from an environment
 * variable named with `--password-env`, never from the command line.
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { CliFlags } from "../cli.ts";
import { type ConfigEnv, type ConfigFile, readConfigFile, resolveConfig } from "../config.ts";
import { createLogger } from "../log.ts";
import { SessionRegistry } from "../sessions.ts";
import { parsePort } from "../ssh_config/jump.ts";
import { hostHint, hostProblem, userProblem } from "../validate.ts";
import { diagnose, type DiagnoseRequest } from "./mod.ts";
import { renderDiagnosis, renderDiagnosisJson } from "./render.ts";

/** Help text of `mcp-remote-ssh doctor`. */
export const DOCTOR_USAGE = `Usage: mcp-remote-ssh doctor [options] [user@]HOST

Walks a connection to HOST (a name, an address or a ~/.ssh/config alias) step by step, as
ssh_connect would make it, and says what it found and what to do: ssh_config lines, DNS, TCP,
the banner, algorithms, the host key against known_hosts, the server's methods and every key
tried, for each jump host too. It writes nothing: known_hosts is never written, no credential
goes to a host key known_hosts does not hold, and a login that succeeds is closed at once
without running anything (the server still sees a login, and counts a refused one). Exit
status 0 when a login with a credential would succeed, 1 when not, 2 on bad usage.

Options:
  -p, --port N              Port (default: ssh_config's, else 22)
  -l, --user USER           Remote user (default: ssh_config's, else the local user)
  -i, --identity FILE       Private key to try first
  --password-env NAME       Read the password from environment variable NAME, which starts
                            with MCP_REMOTE_SSH_PASSWORD (the only ones the shipped permission
                            set may read), e.g. MCP_REMOTE_SSH_PASSWORD or
                            MCP_REMOTE_SSH_PASSWORD_PROD
  --jump HOPS               Jump hosts as ssh -J takes them: [user@]host[:port],...
  --timeout SECONDS         Connect timeout (default: the configuration's, 20)
  --json                    Print the findings as JSON
  --config FILE, --ssh-config FILE, --known-hosts FILE, --host-key-policy POLICY,
  --allow-host PATTERN      As for the server (see mcp-remote-ssh --help), so the doctor
                            sees what the server would
  -h, --help                Print this help`;

/** The options of one doctor run. */
interface DoctorArgs {
  request: DiagnoseRequest;
  json: boolean;
  flags: CliFlags;
  config?: string;
}

/**
 * Runs the doctor from the command line.
 *
 * @param argv The arguments after `doctor`.
 * @param options `env` reads the environment the configuration depends on, as the server reads it.
 * @returns The exit status: 0 a login would succeed, 1 it would not, 2 bad usage or configuration.
 */
export async function doctorMain(argv: string[], options: { env: () => ConfigEnv }): Promise<number> {
  let args: DoctorArgs | "help";
  try {
    args = parseDoctorArgs(argv);
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    console.error(`mcp-remote-ssh doctor: ${error.message}\n\n${DOCTOR_USAGE}`);
    return 2;
  }
  if (args === "help") {
    console.log(DOCTOR_USAGE);
    return 0;
  }
  let config;
  try {
    const file: ConfigFile = args.config === undefined ? {} : await readConfigFile(args.config);
    config = resolveConfig(args.flags, file, options.env());
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    console.error(`mcp-remote-ssh doctor: ${error.message}`);
    return 2;
  }
  // Warnings (malformed known_hosts lines, skipped keys) go to stderr as the server logs them.
  const logger = createLogger(config.logLevel);
  const registry = new SessionRegistry({ logger, config });
  const diagnosis = await diagnose(args.request, { config, resolve: (request) => registry.resolve(request) });
  console.log(args.json ? renderDiagnosisJson(diagnosis) : renderDiagnosis(diagnosis));
  return diagnosis.ok ? 0 : 1;
}

/** Parses the doctor's arguments; throws a TypeError naming what is wrong. */
function parseDoctorArgs(argv: string[]): DoctorArgs | "help" {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      port: { type: "string", short: "p" },
      user: { type: "string", short: "l" },
      identity: { type: "string", short: "i" },
      "password-env": { type: "string" },
      jump: { type: "string" },
      timeout: { type: "string" },
      json: { type: "boolean" },
      config: { type: "string" },
      "ssh-config": { type: "string", multiple: true },
      "known-hosts": { type: "string", multiple: true },
      "host-key-policy": { type: "string" },
      "allow-host": { type: "string", multiple: true },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return "help";
  if (positionals.length !== 1) throw new TypeError("give exactly one host");
  let host = positionals[0];
  let username = values.user;
  const at = host.lastIndexOf("@");
  if (at >= 0) {
    username ??= host.slice(0, at);
    host = host.slice(at + 1);
  }
  const hostWrong = hostProblem(host);
  if (hostWrong !== null) throw new TypeError(`${hostWrong}${hostHint(host) ? ` (${hostHint(host)})` : ""}`);
  const userWrong = username === undefined ? null : userProblem(username);
  if (userWrong !== null) throw new TypeError(userWrong);
  const port = values.port === undefined ? undefined : parsePort(values.port);
  if (port === null) throw new TypeError(`Invalid --port ${JSON.stringify(values.port)}: use 1-65535`);
  const timeout = values.timeout === undefined ? undefined : Number(values.timeout);
  if (timeout !== undefined && !(timeout > 0 && timeout <= 600)) {
    throw new TypeError(`Invalid --timeout ${JSON.stringify(values.timeout)}: use seconds, more than 0, at most 600`);
  }
  const policy = values["host-key-policy"];
  if (policy !== undefined && policy !== "strict" && policy !== "accept-new") {
    throw new TypeError(`Invalid --host-key-policy ${JSON.stringify(policy)}: use strict or accept-new`);
  }
  const passwordEnv = values["password-env"];
  const password = passwordEnv === undefined ? undefined : readPassword(passwordEnv);
  return {
    request: {
      host,
      port,
      username,
      password,
      privateKeyPath: values.identity,
      connectTimeoutSeconds: timeout,
      jump: values.jump,
    },
    json: values.json ?? false,
    config: values.config,
    flags: {
      transport: "stdio",
      allowOrigins: [],
      config: values.config,
      knownHosts: values["known-hosts"] ?? [],
      sshConfigs: values["ssh-config"] ?? [],
      allowLocalDirs: [],
      hostKeyPolicy: policy,
      readOnly: false,
      allowHosts: values["allow-host"] ?? [],
      version: false,
      help: false,
    },
  };
}

/**
 * The password from the environment variable `name`. The shipped permission set (deno.json, and so the
 * binary, which takes no Deno flags) may read `MCP_REMOTE_SSH_PASSWORD*` and no other variable a user
 * would choose; a run with a wider set may name others. Queried, not requested: a prompt would hang a run
 * without a terminal and surprise one with it.
 */
function readPassword(name: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
    throw new TypeError(`--password-env ${JSON.stringify(name)}: not a variable name`);
  }
  if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
    throw new TypeError(
      `--password-env ${name}: this process may not read that variable; put the password in one whose name ` +
        "starts with MCP_REMOTE_SSH_PASSWORD (e.g. MCP_REMOTE_SSH_PASSWORD), which it may read",
    );
  }
  const password = Deno.env.get(name);
  if (password === undefined) throw new TypeError(`--password-env ${name}: the variable is not set`);
  return password;
}
