/**
 * OpenSSH's match.c for ssh_config: `match_pattern` (`*` and `?` globs, no
 * classes) and `match_pattern_list` (comma list, `!` negation vetoes the
 * whole list). Host lines match the alias case-sensitively, as OpenSSH does;
 * `Match host`/`originalhost` lowercase both sides, `Match user` does not.
 *
 * @module
 */

/**
 * Does `s` match the glob `pattern` (`*` any run, `?` any one character)?
 * Iterative with one backtrack point, so a hostile pattern costs O(n·m) at worst.
 */
export function matchPattern(s: string, pattern: string): boolean {
  let si = 0;
  let pi = 0;
  let starP = -1;
  let starS = 0;
  while (si < s.length) {
    if (pi < pattern.length && (pattern[pi] === "?" || pattern[pi] === s[si])) {
      si++;
      pi++;
    } else if (pi < pattern.length && pattern[pi] === "*") {
      starP = pi++;
      starS = si;
    } else if (starP >= 0) {
      pi = starP + 1;
      si = ++starS;
    } else {
      return false;
    }
  }
  while (pi < pattern.length && pattern[pi] === "*") pi++;
  return pi === pattern.length;
}

/**
 * OpenSSH's match_pattern_list: true if some positive sub-pattern matches and
 * no negated one does.
 *
 * @param lower lowercase the patterns (and the caller lowercases `s`), as for host names
 */
export function matchPatternList(s: string, list: string, lower: boolean): boolean {
  let got = false;
  for (const item of list.split(",")) {
    const negated = item.startsWith("!");
    let sub = negated ? item.slice(1) : item;
    if (lower) sub = asciiLower(sub);
    if (matchPattern(s, sub)) {
      if (negated) return false;
      got = true;
    }
  }
  return got;
}

/** OpenSSH's match_hostname: both sides lowercased. */
export function matchHostname(host: string, list: string): boolean {
  return matchPatternList(asciiLower(host), list, true);
}

/** Lowercases ASCII only, as C's tolower in the C locale. */
export function asciiLower(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}
