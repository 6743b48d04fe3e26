/**
 * The names tools are switched on by, shared by the flags, the config file
 * and the tool definitions.
 *
 * @module
 */

/**
 * The groups tools are switched on by (`--toolsets`); `connect` is always on.
 * A name joins this list with its first tool (hosts will), so no
 * name is accepted that switches on nothing.
 */
export const TOOLSETS = ["connect", "exec", "jobs", "shell", "files", "transfer", "forward"] as const;

/** One group of tools. */
export type Toolset = typeof TOOLSETS[number];

/**
 * Parses a comma-separated list of toolsets; throws a TypeError naming an
 * unknown one.
 *
 * @example
 * ```ts
 * parseToolsets("exec, files"); // ["exec", "files"]
 * ```
 */
export function parseToolsets(text: string): Toolset[] {
  const names = text.split(",").map((n) => n.trim()).filter((n) => n !== "");
  for (const name of names) {
    if (!(TOOLSETS as readonly string[]).includes(name)) {
      throw new TypeError(`Unknown toolset ${JSON.stringify(name)}: use ${TOOLSETS.join(", ")}`);
    }
  }
  return [...new Set(names as Toolset[])];
}
