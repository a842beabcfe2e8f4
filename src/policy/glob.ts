// The two kinds of patterns rules use. Pure.

/**
 * `*` = any run of characters (including "/"), `?` = one character; the whole text must match.
 * Matched by walking both strings (remembering the last `*`), never through a regex that could
 * backtrack: time is at most pattern length x text length, whatever a client sends.
 */
export function globMatch(pattern: string, text: string, ignoreCase = false): boolean {
  const p = Array.from(ignoreCase ? pattern.toLowerCase() : pattern);
  const t = Array.from(ignoreCase ? text.toLowerCase() : text);
  let pi = 0;
  let ti = 0;
  let star = -1; // the last `*` seen in the pattern
  let resume = 0; // where the text continues if that `*` takes one more character
  while (ti < t.length) {
    const ch = p[pi];
    if (ch === "*") {
      star = pi++;
      resume = ti;
    } else if (ch !== undefined && (ch === "?" || ch === t[ti])) {
      pi++;
      ti++;
    } else if (star >= 0) {
      pi = star + 1;
      ti = ++resume;
    } else return false;
  }
  while (p[pi] === "*") pi++;
  return pi === p.length;
}

/**
 * A DNS name pattern: `example.org` exact, `*.example.org` exactly one label below,
 * `**.example.org` any depth below; neither wildcard matches `example.org` itself.
 * Case-insensitive; a trailing dot is ignored.
 */
export function hostMatch(pattern: string, host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, "");
  const p = pattern.toLowerCase().replace(/\.$/, "");
  const any = p.startsWith("**.");
  if (!any && !p.startsWith("*.")) return name === p;
  const base = p.slice(any ? 3 : 2);
  if (!name.endsWith(`.${base}`)) return false;
  const below = name.slice(0, name.length - base.length - 1);
  return below.length > 0 && (any || !below.includes("."));
}
