/**
 * The per-host policies (../policy.ts) applied to tool calls, and the human
 * approval some of them require, asked through MCP elicitation.
 *
 * A call that acts on a session is admitted here after its arguments are
 * valid and before its handler runs: the policy of the host the session is
 * connected to (its resolved name and port, not an alias) decides whether the
 * tool may run there at all (`read_only`, `allow_forwards`, `allow_sudo`,
 * `max_timeout`), then whether a person must say yes (`approval`). A refusal
 * is a coded error and nothing was sent to the host.
 *
 * What this is not: a filter on what a command does. A command line can do
 * anything the login user can (`sudo` typed into ssh_execute included), so
 * `allow_sudo: false` only withholds the sudo tool, and `read_only` works by
 * withholding every tool that can change the host, commands and shells first.
 *
 * Approval (`approval: destructive` or `all`) shows the person the host, the
 * user, the tool and every argument exactly (JSON-quoted, nothing cut, the
 * secret ones left out), and runs the call only on "accept". Decline, cancel
 * or no answer within the question timeout is APPROVAL_DECLINED; a client that
 * cannot show a form gets APPROVAL_UNAVAILABLE: never run unapproved. A person
 * may tick "remember": the same tool with identical arguments (the session
 * included) then runs without asking again for as long as this client stays
 * connected.
 *
 * @module
 */

// @ts-types="@modelcontextprotocol/sdk/types"
import { ElicitResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { SshMcpError } from "../errors.ts";
import { type HostPolicy, policyFor } from "../policy.ts";
import { neutralise } from "../remote_text.ts";
import type { Config } from "../config.ts";
import type { Session } from "../sessions.ts";
import { QUESTION_TIMEOUT_MS } from "../ssh/prompts.ts";
import { canElicitForm } from "./ask.ts";
import type {
  Admission,
  AdmissionTarget,
  CallGuard,
  ClientElicitationCapability,
  RequestExtra,
  ToolDef,
} from "./define.ts";

export type { Admission, AdmissionTarget };

/** What became of a call's need for approval, as the audit log records it. */
export type ApprovalDecision = "not_required" | "accepted" | "remembered" | "declined" | "cancelled" | "unavailable";

/** Arguments never shown to the approver (nor kept in memory for "remember" other than inside its hash). */
const SECRET_FIELDS = new Set(["password", "passphrase"]);

/** Tools a policy never holds back: ending one's own session changes nothing on the host. */
const ALWAYS_ALLOWED = new Set(["ssh_close_session"]);

/** Tools whose `timeout` bounds a command's run on the host, which `max_timeout` caps. */
const TIMED = new Set(["ssh_execute", "ssh_sudo_execute", "ssh_execute_many"]);

/** Options of {@linkcode Guard}. */
export interface GuardOptions {
  config: Config;
  /** The client's capabilities after `initialize`: whether it can show a form. */
  clientCapabilities: () => ClientElicitationCapability | undefined;
}

/** The admission target of an open session. */
export function sessionTarget(session: Session): AdmissionTarget {
  const { host, port, username } = session.connection.info;
  return { host, port, username, sessionId: session.id };
}

/**
 * Applies host policies and asks for approval, for one client (one server
 * instance): remembered approvals are this client's only.
 */
export class Guard implements CallGuard {
  #config: Config;
  #capabilities: () => ClientElicitationCapability | undefined;
  #remembered = new Set<string>();
  #decisions = new WeakMap<object, ApprovalDecision[]>();
  /** Questions go to the person one at a time (ssh_execute_many may need several at once). */
  #asking: Promise<unknown> = Promise.resolve();

  /** A guard for one client. */
  constructor(options: GuardOptions) {
    this.#config = options.config;
    this.#capabilities = options.clientCapabilities;
  }

  /** The policy of the host `session` is connected to. */
  policyOf(session: Session): HostPolicy {
    const { host, port } = session.connection.info;
    return policyFor(this.#config.hostPolicies, host, port);
  }

  /**
   * Admits `tool` to run with `args` on `session`'s host, asking a person
   * when the host's policy says so.
   *
   * @throws SshMcpError POLICY_DENIED, APPROVAL_DECLINED, APPROVAL_UNAVAILABLE or CANCELLED.
   */
  async admit(admission: Admission): Promise<void> {
    const { tool, args, target, extra } = admission;
    if (ALWAYS_ALLOWED.has(tool.name)) return;
    const policy = policyFor(this.#config.hostPolicies, target.host, target.port);
    const where = `${target.username}@${target.host}:${target.port}`;
    const deny = (rule: string, why: string, hint?: string) => {
      throw new SshMcpError("POLICY_DENIED", `${tool.name} is not allowed on ${where}: ${why} (${rule})`, {
        hint: hint ?? "The call did not run on the host. Use a tool the host's policy allows, or ask the operator",
      });
    };
    // Connecting changes nothing there: ssh_connect is "local" (the connect toolset is on even in read-only mode).
    if (policy.readOnly && tool.changes === "remote") {
      deny(
        "read_only",
        "the host is read-only",
        "The call did not run on the host. Only tools that change nothing " +
          "there work on it (reading files, listing, stat, downloads)",
      );
    }
    if (!policy.allowForwards && tool.name === "ssh_forward_port") deny("allow_forwards: false", "no forwards");
    if (!policy.allowSudo && tool.name === "ssh_sudo_execute") deny("allow_sudo: false", "no sudo tool");
    if (policy.maxTimeoutSeconds !== undefined && TIMED.has(tool.name)) {
      const max = policy.maxTimeoutSeconds;
      if (args.background === true) {
        deny(
          `max_timeout: ${max}`,
          "a background job would outlive the host's time limit",
          "Run it in the " +
            `foreground with timeout <= ${max}, or ask the operator`,
        );
      }
      const asked = typeof args.timeout === "number" ? args.timeout : this.#config.defaultTimeoutSeconds;
      if (asked > max) {
        if (args.timeout !== undefined) {
          deny(
            `max_timeout: ${max}`,
            `timeout ${asked} s is over the host's limit`,
            `Call again with timeout <= ${max}`,
          );
        }
        // Not asked for: the server's default is lowered to the host's cap.
        if (tool.name !== "ssh_execute_many") args.timeout = max;
        else {deny(
            `max_timeout: ${max}`,
            `the default timeout ${asked} s is over the host's limit`,
            `Pass timeout <= ${max}`,
          );}
      }
    }
    const needed = policy.approval === "all" || (policy.approval === "destructive" && tool.destructive === true);
    if (!needed) return this.#note(extra, "not_required");
    await this.#approve(tool, args, target, extra, policy);
  }

  /**
   * What became of the approval of the call whose request context is `extra`:
   * the strictest outcome when it touched several hosts; undefined when no
   * policy looked at it.
   */
  decisionOf(extra: object): ApprovalDecision | undefined {
    const all = this.#decisions.get(extra);
    if (all === undefined) return undefined;
    for (const d of ["unavailable", "declined", "cancelled", "accepted", "remembered"] as const) {
      if (all.includes(d)) return d;
    }
    return "not_required";
  }

  #note(extra: object, decision: ApprovalDecision): void {
    const all = this.#decisions.get(extra) ?? [];
    all.push(decision);
    this.#decisions.set(extra, all);
  }

  async #approve(
    tool: ToolDef,
    args: Record<string, unknown>,
    target: AdmissionTarget,
    extra: RequestExtra,
    policy: HostPolicy,
  ): Promise<void> {
    const where = `${target.username}@${target.host}:${target.port}`;
    // Per session; a connect (no session yet) by the host it reaches.
    const key = await requestKey(tool.name, target.sessionId ?? where, args);
    if (this.#remembered.has(key)) return this.#note(extra, "remembered");
    if (!canElicitForm(this.#capabilities())) {
      this.#note(extra, "unavailable");
      throw new SshMcpError(
        "APPROVAL_UNAVAILABLE",
        `${tool.name} on ${where} needs a person's approval (approval: ${policy.approval}), and this client cannot ` +
          "ask for it: it did not declare MCP elicitation (forms)",
      );
    }
    const lines = [
      `Approve ${tool.name} on ${where}?`,
      `${target.sessionId === undefined ? "New session" : `Session: ${target.sessionId}`}. ` +
      `This host's policy asks for approval of ${
        policy.approval === "all" ? "every call" : "calls that can change or delete data"
      }.`,
      ...shownArguments(args),
    ];
    let answer: { action: string; content?: Record<string, unknown> };
    const turn = this.#asking;
    let done = () => {};
    this.#asking = new Promise<void>((resolve) => done = resolve);
    try {
      await turn;
      // An identical request approved with "remember" while this one waited its turn.
      if (this.#remembered.has(key)) return this.#note(extra, "remembered");
      if (extra.signal.aborted) throw extra.signal.reason;
      answer = await extra.sendRequest(
        {
          method: "elicitation/create",
          params: {
            message: lines.join("\n"),
            requestedSchema: {
              type: "object",
              properties: {
                remember: {
                  type: "boolean",
                  title: "Also approve identical requests (same tool, session and arguments) until the client " +
                    "disconnects",
                  default: false,
                },
              },
            },
          },
        },
        ElicitResultSchema,
        { signal: extra.signal, timeout: QUESTION_TIMEOUT_MS },
      );
    } catch (error) {
      if (extra.signal.aborted) throw new SshMcpError("CANCELLED", "The client cancelled the call", { cause: error });
      this.#note(extra, "cancelled");
      throw new SshMcpError("APPROVAL_DECLINED", `${tool.name} on ${where} was not approved: no answer`, {
        cause: error,
        hint:
          "The call did not run on the host. The approval question went unanswered; ask the person before trying again",
      });
    } finally {
      done();
    }
    if (answer.action !== "accept") {
      this.#note(extra, answer.action === "decline" ? "declined" : "cancelled");
      throw new SshMcpError(
        "APPROVAL_DECLINED",
        `${tool.name} on ${where} was not approved: the person chose ${
          answer.action === "decline" ? "decline" : "cancel"
        }`,
        {
          hint: "The call did not run on the host. Do not repeat the request unchanged; ask the person what they want",
        },
      );
    }
    if (answer.content?.remember === true) this.#remembered.add(key);
    this.#note(extra, "accepted");
  }
}

/**
 * Every argument but the session and the secrets, one per line, exactly:
 * JSON-quoted and escaped, nothing cut. A long value is announced with its
 * length first, so a person sees there is more than a form shows at once.
 */
function shownArguments(args: Record<string, unknown>): string[] {
  return Object.entries(args)
    .filter(([name, value]) => name !== "session_id" && value !== undefined)
    .map(([name, value]) => {
      if (SECRET_FIELDS.has(name)) return `${name}: (secret, not shown)`;
      const long = typeof value === "string" && value.length > 200 ? ` (${value.length} characters)` : "";
      return `${name}${long}: ${neutralise(JSON.stringify(value))}`;
    });
}

/** What makes two requests identical for "remember": tool, session and every argument, hashed. */
async function requestKey(tool: string, session: string, args: Record<string, unknown>): Promise<string> {
  const canonical = JSON.stringify([tool, session, sorted(args)]);
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonical));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

function sorted(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sorted);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sorted((value as Record<string, unknown>)[k])]));
}
