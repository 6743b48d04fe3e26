/**
 * The human in the loop during ssh_connect: the SSH layer's questions
 * ({@linkcode ConnectPrompts}: an unknown host key, keyboard-interactive
 * prompts) put to the user through MCP elicitation (`elicitation/create`,
 * form mode), sent within the tool call so that over HTTP it travels on the
 * call's own stream.
 *
 * Only for clients that declared the `elicitation` capability with form mode
 * (an empty object means form, as MCP 2025-06-18 had only that). Without it
 * nothing is asked and the connect fails as before, with a coded error.
 *
 * What the user types as keyboard-interactive answers (passwords, one-time
 * codes) goes to ssh2 and nowhere else: not to a log, an error or a result.
 * Text from the server (its prompts and instructions) is shown escaped, as
 * all remote text is.
 *
 * @module
 */

// @ts-types="@modelcontextprotocol/sdk/types"
import { ElicitResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { hostLabel } from "../ssh/host_key_check.ts";
import type { ConnectPrompts } from "../ssh/prompts.ts";
import { QUESTION_TIMEOUT_MS } from "../ssh/prompts.ts";
import { neutralise } from "../remote_text.ts";
import type { ClientElicitationCapability, RequestExtra } from "./define.ts";

/** The host-key choices, as the form offers them. */
const HOST_KEY_CHOICES = {
  once: "Trust once (this connection only)",
  record: "Trust and record in known_hosts",
  refuse: "Refuse",
} as const;

type HostKeyChoice = keyof typeof HOST_KEY_CHOICES;

/**
 * Whether the client can show a form (`elicitation/create` without a mode).
 *
 * @param capabilities The client's capabilities after `initialize`.
 * @returns True for `elicitation: {}` or `elicitation: { form: … }`.
 */
export function canElicitForm(capabilities: ClientElicitationCapability | undefined): boolean {
  const e = capabilities?.elicitation;
  if (e === undefined || e === null || typeof e !== "object") return false;
  return e.form !== undefined || e.url === undefined;
}

/**
 * The questions of one ssh_connect call, asked by elicitation; undefined
 * when the client cannot show a form.
 *
 * @param extra The call's request context (its `sendRequest` reaches the client).
 * @param capabilities The client's capabilities.
 * @returns Prompts for the SSH layer, or undefined.
 */
export function connectPrompts(
  extra: RequestExtra,
  capabilities: ClientElicitationCapability | undefined,
): ConnectPrompts | undefined {
  if (!canElicitForm(capabilities)) return undefined;
  // The SSH layer bounds each question (and cancels it through `signal`); the SDK's own
  // request timeout (60 s by default) would cut a human short.
  const elicit = (params: { message: string; requestedSchema: object }, signal?: AbortSignal) =>
    extra.sendRequest({ method: "elicitation/create", params }, ElicitResultSchema, {
      signal,
      timeout: QUESTION_TIMEOUT_MS + 10_000,
    }) as Promise<{ action: "accept" | "decline" | "cancel"; content?: Record<string, unknown> }>;
  return {
    async unknownHostKey(info, signal) {
      const choices: HostKeyChoice[] = info.canRecord ? ["once", "record", "refuse"] : ["once", "refuse"];
      const lines = [
        `The SSH server ${hostLabel(info.host, info.port)} is not in known_hosts.`,
        `Host: ${info.host}  Port: ${info.port}`,
        `Key type: ${info.keyType}`,
        `Fingerprint: ${info.fingerprint}`,
        // The agent may have copied the fingerprint from the refusal it just got: a match vouches for nothing.
        "Compare it with the fingerprint from the host's administrator (ssh-keygen -lf on the server).",
        ...(info.matchesExpected
          ? ["The agent passed the same fingerprint to ssh_connect; that is not a verification."]
          : []),
      ];
      if (!info.canRecord) lines.push("known_hosts cannot be written by this server: it can be trusted only once.");
      const result = await elicit({
        message: lines.join("\n"),
        requestedSchema: {
          type: "object",
          properties: {
            decision: {
              type: "string",
              title: "Trust this host key?",
              enum: choices,
              enumNames: choices.map((c) => HOST_KEY_CHOICES[c]),
            },
          },
          required: ["decision"],
        },
      }, signal);
      const decision = result.action === "accept" ? result.content?.decision : undefined;
      return typeof decision === "string" && (choices as string[]).includes(decision)
        ? decision as HostKeyChoice
        : "refuse";
    },
    async keyboardInteractive(info, signal) {
      const properties: Record<string, object> = {};
      info.prompts.forEach((p, i) => {
        properties[`answer${i + 1}`] = {
          type: "string",
          title: neutralise(p.prompt.trim()) || `Answer ${i + 1}`,
          ...(p.echo ? {} : { description: "Secret (the server asked for it hidden)" }),
        };
      });
      const from = [info.name, info.instructions].map((t) => neutralise(t.trim())).filter((t) => t !== "");
      const result = await elicit({
        message: [
          `The SSH server ${hostLabel(info.host, info.port)} asks ${info.username} to answer ` +
          "(keyboard-interactive authentication):",
          ...from,
        ].join("\n"),
        requestedSchema: { type: "object", properties, required: Object.keys(properties) },
      }, signal);
      if (result.action !== "accept") return null;
      return info.prompts.map((_, i) => {
        const value = result.content?.[`answer${i + 1}`];
        return typeof value === "string" ? value : "";
      });
    },
  };
}
