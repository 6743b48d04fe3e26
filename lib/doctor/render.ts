/**
 * A diagnosis as text for a terminal or a tool result: one line per step
 * (status, stage, finding), the fix under each problem, the hops as
 * headings, and the verdict last. Remote text in findings is escaped where
 * it is found (./explain.ts); as a second wall, every line written here is
 * escaped again with its line breaks, so nothing a server sends can clear a
 * screen or forge a line (an "OK:" verdict) of its own.
 *
 * @module
 */

import { ESCAPED_CLASS, neutralise } from "../remote_text.ts";
import { type AttemptLine, describeAttempt } from "./explain.ts";
import type { Diagnosis, Step } from "./mod.ts";

const MARK: Record<Step["status"], string> = { ok: "ok  ", warn: "warn", fail: "FAIL", skip: "-   " };

/**
 * The diagnosis as lines of text: the steps of the whole connect first, then each hop under its own
 * heading (consecutive skipped steps of a hop folded into one line).
 *
 * @param diagnosis What {@linkcode diagnose} found.
 * @returns Text ending without a newline.
 */
export function renderDiagnosis(diagnosis: Diagnosis): string {
  const lines: string[] = [`Doctor: ${oneLine(diagnosis.target)}`];
  const hops = Math.max(0, ...diagnosis.steps.map((s) => s.hop ?? 0));
  for (const step of diagnosis.steps.filter((s) => s.hop === undefined)) lines.push(...stepLines(step));
  for (let hop = 1; hop <= hops; hop++) {
    const steps = diagnosis.steps.filter((s) => s.hop === hop);
    const role = hop === hops ? "target" : `jump host ${hop} of ${hops - 1}`;
    lines.push(`${role} ${oneLine(steps[0]?.host ?? "")}:`);
    for (let i = 0; i < steps.length; i++) {
      const step = steps[i];
      let j = i;
      while (
        j + 1 < steps.length && step.status === "skip" && steps[j + 1].status === "skip" &&
        steps[j + 1].detail === step.detail
      ) j++;
      if (j > i) {
        lines.push(`  ${MARK.skip} ${steps.slice(i, j + 1).map((s) => s.step).join(", ")}: ${oneLine(step.detail)}`);
        i = j;
        continue;
      }
      lines.push(...stepLines(step));
    }
  }
  lines.push(`${diagnosis.ok ? "OK" : "FAILED"}: ${oneLine(diagnosis.verdict)}`);
  return lines.join("\n");
}

function stepLines(step: Step): string[] {
  const lines = [`  ${MARK[step.status]} ${step.step.padEnd(12)} ${oneLine(step.detail)}`];
  // The ssh_config lines that applied, and every credential with what became of it, one per line.
  for (const line of (step.data?.lines ?? []) as string[]) lines.push(`       | ${oneLine(line)}`);
  for (const attempt of (step.data?.attempts ?? []) as AttemptLine[]) {
    lines.push(`       - ${oneLine(describeAttempt(attempt))}`);
  }
  if (step.fix !== undefined && step.status !== "ok") lines.push(`       fix: ${oneLine(step.fix)}`);
  return lines;
}

/** `text` as part of one line: what could act on a terminal escaped, line breaks too. */
function oneLine(text: string): string {
  return neutralise(text).replace(/[\r\n]/g, (c) => c === "\n" ? "\\n" : "\\r");
}

/**
 * What a terminal would act on in JSON.stringify's output: the characters {@linkcode neutralise} escapes.
 * JSON escapes the C0 controls itself; DEL, the C1 controls (a server's identification line is latin1, and
 * some terminals take C1 as CSI or OSC), bidi, invisible and line-separator characters and Unicode tags it
 * leaves as they are.
 */
const JSON_UNSAFE = new RegExp(ESCAPED_CLASS, "gu");

/**
 * The diagnosis as JSON for a terminal (`doctor --json`): the same data as `JSON.stringify`, with every
 * character of {@linkcode JSON_UNSAFE} written as a `\u` escape, which any JSON reader turns back.
 *
 * @param diagnosis What {@linkcode diagnose} found.
 * @returns Indented JSON, without a final newline.
 */
export function renderDiagnosisJson(diagnosis: Diagnosis): string {
  return JSON.stringify(diagnosis, null, 2).replace(
    JSON_UNSAFE,
    (c) => [...Array(c.length).keys()].map((i) => `\\u${c.charCodeAt(i).toString(16).padStart(4, "0")}`).join(""),
  );
}
