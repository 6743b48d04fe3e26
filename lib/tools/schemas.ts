/**
 * Input fields shared by several tools, with the validators that make
 * hostile values fail at the schema, before anything reaches ssh2 or a shell.
 *
 * @module
 */

import { z } from "zod";
import { envNameProblem, hostHint, hostProblem, userProblem } from "../validate.ts";

// A refinement from a validator; `hint` (what to do instead) rides in the
// issue's params, where the tools/call dispatcher (dispatch.ts) finds it.
function checked(problem: (v: string) => string | null, hint?: (v: string) => string | undefined) {
  return (value: string, ctx: z.RefinementCtx) => {
    const why = problem(value);
    if (why === null) return;
    const advice = hint?.(value);
    ctx.addIssue({ code: "custom", message: why, ...(advice === undefined ? {} : { params: { hint: advice } }) });
  };
}

/** A session id as returned by ssh_connect (the server's instructions say so, once). */
export const sessionId = z.string().min(1).max(64);

/** A remote host name or address. */
export const host = z.string().max(255).superRefine(checked(hostProblem, hostHint))
  .describe("Name, IP or alias; no user@ or :port");

/** A remote user. */
export const username = z.string().max(256).superRefine(checked(userProblem));

/** A TCP port. */
export const port = z.int().min(1).max(65535);

/** A timeout in seconds, bounded by the server's configured maximum; `what` describes it when not obvious. */
export function timeoutSeconds(max: number, what?: string) {
  return z.number().positive().max(max).describe(what === undefined ? "Seconds" : `${what} s`);
}

/** Environment variables for a command. */
export const env = z.preprocess(
  refuseProtoKey,
  z.record(
    z.string().superRefine(checked(envNameProblem)),
    z.string().max(32768).refine((v) => !v.includes("\0"), "environment values cannot contain NUL"),
  ).describe("Exported for the command"),
);

// zod drops an own "__proto__" key from records without a word; the caller
// should hear that its variable was refused rather than silently lost.
function refuseProtoKey(value: unknown, ctx: { issues: unknown[] }): unknown {
  if (value !== null && typeof value === "object" && Object.hasOwn(value, "__proto__")) {
    ctx.issues.push({ code: "custom", message: "environment variable name __proto__ is not allowed", input: value });
  }
  return value;
}

/** A remote path that can be quoted for a shell. */
export const remotePath = z.string().min(1).max(4096).refine((v) => !v.includes("\0"), "paths cannot contain NUL");
