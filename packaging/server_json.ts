/**
 * The MCP Registry entry of a release. `server.json` at the repository root is the template:
 * it names the repository `OWNER/mcp-remote-ssh` (as the README does) and cannot carry the
 * SHA-256 of bundles not built yet, which the registry requires for every `mcpb` package.
 * The release workflow fills both in from the built bundles, checks the result against the
 * registry's schema (vendored in tests/fixtures, see packaging/README.md) and publishes it as
 * a release asset:
 *
 *   deno run -A packaging/server_json.ts --dist dist --repo owner/name > dist/server.json
 *
 * @module
 */

import { parseArgs } from "node:util";
import { Ajv } from "ajv";
import addFormats from "ajv-formats";

/** The registry's schema of server.json, version 2025-12-11 (see packaging/README.md). */
export const SCHEMA_URL: URL = new URL("../tests/fixtures/server.schema.2025-12-11.json", import.meta.url);

/** The template at the repository root. */
export const TEMPLATE_URL: URL = new URL("../server.json", import.meta.url);

/** The placeholder repository of the template. */
const PLACEHOLDER_OWNER = "OWNER";

/** One package entry of server.json, as far as it is read here. */
interface Package {
  registryType: string;
  identifier: string;
  fileSha256?: string;
  version?: string;
  [key: string]: unknown;
}

/**
 * Problems of a server.json against the registry's schema.
 *
 * @param doc the parsed server.json
 * @returns one line per problem (JSON pointer and message); empty when valid
 */
export async function serverJsonProblems(doc: unknown): Promise<string[]> {
  const schema = JSON.parse(await Deno.readTextFile(SCHEMA_URL));
  // Strict, but for two habits of the generated schema: it documents fields with OpenAPI's
  // `example` (no JSON Schema keyword), and requires fields in an `anyOf` branch that defines
  // them elsewhere (`valueHint` of a positional argument), which Ajv's strictRequired rejects.
  const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false });
  ajv.addKeyword("example");
  addFormats.default(ajv);
  const validate = ajv.compile(schema);
  if (validate(doc)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || "/"}: ${e.message}`);
}

/** What {@linkcode releaseServerJson} fills in. */
export interface ReleaseOptions {
  /** `owner/name` of the GitHub repository the release is published from. */
  repo: string;
  /** The version being released (deno.json's): the template and every package must name it. */
  version: string;
  /** SHA-256 (hex) of each built file, by file name (e.g. `mcp-remote-ssh-x86_64-apple-darwin.mcpb`). */
  sha256: Map<string, string>;
}

/**
 * The server.json of a release: the template with the real repository and, for each `mcpb`
 * package, the SHA-256 of the bundle its URL names.
 *
 * @param template the parsed template
 * @param options repository and file hashes
 * @returns a new document; the template is not changed
 * @throws {Error} when a bundle the template names was not built, the template names another version
 *   than the one released, or the repository is malformed
 */
export function releaseServerJson(template: unknown, options: ReleaseOptions): Record<string, unknown> {
  const [owner, name] = options.repo.split("/");
  if (!/^[\w.-]+\/[\w.-]+$/.test(options.repo)) {
    throw new TypeError(`Invalid repository ${JSON.stringify(options.repo)}: use owner/name`);
  }
  const text = JSON.stringify(template)
    .replaceAll(`io.github.${PLACEHOLDER_OWNER}/mcp-remote-ssh`, `io.github.${owner}/${name}`)
    .replaceAll(`github.com/${PLACEHOLDER_OWNER}/mcp-remote-ssh`, `github.com/${owner}/${name}`);
  const doc = JSON.parse(text);
  // A template left at the last version would publish this release's hashes under the old URLs.
  if (doc.version !== options.version) {
    throw new Error(`server.json is at version ${doc.version}, the release is ${options.version}: update it`);
  }
  for (const pkg of (doc.packages ?? []) as Package[]) {
    if (pkg.version !== options.version || !pkg.identifier.includes(`/download/v${options.version}/`)) {
      throw new Error(`server.json package ${pkg.identifier} (version ${pkg.version}) is not of ${options.version}`);
    }
  }
  for (const pkg of (doc.packages ?? []) as Package[]) {
    if (pkg.registryType !== "mcpb") continue;
    const file = pkg.identifier.slice(pkg.identifier.lastIndexOf("/") + 1);
    const sha = options.sha256.get(file);
    if (sha === undefined) throw new Error(`server.json names ${file}, which the release did not build`);
    pkg.fileSha256 = sha;
  }
  return doc;
}

async function sha256Hex(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: { dist: { type: "string" }, repo: { type: "string" } } });
  if (values.dist === undefined || values.repo === undefined) {
    console.error("usage: server_json.ts --dist DIR --repo OWNER/NAME   (prints the release's server.json)");
    Deno.exit(2);
  }
  const sha256 = new Map<string, string>();
  for await (const entry of Deno.readDir(values.dist)) {
    if (entry.isFile && entry.name.endsWith(".mcpb")) {
      sha256.set(entry.name, await sha256Hex(`${values.dist}/${entry.name}`));
    }
  }
  let doc;
  try {
    const { version } = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
    doc = releaseServerJson(JSON.parse(await Deno.readTextFile(TEMPLATE_URL)), { repo: values.repo, version, sha256 });
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    Deno.exit(1);
  }
  const problems = await serverJsonProblems(doc);
  if (problems.length > 0) {
    console.error(`The release's server.json does not match the registry's schema:\n  ${problems.join("\n  ")}`);
    Deno.exit(1);
  }
  console.log(JSON.stringify(doc, null, 2));
}
