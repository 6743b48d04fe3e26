/**
 * mcp-remote-ssh: an MCP server that gives AI agents SSH sessions, commands
 * and files on remote hosts.
 *
 * Wiring only: flags -> config -> server -> transport. The published surface
 * is the command line (`--help`); the module exports nothing, so there is no
 * library API whose internals (sessions, roots, the SDK server) would become a
 * contract.
 *
 * @module
 */

import { HELP, parseFlags, VERSION } from "./lib/cli.ts";
import type { ConfigEnv } from "./lib/config.ts";
import { createLogger, type Logger } from "./lib/log.ts";
import { configEnvFrom, startupConfig, StartupError } from "./lib/startup.ts";
import { createServer } from "./lib/server.ts";
import { serveStdio } from "./lib/transport/stdio.ts";
import { onShutdownSignal } from "./lib/transport/signals.ts";
import { pretendSsh2Version } from "./lib/ssh2/mod.ts";
import type { AuditLog } from "./lib/audit/mod.ts";
import { drainAuditCalls } from "./lib/tools/record.ts";

/**
 * How long the audit log waits at shutdown for calls still running. Shutdown
 * has closed the SSH sessions and aborted every call's signal by then, so a
 * call that honours them ends in milliseconds; this bounds the rest. Short
 * because of clients that escalate: the SDK's stdio client sends SIGTERM 2 s
 * after closing stdin and SIGKILL 2 s after that, and this wait starts at
 * that SIGTERM, so its lines must be written well within the second 2 s.
 */
const AUDIT_DRAIN_MS = 1500;

/** Lets running calls write their lines (or records them as still running), then closes the log. */
async function closeAudit(audit: AuditLog | undefined, logger: Logger): Promise<void> {
  if (audit === undefined) return;
  const unfinished = await drainAuditCalls(audit, { timeoutMs: AUDIT_DRAIN_MS });
  if (unfinished > 0) logger.warn(`Audit log: ${unfinished} call(s) still running at shutdown, recorded as CANCELLED`);
  await audit.close();
}

/** The environment the configuration depends on, from this process's. */
function configEnv(): ConfigEnv {
  return configEnvFrom((name) => Deno.env.get(name));
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === "verify-audit") {
    // Loaded only here: a normal start does not pay for it.
    const { verifyAuditMain } = await import("./lib/audit/verify.ts");
    return await verifyAuditMain(argv.slice(1));
  }
  if (argv[0] === "doctor") {
    // Loaded only here, like verify-audit.
    const { doctorMain } = await import("./lib/doctor/cli.ts");
    return await doctorMain(argv.slice(1), { env: configEnv });
  }
  let flags;
  try {
    flags = parseFlags(argv);
  } catch (error) {
    console.error(`mcp-remote-ssh: ${error instanceof Error ? error.message : String(error)}\nTry --help`);
    return 2;
  }
  if (flags.help) {
    console.log(HELP);
    return 0;
  }
  if (flags.version) {
    console.log(`mcp-remote-ssh ${VERSION}`);
    return 0;
  }
  // Test only: lets tests/ssh2_guard_test.ts see the ssh2 repairs turn themselves off.
  if (flags.testSsh2Version !== undefined) pretendSsh2Version(flags.testSsh2Version);
  let config;
  try {
    config = await startupConfig(flags, configEnv(), Deno.cwd());
  } catch (error) {
    if (!(error instanceof StartupError)) throw error;
    console.error(`mcp-remote-ssh: ${error.message}`);
    return 2;
  }
  const logger = createLogger(config.logLevel);
  // Writes happen only for downloads (into the local roots) and for new host
  // keys under accept-new. With neither possible, give the permission up, so
  // not even a bug in this process or a dependency can write a file. Roots a
  // client may send later need it, so at start-up that is known only when
  // local files are off.
  const dropWrite = async (why: string) => {
    await Deno.permissions.revoke({ name: "write" });
    logger.info(`${why} and strict host keys: write permission dropped`);
  };
  let audit: AuditLog | undefined;
  if (config.audit !== undefined) {
    // Loaded only when configured. Opening never throws: a log that cannot be
    // written refuses every call (lib/tools/record.ts), and says why here.
    const { AuditLog } = await import("./lib/audit/mod.ts");
    audit = await AuditLog.open({ ...config.audit, onNotice: (message) => logger.warn(`Audit log: ${message}`) });
    if (audit.failure !== null) {
      logger.error(
        `Audit log ${config.audit.path}: ${audit.failure}; every tool call is refused until it can be written`,
      );
    }
  }
  // The audit log writes (and rotates) for the whole run: then the permission stays.
  const mayDrop = config.hostKeyPolicy === "strict" && audit === undefined;
  if (config.localFilesOff && mayDrop) await dropWrite("Local files off");
  if (flags.transport === "stdio") {
    const created = createServer(config, logger, { audit });
    // One client per process: once it has initialized, its capabilities say
    // for good whether any root can ever arrive.
    if (mayDrop && !config.localFilesOff) {
      created.roots.decided.then(() => created.roots.neverAny ? dropWrite("No local roots possible") : undefined)
        .catch((error) => logger.error(`Cannot drop the write permission: ${error}`));
    }
    await serveStdio(created, logger);
    await closeAudit(audit, logger);
    return 0;
  }
  // Loaded only here: stdio, the common case, starts without the HTTP modules.
  const { clientConfig, MCP_PATH, resolveToken, serveHttp, SSE_PATH, TOKEN_ENV } = await import(
    "./lib/transport/http.ts"
  );
  const { loadTls, tlsProblem } = await import("./lib/transport/tls.ts");
  const host = flags.host ?? "127.0.0.1";
  const port = flags.port ?? 9810;
  let token: { token: string; generated: boolean };
  let tls;
  try {
    // Before the token: without TLS, even the right token would cross the network in clear.
    const problem = tlsProblem(host, config.httpTls !== undefined);
    if (problem !== null) throw new TypeError(problem);
    tls = config.httpTls === undefined ? undefined : await loadTls(config.httpTls);
    token = await resolveToken(host, flags.tokenFile, Deno.env.get(TOKEN_ENV));
  } catch (error) {
    console.error(`mcp-remote-ssh: ${error instanceof Error ? error.message : String(error)}`);
    return 2;
  }
  let http;
  try {
    http = await serveHttp({
      transport: flags.transport,
      host,
      port,
      token: token.token,
      allowedOrigins: config.httpAllowedOrigins,
      maxBodyBytes: config.httpMaxBodyBytes,
      idleTimeoutMs: config.httpIdleTimeoutSeconds * 1000,
      maxSessions: config.httpMaxSessions,
      initTimeoutMs: config.httpInitTimeoutSeconds * 1000,
      tls,
      create: () => createServer(config!, logger, { audit }),
      logger,
    });
  } catch (error) {
    console.error(
      `mcp-remote-ssh: cannot listen on ${host}:${port}: ${error instanceof Error ? error.message : error}`,
    );
    return 2;
  }
  const shown = host.includes(":") ? `[${host}]` : host;
  const scheme = tls === undefined ? "http" : "https";
  const url = `${scheme}://${shown}:${http.port}${flags.transport === "sse" ? SSE_PATH : MCP_PATH}`;
  if (token.generated) {
    // Printed once, here, because nobody configured one; never logged anywhere else.
    console.error(
      "mcp-remote-ssh: no token configured, so this run uses a new one. Client configuration:\n" +
        clientConfig(flags.transport, url, token.token),
    );
  }
  // Last, so that whoever waits for this line has seen everything before it.
  console.error(`mcp-remote-ssh: ${flags.transport} listening on ${url}`);
  onShutdownSignal((sig) => {
    logger.info(`Shutting down: ${sig}`);
    http.shutdown();
  });
  await http.finished;
  await closeAudit(audit, logger);
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
