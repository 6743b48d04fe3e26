/**
 * Validates .github/workflows/*.yml with action-validator (the JSON schema of GitHub
 * workflows, from npm), and checks what this project's workflows promise (`checkWorkflow`):
 * every action pinned to a full commit SHA with the version it was taken from in a comment,
 * a top-level `permissions: contents: read`, no runner label GitHub has retired, and no action
 * version whose `runs.using` is a Node.js that runners no longer ship.
 *
 *   deno run -A tests/validate_workflows.ts        (exit 1 on any problem)
 *
 * tests/validate_workflows_test.ts feeds `checkWorkflow` a workflow that must fail and the
 * real ones, which must pass.
 *
 * action-validator 0.6.0 bundles a schema older than GitHub's `attestations` permission (which
 * attest-build-provenance needs), so that one line is left out of the copy it validates; every
 * other key is checked as written.
 *
 * @module
 */

/** A date after which GitHub no longer runs something, and where that was announced. */
export interface Retirement {
  /** `YYYY-MM-DD`: from this day on, jobs fail. */
  date: string;
  /** The announcement the date comes from. */
  source: string;
  /** Whether the date was checked against the announcement (false: taken from memory or a second-hand quote). */
  confirmed: boolean;
}

const RUNNER_IMAGES = "https://github.com/actions/runner-images/issues/";
const CHANGELOG = "https://github.blog/changelog/";

/**
 * Hosted runner labels GitHub has retired or has announced it will retire. A label fails from
 * its date on, and is reported as a note before.
 */
export const RETIRED_RUNNERS: Record<string, Retirement> = {
  "ubuntu-16.04": { date: "2021-09-20", source: `${CHANGELOG}2021-04-29`, confirmed: false },
  "ubuntu-18.04": { date: "2023-04-03", source: `${RUNNER_IMAGES}6002`, confirmed: true },
  "ubuntu-20.04": { date: "2025-04-15", source: `${RUNNER_IMAGES}11101`, confirmed: true },
  "ubuntu-22.04": { date: "2027-04-17", source: `${RUNNER_IMAGES}14254`, confirmed: true },
  "ubuntu-22.04-arm": { date: "2027-04-17", source: `${RUNNER_IMAGES}14254`, confirmed: true },
  // The title of #5583 says 2022-12-01; the date was later extended (to 2023-03-31, per projects quoting GitHub's mail).
  "macos-10.15": { date: "2022-12-01", source: `${RUNNER_IMAGES}5583`, confirmed: false },
  "macos-11": { date: "2024-06-28", source: `${CHANGELOG}2024-05-20`, confirmed: true },
  "macos-12": { date: "2024-12-03", source: `${RUNNER_IMAGES}10721`, confirmed: true },
  // #13046's title says December 4th, its text December 8th: the earlier one is kept.
  "macos-13": { date: "2025-12-04", source: `${RUNNER_IMAGES}13046`, confirmed: true },
  "macos-13-large": { date: "2025-12-04", source: `${RUNNER_IMAGES}13046`, confirmed: true },
  "macos-13-xlarge": { date: "2025-12-04", source: `${RUNNER_IMAGES}13046`, confirmed: true },
  "macos-14": { date: "2026-11-02", source: `${RUNNER_IMAGES}13518`, confirmed: true },
  "macos-14-large": { date: "2026-11-02", source: `${RUNNER_IMAGES}13518`, confirmed: false },
  "macos-14-xlarge": { date: "2026-11-02", source: `${RUNNER_IMAGES}13518`, confirmed: false },
  "windows-2016": { date: "2022-03-15", source: `${CHANGELOG}2021-10-19`, confirmed: true },
  "windows-2019": { date: "2025-06-30", source: `${RUNNER_IMAGES}12045`, confirmed: true },
};

/**
 * Node.js versions the Actions runner no longer ships. An action declaring one is forced onto
 * a newer Node it was not built or tested for, which GitHub calls temporary.
 */
export const RETIRED_NODE: Record<string, Retirement> = {
  node12: { date: "2023-08-14", source: `${CHANGELOG}2023-07-17`, confirmed: true },
  node16: { date: "2024-10-15", source: `${CHANGELOG}2024-09-25`, confirmed: true },
  // The runner's own deprecation notice names September 16th, 2026; a later note on the
  // changelog is quoted as September 23rd.
  node20: { date: "2026-09-16", source: `${CHANGELOG}2025-09-19`, confirmed: true },
};

/**
 * The `runs.using` of known actions by version: each entry holds from its version up to the
 * next entry's. Composite actions list the runtime of the JavaScript action they wrap. Sources:
 * each action's action.yml and release notes as quoted in its tracker; a version below an
 * action's first entry, or an action not listed, is not checked (the output says so).
 */
export const ACTION_RUNTIMES: Record<string, [from: string, using: string][]> = {
  "actions/checkout": [["1", "node12"], ["3", "node16"], ["4", "node20"], ["5", "node24"]],
  "actions/setup-node": [["2", "node12"], ["3", "node16"], ["4", "node20"], ["5", "node24"]],
  "actions/cache": [["2", "node12"], ["3", "node16"], ["4", "node20"], ["5", "node24"]],
  // upload-artifact v5 and download-artifact v5-v6 only "support" Node 24: action.yml still says node20.
  "actions/upload-artifact": [["2", "node12"], ["3", "node16"], ["4", "node20"], ["6", "node24"]],
  "actions/download-artifact": [["2", "node12"], ["3", "node16"], ["4", "node20"], ["7", "node24"]],
  // A composite action around actions/attest, whose v3 moved to node24.
  "actions/attest-build-provenance": [["1", "node20"], ["3", "node24"]],
  "denoland/setup-deno": [["1.1.1", "node16"], ["1.1.4", "node20"], ["2.0.0", "node20"], ["2.0.4", "node24"]],
};

/** What {@linkcode checkWorkflow} found. */
export interface WorkflowCheck {
  /** Each one fails the validation. */
  problems: string[];
  /** Worth reading, not failing: retirements ahead, actions whose runtime is not known here. */
  notes: string[];
}

/** Options of {@linkcode checkWorkflow}. */
export interface CheckOptions {
  /**
   * The day to judge retirements on.
   * @default new Date()
   */
  today?: Date;
}

function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * The runtime an action version declares, from {@linkcode ACTION_RUNTIMES}.
 *
 * @param action `owner/repo`
 * @param version e.g. `4.2.2` or `4`
 * @returns e.g. `node20`, or undefined when not known here
 */
export function actionRuntime(action: string, version: string): string | undefined {
  let using: string | undefined;
  for (const [from, runtime] of ACTION_RUNTIMES[action] ?? []) {
    if (compareVersions(version, from) >= 0) using = runtime;
  }
  return using;
}

/**
 * Checks one workflow file's text for the promises listed in this module's description
 * (everything but the schema, which action-validator checks).
 *
 * @param content the workflow's YAML
 * @param options the day to judge retirements on
 * @returns problems and notes, each naming its line
 */
export function checkWorkflow(content: string, options: CheckOptions = {}): WorkflowCheck {
  const today = (options.today ?? new Date()).toISOString().slice(0, 10);
  const problems: string[] = [];
  const notes: string[] = [];
  const retired = (what: string, r: Retirement, line: number, advice: string) => {
    const where = `line ${line}: ${what}`;
    if (r.date <= today) problems.push(`${where} was retired by GitHub on ${r.date} (${r.source}); ${advice}`);
    else notes.push(`${where} retires on ${r.date} (${r.source})`);
  };
  for (const [i, line] of content.split("\n").entries()) {
    const n = i + 1;
    const uses = line.match(/^\s*(?:-\s+)?uses:\s*([^\s#]+)\s*(?:#\s*(\S+))?/);
    if (uses && !uses[1].startsWith("./") && !uses[1].startsWith("docker://")) {
      const [ref, comment] = [uses[1], uses[2]];
      const at = ref.lastIndexOf("@");
      const action = ref.slice(0, at).split("/").slice(0, 2).join("/");
      const pin = ref.slice(at + 1);
      const sha = /^[0-9a-f]{40}$/.test(pin);
      if (!sha) problems.push(`line ${n}: ${ref} is not pinned to a commit SHA`);
      // Without the version a SHA was taken from, nobody can tell what it runs (or update it).
      const version = (sha ? comment : pin)?.match(/^v?(\d+(?:\.\d+)*)$/)?.[1];
      if (sha && version === undefined) problems.push(`line ${n}: ${ref} has no "# vX.Y.Z" comment naming its version`);
      if (version !== undefined) {
        const using = actionRuntime(action, version);
        if (using === undefined) notes.push(`line ${n}: runtime of ${action} v${version} not known here, not checked`);
        else if (RETIRED_NODE[using]) {
          retired(`${action} v${version} runs on ${using}, which`, RETIRED_NODE[using], n, "use a version on node24");
        }
      }
    }
    // Labels appear in runs-on, in matrices and in lists: look for the bare word outside comments.
    const code = line.replace(/(^|\s)#.*$/, "");
    for (const [label, r] of Object.entries(RETIRED_RUNNERS)) {
      const escaped = label.replaceAll(".", "\\.");
      if (new RegExp(`(^|[\\s\\[,:"'{])${escaped}($|[\\s\\],}"'])`).test(code)) {
        retired(`runner ${label}`, r, n, "move to a current label");
      }
    }
  }
  if (!/^permissions:\n {2}contents: read$/m.test(content)) {
    problems.push("no top-level `permissions: contents: read`");
  }
  return { problems, notes };
}

const VALIDATOR = "@action-validator/cli@0.6.0";

/** Runs action-validator on a copy of the workflow; returns its complaints, if any. */
async function schemaProblems(name: string, content: string, scratch: string): Promise<string[]> {
  const copy = `${scratch}/${name}`;
  await Deno.writeTextFile(copy, content.replace(/^ +attestations: write\n/gm, ""));
  const out = await new Deno.Command("npx", {
    args: ["--yes", VALIDATOR, copy],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  if (out.code === 0) return [];
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  const details = [...text.matchAll(/"detail": "([^"]+)",\s*"path": "([^"]+)"/g)].map((m) => `${m[2]}: ${m[1]}`);
  return [`action-validator: ${details.length > 0 ? [...new Set(details)].join("; ") : text.trim()}`];
}

if (import.meta.main) {
  const dir = new URL("../.github/workflows/", import.meta.url);
  const scratch = await Deno.makeTempDir({ prefix: "workflows-" });
  let failed = 0;
  try {
    const names = [];
    for await (const e of Deno.readDir(dir)) if (/\.ya?ml$/.test(e.name)) names.push(e.name);
    for (const name of names.sort()) {
      const content = await Deno.readTextFile(new URL(name, dir));
      const { problems, notes } = checkWorkflow(content);
      problems.unshift(...await schemaProblems(name, content, scratch));
      for (const note of notes) console.log(`${name}: note: ${note}`);
      if (problems.length > 0) {
        failed++;
        console.error(`${name}:\n  ${problems.join("\n  ")}`);
      } else console.log(`${name}: valid`);
    }
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
  if (failed > 0) Deno.exit(1);
}
