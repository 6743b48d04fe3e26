/**
 * Stages the directory of one MCP bundle (.mcpb, the package Claude Desktop installs with a
 * double-click) for one release target: `manifest.json` from packaging/mcpb/manifest.json and
 * the compiled server as `server/mcp-remote-ssh` (`.exe` on Windows). `mcpb pack DIR OUT.mcpb`
 * then zips it. The release workflow runs it once per target; tests/bundle_test.ts runs it on a
 * stand-in executable, so what is tested is what ships.
 *
 *   deno run -A packaging/mcpb/stage.ts --target x86_64-unknown-linux-gnu \
 *     --binary dist/mcp-remote-ssh-x86_64-unknown-linux-gnu --out stage [--repo owner/name]
 *
 * @module
 */

import { parseArgs } from "node:util";
import denoJson from "../../deno.json" with { type: "json" };

/** The operating system of a bundle, as `process.platform` (and the manifest) names it. */
export type BundlePlatform = "darwin" | "linux" | "win32";

/** The manifest this module reads, next to it. */
export const MANIFEST_URL: URL = new URL("./manifest.json", import.meta.url);

/** The placeholder the manifest (like the README) uses for the GitHub repository. */
const PLACEHOLDER_REPO = "OWNER/mcp-remote-ssh";

/**
 * The OS a Rust-style target triple runs on.
 *
 * @param target e.g. `aarch64-apple-darwin`
 * @returns `darwin`, `linux` or `win32`
 * @throws {TypeError} for a triple of another OS
 */
export function platformOf(target: string): BundlePlatform {
  if (target.endsWith("-apple-darwin")) return "darwin";
  if (target.includes("-linux-")) return "linux";
  if (target.includes("-windows-")) return "win32";
  throw new TypeError(`Cannot bundle target ${JSON.stringify(target)}: not a macOS, Linux or Windows triple`);
}

/** What {@linkcode stageBundle} needs. */
export interface StageOptions {
  /** Target triple of the binary, e.g. `x86_64-pc-windows-msvc`. */
  target: string;
  /** The compiled server (or, in tests, a stand-in executable). */
  binary: string;
  /** Directory to fill; created if missing. */
  outDir: string;
  /**
   * `owner/name` of the GitHub repository, put into the manifest's links in place of the
   * placeholder `OWNER/mcp-remote-ssh`.
   * @default undefined (links keep the placeholder)
   */
  repo?: string;
}

/**
 * Fills `outDir` with the bundle of one target: the manifest, narrowed to the target's OS
 * (the bundle holds one binary, so the app should refuse it elsewhere rather than fail at
 * start), and the binary under the name the manifest's command uses.
 *
 * @param options target, binary and output directory
 * @returns the staged manifest
 * @throws {Error} when the manifest's version is not deno.json's
 */
export async function stageBundle(options: StageOptions): Promise<Record<string, unknown>> {
  const platform = platformOf(options.target);
  let text = await Deno.readTextFile(MANIFEST_URL);
  if (options.repo !== undefined) {
    if (!/^[\w.-]+\/[\w.-]+$/.test(options.repo)) {
      throw new TypeError(`Invalid repository ${JSON.stringify(options.repo)}: use owner/name`);
    }
    text = text.replaceAll(`github.com/${PLACEHOLDER_REPO}`, `github.com/${options.repo}`);
  }
  const manifest = JSON.parse(text);
  if (manifest.version !== denoJson.version) {
    throw new Error(
      `packaging/mcpb/manifest.json has version ${manifest.version}, deno.json ${denoJson.version}: set both`,
    );
  }
  const file = platform === "win32" ? "mcp-remote-ssh.exe" : "mcp-remote-ssh";
  manifest.server.entry_point = `server/${file}`;
  manifest.compatibility = { ...manifest.compatibility, platforms: [platform] };
  await Deno.mkdir(`${options.outDir}/server`, { recursive: true });
  await Deno.copyFile(options.binary, `${options.outDir}/server/${file}`);
  // mcpb pack stores each file's mode, and unpacking restores it: the server must stay executable.
  if (Deno.build.os !== "windows") await Deno.chmod(`${options.outDir}/server/${file}`, 0o755);
  await Deno.copyFile(new URL("../../LICENSE", import.meta.url), `${options.outDir}/LICENSE`);
  await Deno.writeTextFile(`${options.outDir}/manifest.json`, JSON.stringify(manifest, null, 2) + "\n");
  return manifest;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      target: { type: "string" },
      binary: { type: "string" },
      out: { type: "string" },
      repo: { type: "string" },
    },
  });
  if (values.target === undefined || values.binary === undefined || values.out === undefined) {
    console.error("usage: stage.ts --target TRIPLE --binary FILE --out DIR [--repo OWNER/NAME]");
    Deno.exit(2);
  }
  await stageBundle({ target: values.target, binary: values.binary, outDir: values.out, repo: values.repo });
}
