/**
 * Validates .github/workflows/*.yml with action-validator (the JSON schema
 * of GitHub workflows, from npm), and checks what this project's workflows
 * promise: every action pinned to a full commit SHA, and a top-level
 * `permissions: contents: read`.
 *
 *   deno run -A tests/validate_workflows.ts        (exit 1 on any problem)
 *
 * action-validator 0.6.0 bundles a schema older than GitHub's `attestations`
 * permission (which attest-build-provenance needs), so that one line is left
 * out of the copy it validates; every other key is checked as written.
 */

const VALIDATOR = "@action-validator/cli@0.6.0";
const dir = new URL("../.github/workflows/", import.meta.url);
const scratch = await Deno.makeTempDir({ prefix: "workflows-" });
let failed = 0;
try {
  const names = [];
  for await (const e of Deno.readDir(dir)) if (/\.ya?ml$/.test(e.name)) names.push(e.name);
  for (const name of names.sort()) {
    const content = await Deno.readTextFile(new URL(name, dir));
    const problems: string[] = [];
    const copy = `${scratch}/${name}`;
    await Deno.writeTextFile(copy, content.replace(/^ +attestations: write\n/gm, ""));
    const out = await new Deno.Command("npx", {
      args: ["--yes", VALIDATOR, copy],
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).output();
    if (out.code !== 0) {
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      const details = [...text.matchAll(/"detail": "([^"]+)",\s*"path": "([^"]+)"/g)].map((m) => `${m[2]}: ${m[1]}`);
      problems.push(`action-validator: ${details.length > 0 ? [...new Set(details)].join("; ") : text.trim()}`);
    }
    for (const [n, line] of content.split("\n").entries()) {
      const uses = line.match(/^\s*(?:-\s+)?uses:\s*([^\s#]+)/);
      if (uses && !uses[1].startsWith("./") && !/@[0-9a-f]{40}$/.test(uses[1])) {
        problems.push(`line ${n + 1}: ${uses[1]} is not pinned to a commit SHA`);
      }
    }
    if (!/^permissions:\n {2}contents: read$/m.test(content)) {
      problems.push("no top-level `permissions: contents: read`");
    }
    if (problems.length > 0) {
      failed++;
      console.error(`${name}:\n  ${problems.join("\n  ")}`);
    } else console.log(`${name}: valid`);
  }
} finally {
  await Deno.remove(scratch, { recursive: true });
}
if (failed > 0) Deno.exit(1);
