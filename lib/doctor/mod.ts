/**
 * The doctor: why can (or can't) ssh_connect reach a host? Walks a connect
 * the way `ssh -vvv` shows one, and says what it found at each stage and
 * what to do: the ssh_config lines that applied, the allowlist, then for
 * each hop (jump hosts first) DNS, TCP, the banner, the algorithms, the host
 * key against known_hosts, the methods the server accepts and every
 * credential tried. Used by `mcp-remote-ssh doctor` (./cli.ts) and the
 * ssh_diagnose tool (../tools/connection.ts).
 *
 * It resolves the target exactly as ssh_connect does (the caller passes the
 * server's own resolver) and connects with the SSH layer's own connect
 * (../ssh/diagnose.ts), so it sees the same known_hosts, host-key policy,
 * keys and agent. It writes nothing here: known_hosts is never written, a
 * login that succeeds is closed at once, before any channel opens, and no
 * credential goes to a host key that is not in known_hosts. It is a login
 * attempt all the same: the server logs it, and a refused credential counts
 * toward its bans (fail2ban, PerSourcePenalties), so at most
 * {@linkcode DIAGNOSES_AT_ONCE} run at a time in this process.
 *
 * @module
 */

import type { Config } from "../config.ts";
import { SshMcpError } from "../errors.ts";
import { refuseUnlisted } from "../sessions.ts";
import type { ConnectOptions } from "../ssh/connect.ts";
import { observeConnect } from "../ssh/diagnose.ts";
import { parseProxyJump } from "../ssh_config/jump.ts";
import type { ResolvedTarget, TargetRequest } from "../targets.ts";
import { connectSteps, hopLabel, type Step } from "./explain.ts";

export { hopLabel, type Step, type StepName, type StepStatus } from "./explain.ts";

/** What to diagnose: what ssh_connect takes, and jump hosts as `ssh -J` takes them. */
export interface DiagnoseRequest extends Omit<TargetRequest, "ask"> {
  /** `[user@]host[:port]` hops, comma-separated, outermost first (replaces ssh_config's ProxyJump); "none" for none. */
  jump?: string;
}

/** What the diagnosis needs from the server. */
export interface DiagnoseDeps {
  config: Config;
  /** Resolves a target exactly as ssh_connect does (ssh_config read now). */
  resolve(request: TargetRequest): Promise<ResolvedTarget>;
  /** Admits the login (host policy approval), after the allowlist and before anything is sent. */
  admit?(target: { host: string; port: number; username: string }): Promise<void>;
}

/** The findings, and whether a login would succeed. */
export interface Diagnosis {
  /** True only when authentication with a credential ssh_connect would send succeeded (and was closed at once). */
  ok: boolean;
  /** The target as resolved, `user@host:port`, or the name given when it could not be resolved. */
  target: string;
  /** Where the target resolved to (after ssh_config); absent when it could not be resolved. */
  host?: string;
  port?: number;
  username?: string;
  /** One sentence: would a login work, and if not, where it fails. */
  verdict: string;
  steps: Step[];
}

/**
 * Diagnoses that may log in at once, in this process: each is a login attempt the server counts (a burst of
 * refused ones gets this machine banned), and ssh_connect's session limit does not see them.
 */
export const DIAGNOSES_AT_ONCE = 2;
let running = 0;

/**
 * Walks a connect to `request` and reports every stage.
 *
 * @param request The host (or ssh_config alias) and what ssh_connect would take with it.
 * @param deps The server's configuration and target resolver.
 * @returns The findings; a failure to reach the host is a finding, not an error.
 * @throws SshMcpError when `deps.admit` refuses, SESSION_LIMIT when {@linkcode DIAGNOSES_AT_ONCE} are
 *   already connecting, or for a cancel before the connect starts.
 */
export async function diagnose(request: DiagnoseRequest, deps: DiagnoseDeps): Promise<Diagnosis> {
  const { config } = deps;
  let resolved: ResolvedTarget;
  try {
    resolved = await resolveWithJump(request, deps);
  } catch (error) {
    if (!(error instanceof SshMcpError)) throw error;
    const step: Step = {
      step: "ssh_config",
      status: "fail",
      detail: error.message,
      fix: error.hint,
      data: { code: error.code, files: config.sshConfigFiles },
    };
    return finish(request.host, [step]);
  }
  const { options } = resolved;
  const target = hopLabel(options);
  const steps: Step[] = [configStep(resolved, config)];
  try {
    refuseUnlisted(options, config.allowedHosts);
    steps.push({
      step: "allowed_hosts",
      status: "ok",
      detail: config.allowedHosts === undefined ? "no allowlist: any host" : "every hop is in allowed_hosts",
    });
  } catch (error) {
    if (!(error instanceof SshMcpError)) throw error;
    steps.push({ step: "allowed_hosts", status: "fail", detail: error.message, fix: error.hint });
    return finish(target, steps);
  }
  await deps.admit?.({ host: options.host, port: options.port, username: options.username });
  if (running >= DIAGNOSES_AT_ONCE) {
    throw new SshMcpError("SESSION_LIMIT", `Cannot run more than ${DIAGNOSES_AT_ONCE} diagnoses at once`, {
      hint: "Each one is a login attempt the host counts; wait for the running ones to finish, then call again",
      retryable: true,
    });
  }
  running++;
  const facts = await observeConnect(options).finally(() => running--);
  steps.push(...connectSteps(facts, (options.connectTimeoutMs ?? 20_000) / 1000));
  return { ...finish(target, steps), host: options.host, port: options.port, username: options.username };
}

/** The target as ssh_connect resolves it, with `request.jump` (if any) as its jump hosts. */
async function resolveWithJump(request: DiagnoseRequest, deps: DiagnoseDeps): Promise<ResolvedTarget> {
  const { jump, ...rest } = request;
  const target = await deps.resolve(rest);
  if (jump === undefined) return target;
  const parsed = parseProxyJump(jump);
  const hops = parsed === "none" ? [] : parsed;
  if (typeof hops === "string") {
    throw new SshMcpError("INVALID_ARGUMENT", `Jump hosts ${JSON.stringify(jump)}: ${hops}`, {
      hint: "Write them as ssh -J takes them: [user@]host[:port], comma-separated, outermost first",
    });
  }
  // As `ssh -J`: the hops replace the target's own ProxyJump; only the first hop's own ProxyJump applies.
  const lines: string[] = [];
  let previous: ConnectOptions | undefined;
  for (const [index, hop] of hops.entries()) {
    const resolved = await deps.resolve({ host: hop.host, port: hop.port, username: hop.user });
    if (index > 0) resolved.options.jump = previous;
    lines.push(...resolved.configLines.map((l) => `${hop.host}: ${l}`), ...resolved.jumpConfigLines);
    target.warnings.push(...resolved.warnings);
    previous = resolved.options;
  }
  target.options.jump = previous;
  target.jumpConfigLines = lines;
  return target;
}

function configStep(resolved: ResolvedTarget, config: Config): Step {
  const lines = [...resolved.configLines, ...resolved.jumpConfigLines];
  const files = config.sshConfigFiles;
  const data = {
    files,
    lines,
    warnings: resolved.warnings,
    ...(resolved.alias === null ? {} : { alias: resolved.alias }),
  };
  const read = files.length === 0
    ? "no ssh_config read"
    : lines.length === 0
    ? `no line of ${files.join(", ")} applies`
    : `${lines.length} line${lines.length === 1 ? "" : "s"} of ${files.join(", ")} apply`;
  if (resolved.warnings.length > 0) {
    return {
      step: "ssh_config",
      status: "warn",
      detail: `${read}; ${resolved.warnings.join("; ")}`,
      fix: "These lines are read but not followed by this server; remove them, or expect them to have no effect",
      data,
    };
  }
  return { step: "ssh_config", status: "ok", detail: read, data };
}

function finish(target: string, steps: Step[]): Diagnosis {
  const failed = steps.find((s) => s.status === "fail");
  // Every hop logged in with a credential: a hop let in without one (or not tried) leaves the login unproven.
  const auths = steps.filter((s) => s.step === "auth");
  const ok = failed === undefined && auths.length > 0 && auths.every((s) => s.status === "ok");
  const hops = Math.max(0, ...steps.map((s) => s.hop ?? 0));
  const where = failed?.hop === undefined || failed.hop === hops ? "" : ` of jump host ${failed.host}`;
  // No failure, yet no login with a credential on some hop: not tried (an unverified host key), or in without one.
  const unverified = failed === undefined ? steps.find((s) => s.step === "auth" && s.status === "warn") : undefined;
  const at = unverified?.hop === undefined || unverified.hop === hops ? "" : ` (jump host ${unverified.host})`;
  const verdict = ok
    ? `A login to ${target} would succeed (the doctor logged in and closed the connection at once, running nothing)`
    : unverified !== undefined
    ? `A login to ${target} was not verified${at}: ${unverified.detail}`
    : failed === undefined
    ? `A login to ${target} was not completed`
    : `A login to ${target} fails at ${failed.step}${where}: ${failed.detail}`;
  return { ok, target, verdict, steps };
}
