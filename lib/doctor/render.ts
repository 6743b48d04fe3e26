/**
 * A diagnosis as text for a terminal or a tool result: one line per step
 * (status, stage, finding), the fix under each problem, the hops as
 * headings, and the verdict last. Remote text in findings is escaped where
 * it is found (./explain.ts); this adds nothing from the remote side.
 *
 * @module
 */

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
  const lines: string[] = [`Doctor: ${diagnosis.target}`];
  const hops = Math.max(0, ...diagnosis.steps.map((s) => s.hop ?? 0));
  for (const step of diagnosis.steps.filter((s) => s.hop === undefined)) lines.push(...stepLines(step));
  for (let hop = 1; hop <= hops; hop++) {
    const steps = diagnosis.steps.filter((s) => s.hop === hop);
    const role = hop === hops ? "target" : `jump host ${hop} of ${hops - 1}`;
    lines.push(`${role} ${steps[0]?.host ?? ""}:`);
    for (let i = 0; i < steps.length; i++) {
      const step = steps[i];
      let j = i;
      while (
        j + 1 < steps.length && step.status === "skip" && steps[j + 1].status === "skip" &&
        steps[j + 1].detail === step.detail
      ) j++;
      if (j > i) {
        lines.push(`  ${MARK.skip} ${steps.slice(i, j + 1).map((s) => s.step).join(", ")}: ${step.detail}`);
        i = j;
        continue;
      }
      lines.push(...stepLines(step));
    }
  }
  lines.push(`${diagnosis.ok ? "OK" : "FAILED"}: ${diagnosis.verdict}`);
  return lines.join("\n");
}

function stepLines(step: Step): string[] {
  const lines = [`  ${MARK[step.status]} ${step.step.padEnd(12)} ${step.detail}`];
  // The ssh_config lines that applied, and every credential with what became of it, one per line.
  for (const line of (step.data?.lines ?? []) as string[]) lines.push(`       | ${line}`);
  for (const attempt of (step.data?.attempts ?? []) as AttemptLine[]) {
    lines.push(`       - ${describeAttempt(attempt)}`);
  }
  if (step.fix !== undefined && step.status !== "ok") lines.push(`       fix: ${step.fix}`);
  return lines;
}
