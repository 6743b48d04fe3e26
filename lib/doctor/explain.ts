/**
 * From what a watched connect saw (../ssh/diagnose.ts) to findings a person
 * can act on: one step per stage of each hop (DNS, TCP, banner, algorithms,
 * host key, the server's methods, the attempts), each ok, warn, fail or
 * skip, and for a problem the fix. The first stage that did not happen on
 * the first hop that did not log in is the one that failed; what comes after
 * it was not reached.
 *
 * @module
 */

import { SshMcpError } from "../errors.ts";
import { neutralise, quoteName } from "../remote_text.ts";
import type { AuthAttemptName, AuthAttemptReport } from "../ssh/connect.ts";
import type { ConnectFacts, HopFacts, HostKeyFacts } from "../ssh/diagnose.ts";
import { fingerprintSha256 } from "../ssh/known_hosts.ts";
import { shellQuote } from "../validate.ts";
import { Buffer } from "node:buffer";

/** The stages of a diagnosis, in order. */
export type StepName =
  | "ssh_config"
  | "allowed_hosts"
  | "dns"
  | "tcp"
  | "banner"
  | "algorithms"
  | "host_key"
  | "auth_methods"
  | "auth";

/** ok: fine; warn: works, but look at it; fail: this is why the login fails; skip: not reached or not relevant. */
export type StepStatus = "ok" | "warn" | "fail" | "skip";

/** One finding. */
export interface Step {
  step: StepName;
  status: StepStatus;
  /** The hop it is about, `user@host:port`; absent for the steps about the whole connect. */
  host?: string;
  /** Its place in the chain, 1 for the first; the target is the last. Absent with `host`. */
  hop?: number;
  /** What was found. */
  detail: string;
  /** What to do, for a problem. */
  fix?: string;
  /** The facts behind the detail, for a program (addresses, algorithms, fingerprints, attempts). */
  data?: Record<string, unknown>;
}

/** `user@host:port`. */
export function hopLabel(hop: { username: string; host: string; port: number }): string {
  return `${hop.username}@${hop.host}:${hop.port}`;
}

/**
 * The steps of every hop, outermost first.
 *
 * @param facts What the watched connect saw.
 * @param timeoutSeconds The connect timeout, for "nothing within N s".
 * @returns Seven steps per hop.
 */
export function connectSteps(facts: ConnectFacts, timeoutSeconds: number): Step[] {
  const failing = failingHop(facts);
  const steps: Step[] = [];
  facts.hops.forEach((hop, index) => {
    const host = hopLabel(hop);
    if (failing >= 0 && index > failing) {
      const stoppedAt = facts.hops[failing];
      const reason = stoppedAt.credentialsWithheld
        ? `not reached: no credential was sent to ${hopLabel(stoppedAt)}, whose host key is not verified`
        : `not reached: ${hopLabel(stoppedAt)} failed first`;
      for (const step of HOP_STEPS) steps.push({ step, status: "skip", host, hop: index + 1, detail: reason });
      return;
    }
    const found = hopSteps(facts, index, index === failing ? facts.error : null, timeoutSeconds);
    // A failure with no stage missing (a cancel in the last moment): said at the last step. Credentials
    // held back from an unverified key are no such failure: the auth step says so.
    if (index === failing && !found.some((s) => s.status === "fail") && !hop.credentialsWithheld) {
      const last = found.at(-1)!;
      Object.assign(last, { status: "fail", detail: facts.error!.message, fix: facts.error!.hint });
    }
    steps.push(...found.map((s) => ({ ...s, host, hop: index + 1 })));
  });
  return steps;
}

const HOP_STEPS: StepName[] = ["dns", "tcp", "banner", "algorithms", "host_key", "auth_methods", "auth"];

/** The first hop that did not log in, when the connect failed; -1 when it did not. */
function failingHop(facts: ConnectFacts): number {
  if (facts.error === null) return -1;
  const index = facts.hops.findIndex((h) => !h.loggedIn);
  return index < 0 ? facts.hops.length - 1 : index;
}

type Finding = Omit<Step, "step" | "host" | "hop">;

/** The steps of one hop; `error` is the connect's failure when this hop is the one that failed. */
function hopSteps(facts: ConnectFacts, index: number, error: SshMcpError | null, timeoutSeconds: number): Step[] {
  const hop = facts.hops[index];
  const previous = index > 0 ? facts.hops[index - 1] : null;
  const stages: [StepName, () => Finding | null][] = [
    ["dns", () => dnsStep(facts, hop, previous, error)],
    ["tcp", () => tcpStep(hop, previous, error, timeoutSeconds)],
    ["banner", () => bannerStep(hop, error, timeoutSeconds)],
    ["algorithms", () => algorithmsStep(hop, error)],
    ["host_key", () => hostKeyStep(hop, error)],
    ["auth_methods", () => methodsStep(hop, error)],
    ["auth", () => authStep(hop, error)],
  ];
  const steps: Step[] = [];
  let failed = false;
  for (const [step, find] of stages) {
    if (failed) {
      steps.push({ step, status: "skip", detail: "not reached" });
      continue;
    }
    const found = find();
    if (found === null) continue;
    steps.push({ step, ...found });
    failed = found.status === "fail";
  }
  return steps;
}

function dnsStep(facts: ConnectFacts, hop: HopFacts, previous: HopFacts | null, error: SshMcpError | null): Finding {
  if (previous !== null) {
    return hop.transport !== null
      ? { status: "ok", detail: `looked up by the jump host ${hopLabel(previous)}` }
      : { status: "skip", detail: `left to the jump host ${hopLabel(previous)}, which says only whether it connected` };
  }
  const found = facts.lookup;
  if (found.kind === "literal") return { status: "ok", detail: `${hop.host} is an address: no lookup` };
  if (found.kind === "deferred") {
    return {
      status: "skip",
      detail: `not looked up apart: Deno's --allow-net names ${hop.host} only with its port, so the connect ` +
        "resolves it",
    };
  }
  if (found.kind === "found") {
    return {
      status: "ok",
      detail: `${hop.host}: ${found.addresses.join(", ")}`,
      data: { addresses: found.addresses },
    };
  }
  return { status: "fail", detail: found.error.message, fix: found.error.hint, data: codeOf(error) };
}

function tcpStep(hop: HopFacts, previous: HopFacts | null, error: SshMcpError | null, timeoutSeconds: number): Finding {
  const where = `${hop.host}:${hop.port}`;
  if (hop.transport !== null) {
    const { ms } = hop.transport;
    return previous === null ? { status: "ok", detail: `connected to ${where} in ${ms} ms`, data: { ms } } : {
      status: "ok",
      detail: `channel to ${where} opened through ${hopLabel(previous)} in ${ms} ms`,
      data: { ms, via: hopLabel(previous) },
    };
  }
  if (error === null) return { status: "skip", detail: "not reached" };
  const data = codeOf(error);
  switch (error.code) {
    case "CONNECT_REFUSED":
      if (previous !== null) return { status: "fail", detail: innermost(error), fix: error.hint, data };
      return {
        status: "fail",
        detail: `connection refused: nothing listens on ${where}`,
        fix: "Check the port (-p, Port in ssh_config) and that sshd runs on the host; a firewall that rejects " +
          "connections looks the same",
        data,
      };
    case "CONNECT_TIMEOUT":
      return {
        status: "fail",
        detail: `no answer from ${where} within ${timeoutSeconds} s (timed out)`,
        fix: "The host is down, or a firewall drops the packets on the way: check the address and port, that the " +
          "host is up, and try from another network (VPN?); or raise the timeout",
        data,
      };
    case "CONNECTION_LOST":
      return {
        status: "fail",
        detail: `cannot connect to ${where}: ${causeText(error)}`,
        fix: "The host is unreachable from here (no route: check the address, the network, a VPN or firewall)",
        data,
      };
    default:
      return { status: "fail", detail: innermost(error), fix: error.hint, data };
  }
}

function bannerStep(hop: HopFacts, error: SshMcpError | null, timeoutSeconds: number): Finding {
  if (typeof hop.serverVersion === "string") {
    return {
      status: "ok",
      detail: `server runs ${neutralise(hop.serverVersion)}`,
      data: { version: hop.serverVersion },
    };
  }
  if (error === null) return { status: "skip", detail: "not reached" };
  const where = `${hop.host}:${hop.port}`;
  const data = codeOf(error);
  switch (error.code) {
    case "CONNECT_TIMEOUT":
      return {
        status: "fail",
        detail: `connected, but no SSH banner within ${timeoutSeconds} s: what listens on ${where} says nothing`,
        fix: "Check the port: a service that waits for its client to speak first (HTTP, a database) looks like this, " +
          "as does an sshd stalled before its banner (MaxStartups reached, slow reverse DNS); the server's log says " +
          "which",
        data,
      };
    case "CONNECTION_LOST":
      return {
        status: "fail",
        detail: `${where} closed the connection before sending an SSH banner`,
        fix: "sshd dropped this client before speaking: too many unauthenticated connections (MaxStartups), TCP " +
          "wrappers, or a ban of this address (fail2ban, PerSourcePenalties); check the server's log",
        data,
      };
    case "HANDSHAKE_FAILED":
      return {
        status: "fail",
        detail: `${where} did not answer with an SSH banner (${causeText(error)})`,
        fix: "Something other than sshd listens on this port: check the port (-p, Port in ssh_config)",
        data,
      };
    default:
      return { status: "fail", detail: innermost(error), fix: error.hint, data };
  }
}

function algorithmsStep(hop: HopFacts, error: SshMcpError | null): Finding {
  const agreed = hop.algorithms;
  if (agreed !== null) {
    const mac = agreed.mac === "" ? "" : `, MAC ${agreed.mac}`;
    return {
      status: "ok",
      detail: `kex ${agreed.kex}, host key ${agreed.hostKey}, cipher ${agreed.cipher}${mac}`,
      data: { ...agreed },
    };
  }
  if (hop.hostKey !== null && error !== null) {
    // The verifier runs inside the exchange: once it refuses, the exchange never completes.
    return { status: "skip", detail: "the exchange stopped at the host key check (next step)" };
  }
  if (error === null) return { status: "skip", detail: "not reached" };
  if (error.code === "HANDSHAKE_FAILED") {
    return {
      status: "fail",
      detail: `key exchange failed: ${causeText(error)}`,
      fix: "The server and this client share no key exchange, host key, cipher or MAC algorithm (ssh -vvv lists " +
        "what the server offers); enable current ones in its sshd_config (KexAlgorithms, HostKeyAlgorithms, Ciphers)",
      data: codeOf(error),
    };
  }
  return { status: "fail", detail: innermost(error), fix: error.hint, data: codeOf(error) };
}

function hostKeyStep(hop: HopFacts, error: SshMcpError | null): Finding {
  const seen = hop.hostKey;
  if (seen === null) {
    if (error === null) return { status: "skip", detail: "not reached" };
    return { status: "fail", detail: innermost(error), fix: error.hint, data: codeOf(error) };
  }
  const key = `${seen.type} ${seen.fingerprint}`;
  const data: Record<string, unknown> = { type: seen.type, fingerprint: seen.fingerprint, verdict: seen.verdict.kind };
  const hostError = error !== null && error.code.startsWith("HOST_KEY_") ? error : null;
  const verdict = seen.verdict;
  if (hop.hostKeyAccepted && hop.algorithms === null && error !== null && hostError === null) {
    // ssh2 asks the check before it verifies the server's signature over the exchange with that key: the key
    // passed, then the exchange failed, so the failure belongs to this step, not to the methods after it.
    // ssh2 hashes a server identification line with bytes above 0x7f differently from the server (as UTF-8,
    // not as sent), which alone breaks the signature.
    const nonAscii = typeof hop.serverVersion === "string" && /[^\p{ASCII}]/u.test(hop.serverVersion)
      ? "; the server's identification line holds non-ASCII bytes, which this client hashes differently from " +
        "the server: that alone breaks the signature"
      : "";
    return error.code === "HANDSHAKE_FAILED"
      ? {
        status: "fail",
        detail: `the key exchange failed after ${key} passed the known_hosts check: the server's signature ` +
          `with that key did not verify (${causeText(error) || error.message})${nonAscii}`,
        fix: "The server did not prove that it holds the private half of the key it presented: a man in the " +
          "middle, or a broken server. Do not log in until the host's administrator has checked it",
        data: { ...data, ...codeOf(error) },
      }
      : {
        status: "fail",
        detail: `the key exchange did not complete after ${key} passed the known_hosts check: ${innermost(error)}`,
        fix: error.hint,
        data: { ...data, ...codeOf(error) },
      };
  }
  if (
    hostError !== null && (verdict.kind === "match" || verdict.kind === "unknown") &&
    hostError.code !== "HOST_KEY_UNKNOWN"
  ) {
    // Known or not, it is not the fingerprint the caller gave.
    return { status: "fail", detail: hostError.message, fix: hostError.hint, data };
  }
  switch (verdict.kind) {
    case "match":
      return { status: "ok", detail: `${key}, known: ${verdict.entry.file} line ${verdict.entry.line}`, data };
    case "revoked":
      return {
        status: "fail",
        detail: `${key} is marked @revoked in ${verdict.entry.file} line ${verdict.entry.line}`,
        fix: "Do not connect: the key was revoked on purpose; ask the host's administrator",
        data,
      };
    case "mismatch": {
      const old = verdict.expected.map((e) =>
        `${e.keyType} ${
          fingerprintSha256(new Uint8Array(Buffer.from(e.keyBase64, "base64")))
        } (${e.file} line ${e.line})`
      );
      return {
        status: "fail",
        detail: `CHANGED: the server presented ${key}; known_hosts has ${old.join("; ")}`,
        fix: "Do not log in until you know why: this is what an attack (man in the middle) looks like, and also a " +
          "reinstalled server. Check the new fingerprint with the host's administrator; if it is right, remove the " +
          `old line (${removeCommand(seen, verdict.expected[0].file)})${addLine(seen)}`,
        data: { ...data, known: old, ...(seen.line === null ? {} : { line: seen.line }) },
      };
    }
    case "unknown": {
      const check = checkCommand(seen);
      const withLine = seen.line === null ? {} : { line: seen.line };
      if (seen.policy === "accept-new" && (hostError === null || hop.credentialsWithheld)) {
        // Not ok: the login was not tried (no credential goes to a key nobody verified; see the auth step).
        return {
          status: "warn",
          detail: `${key} is not in known_hosts; ssh_connect would record it in ${seen.writeFile} (accept-new), ` +
            "trusting it unchecked (the doctor wrote nothing and sent it no credential)",
          fix: `Verify it first: ${check}, and compare with the host's administrator${addLine(seen)}; then run ` +
            "the doctor again",
          data: { ...data, ...withLine },
        };
      }
      return {
        status: "fail",
        detail: `${key} is not in known_hosts (read: ${seen.files.join(", ") || "none"})`,
        fix: `Check the fingerprint out of band: ${check} from a network you trust, or ask the host's administrator ` +
          `(ssh-keygen -lf on the server's host key)${addLine(seen)}; or start the server with --host-key-policy ` +
          "accept-new to trust unknown hosts on first use",
        data: { ...data, ...withLine },
      };
    }
  }
}

/**
 * `ssh-keyscan … | ssh-keygen -lf -`: the fingerprint as a second connection sees it. It asks the host and
 * port the server really is at: a HostKeyAlias names only the key.
 */
function checkCommand(seen: HostKeyFacts): string {
  const type = seen.type.replace(/^ssh-/, "").replace(/^ecdsa-sha2-nistp\d+$/, "ecdsa").replace(/^rsa-.*/, "rsa");
  const { host, port } = seen.address;
  const portFlag = port === 22 ? "" : ` -p ${port}`;
  return `ssh-keyscan${portFlag} -t ${shellWord(type)} ${shellWord(host)} | ssh-keygen -lf -`;
}

function removeCommand(seen: HostKeyFacts, file: string): string {
  const name = seen.port === 22 ? seen.name : `[${seen.name}]:${seen.port}`;
  return `ssh-keygen -R ${shellWord(name)} -f ${shellWord(file)}`;
}

/** `value` as one word of a command line to paste: as it is when no shell reads anything into it, else quoted. */
function shellWord(value: string): string {
  return /^[A-Za-z0-9@%+=:,./_-]+$/.test(value) ? value : shellQuote(value);
}

function addLine(seen: HostKeyFacts): string {
  return seen.line === null ? "" : `; to trust it, append this line to ${seen.writeFile}: ${seen.line}`;
}

function methodsStep(hop: HopFacts, error: SshMcpError | null): Finding {
  const none = hop.attempts.find((a) => a.method === "none");
  if (none === undefined) {
    if (error === null) return { status: "skip", detail: "not reached" };
    return { status: "fail", detail: innermost(error), fix: error.hint, data: codeOf(error) };
  }
  if (none.result === "accepted") {
    return { status: "warn", detail: `the server let ${hop.username} in without authentication (method none)` };
  }
  if (none.result === "refused" && none.methodsLeft !== undefined) {
    const { names, more, others } = methodNames(none.methodsLeft);
    const extra = [
      ...(more > 0 ? [`${more} more`] : []),
      ...(others.length > 0 ? [`names that are not method names: ${others.join(", ")}`] : []),
    ];
    return {
      status: "ok",
      detail: `the server accepts: ${names.join(", ") || "nothing"}${
        extra.length > 0 ? ` (and ${extra.join("; ")})` : ""
      }`,
      data: { methods: names },
    };
  }
  return {
    status: "fail",
    detail: `the server ended the connection before naming its methods${error === null ? "" : `: ${innermost(error)}`}`,
    fix: error?.hint ?? "Check the server's log",
    data: codeOf(error),
  };
}

/** The most method names shown: the list is the server's, and it may send any. */
const MAX_METHODS = 16;

/** What a method name looks like (RFC 4250: US-ASCII, at most 64 characters; every real one is lower case). */
const METHOD_NAME = /^[a-z0-9@._-]{1,64}$/;

/**
 * The server's method list as it can be shown: the names that look like method names (at most
 * {@linkcode MAX_METHODS}), how many more of those there were, and a few others quoted and escaped.
 */
function methodNames(raw: readonly string[]): { names: string[]; more: number; others: string[] } {
  const valid = raw.filter((m) => METHOD_NAME.test(m));
  const odd = raw.filter((m) => !METHOD_NAME.test(m));
  const others = odd.slice(0, 3).map((m) => quoteName(m.length > 64 ? `${m.slice(0, 64)}…` : m));
  if (odd.length > 3) others.push(`${odd.length - 3} more`);
  return { names: valid.slice(0, MAX_METHODS), more: Math.max(0, valid.length - MAX_METHODS), others };
}

/** One attempt as the auth step lists it: made, or not (and why not). */
export interface AttemptLine extends AuthAttemptName {
  result: AuthAttemptReport["result"] | "not tried" | "not loaded" | "not given";
  /** Why a key could not be loaded. */
  why?: string;
  /** This line stands for this many of the ssh-agent's keys that were not offered (they are not listed). */
  more?: number;
}

function authStep(hop: HopFacts, error: SshMcpError | null): Finding {
  const attempts = attemptLines(hop);
  if (!hop.passwordGiven) attempts.push({ method: "password", result: "not given" });
  const data = { attempts, ...codeOf(error) };
  const nothing = hop.unprepared === null ? null : {
    status: "fail" as const,
    detail: `nothing to offer: ${hop.unprepared.message}`,
    fix: hop.unprepared.hint,
    data: { ...data, unprepared: hop.unprepared.code },
  };
  if (hop.credentialsWithheld) {
    // ssh_connect with nothing to offer fails before it connects, key or no key.
    if (nothing !== null) return nothing;
    return {
      status: "warn",
      detail: `no credential was sent to a host key nobody verified; ssh_connect would record the key, then try ` +
        plannedText(hop),
      fix: "Verify the host key (the host_key step says how) and add it to known_hosts, then run the doctor again",
      data,
    };
  }
  if (hop.loggedIn) {
    const used = attempts.find((l) => l.result === "accepted");
    if (used !== undefined) {
      return { status: "ok", detail: `logged in as ${hop.username} with ${nameOf(used)}`, data };
    }
    // In with `none`, which ssh_connect never sends: what it would send was not tested.
    const letIn = `the server let ${hop.username} in without authentication (method none)`;
    if (nothing !== null) {
      return {
        ...nothing,
        detail: `${letIn}, but ssh_connect never sends none, and has nothing to offer: ${hop.unprepared!.message}`,
      };
    }
    return {
      status: "warn",
      detail: `${letIn}, which ssh_connect never sends; it would try ${plannedText(hop)}, which the doctor did ` +
        "not test",
      fix: "The server lets this user in without any credential: check that this is meant (sshd_config, PAM); " +
        "whether it accepts the credentials ssh_connect offers was not tested",
      data,
    };
  }
  if (error === null) return { status: "skip", detail: "not reached" };
  const refused = attempts.filter((l) => l.result === "refused");
  const cutOff = attempts.some((l) => l.result === "unanswered");
  const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;
  if (cutOff && refused.length > 0 && error.code === "AUTH_FAILED") {
    const said = serverSaid(error);
    return {
      status: "fail",
      detail: `the server closed the connection after ${plural(refused.length, "refused attempt")}` +
        `${said === null ? "" : ` (it said ${said})`}: more keys were offered than its MaxAuthTries allows`,
      fix: "Offer the right key first, and only it: `IdentitiesOnly yes` with `IdentityFile ~/.ssh/<key>` for this " +
        "host in ~/.ssh/config (or -i / private_key_path), or hold fewer keys in the ssh-agent (ssh-add -l lists " +
        "them, ssh-add -d removes one); OpenSSH counts every key offered",
      data,
    };
  }
  if (nothing !== null && !attempts.some((l) => l.result === "refused" || l.result === "skipped")) return nothing;
  const methods = methodNames(hop.attempts.find((a) => a.method === "none")?.methodsLeft ?? []).names;
  const fixes: string[] = [];
  const refusedKeys = refused.filter((l) => l.method === "publickey" || l.method === "agent");
  if (refusedKeys.length > 0) {
    fixes.push(
      `Put the public key in ~/.ssh/authorized_keys of ${hop.username} on the host (ssh-copy-id -i <key>.pub from ` +
        "a machine that can log in), or name the key that is there (-i, IdentityFile); check the user name",
    );
  }
  if (refused.some((l) => l.method === "password")) {
    fixes.push(
      `Check the password and the user name (${hop.username}); the server may also refuse passwords for this user ` +
        "(PasswordAuthentication, PermitRootLogin, AllowUsers, a locked account)",
    );
  }
  const notOffered = [...new Set(attempts.filter((l) => l.result === "skipped").map((l) => l.method))];
  // A method the server does not take matters only when nothing it takes was tried.
  if (notOffered.length > 0 && refused.length === 0) {
    fixes.push(
      `The server does not accept ${notOffered.join(", ").replace("agent", "publickey")} here (it accepts: ` +
        `${methods.join(", ") || "nothing"}): use one of its methods`,
    );
  }
  if (hop.unprepared !== null) fixes.push(hop.unprepared.hint);
  if (fixes.length === 0) fixes.push(error.hint);
  const detail = refused.length > 0
    ? `the server refused ${refused.map(nameOf).join(", ")} for ${hop.username}`
    : notOffered.length > 0
    ? `the server accepts none of the methods offered for ${hop.username}`
    : innermost(error);
  return { status: "fail", detail, fix: fixes.join(". "), data };
}

/**
 * The attempts as they went: skipped identity files, each prepared attempt with its result, then the
 * untried. The ssh-agent's own keys (not an identity file's) are listed only when offered: the others are
 * one line with their count, so the agent's whole inventory does not travel.
 */
function attemptLines(hop: HopFacts): AttemptLine[] {
  const lines: AttemptLine[] = hop.skippedKeys.map(({ path, error }) => ({
    method: "publickey",
    key: path,
    result: "not loaded",
    why: error.message,
  }));
  // Every attempt after `none` is reported once, in plan order; those after the end were never reached.
  const reports = hop.attempts.filter((a) => a.method !== "none");
  hop.plan.forEach((planned, i) => {
    const result = (reports[i]?.result ?? "not tried") as AttemptLine["result"];
    if (agentOnly(planned) && (result === "not tried" || result === "skipped")) {
      const folded = lines.find((l) => l.more !== undefined && l.result === result);
      if (folded !== undefined) folded.more! += 1;
      else lines.push({ method: "agent", result, more: 1 });
      return;
    }
    lines.push({ ...planned, result });
  });
  return lines;
}

/** One of the ssh-agent's own keys, not the agent's copy of an identity file. */
function agentOnly(attempt: AuthAttemptName): boolean {
  return attempt.method === "agent" && attempt.key !== undefined && !attempt.key.endsWith("(in the ssh-agent)");
}

/** What ssh_connect would offer, in order: `key /k, password`, the agent's own keys as a count. */
function plannedText(hop: HopFacts): string {
  const names: string[] = [];
  const agentKeys = hop.plan.filter(agentOnly).length;
  for (const planned of hop.plan) {
    if (!agentOnly(planned)) names.push(nameOf(planned));
    else if (names.at(-1) !== "agent") names.push("agent");
  }
  const text = names.map((n) => n === "agent" ? nameOf({ method: "agent", more: agentKeys }) : n);
  if (text.length === 0) return "nothing";
  return text.join(", ");
}

function nameOf(line: AuthAttemptName & { more?: number }): string {
  if (line.more !== undefined) return `${line.more} ssh-agent key${line.more === 1 ? "" : "s"}`;
  if (line.key === undefined) return line.method;
  return line.method === "agent" && !line.key.endsWith("(in the ssh-agent)")
    ? `ssh-agent key ${line.key}`
    : `key ${line.key}`;
}

const RESULT_WORDS: Record<AttemptLine["result"], string> = {
  accepted: "accepted",
  partial: "accepted, another method needed",
  refused: "refused by the server",
  skipped: "not sent: the server does not accept this method",
  unanswered: "no answer: the server closed the connection",
  "not tried": "not tried",
  "not loaded": "could not load",
  "not given": "none given",
};

/** `key /path: refused by the server`: one attempt as a line of text. */
export function describeAttempt(line: AttemptLine): string {
  return `${nameOf(line)}: ${RESULT_WORDS[line.result]}${line.why === undefined ? "" : ` (${line.why})`}`;
}

/** The error's message with the ssh2 cause's, when it adds something. */
function innermost(error: SshMcpError): string {
  const cause = causeText(error);
  return cause === "" || error.message.includes(cause) ? error.message : `${error.message}: ${cause}`;
}

/** The message of the first cause that is not one of ours (ssh2's or the socket's), escaped: it may quote the server. */
function causeText(error: SshMcpError): string {
  let cause: unknown = error.cause;
  while (cause instanceof SshMcpError) cause = cause.cause;
  return cause instanceof Error ? neutralise(cause.message).slice(0, 300) : "";
}

/** What the server's disconnect said, quoted, when it said anything. */
function serverSaid(error: SshMcpError): string | null {
  const text = causeText(error);
  return text === "" ? null : JSON.stringify(text);
}

function codeOf(error: SshMcpError | null): Record<string, unknown> | undefined {
  return error === null ? undefined : { code: error.code };
}
