// The two kinds of patterns rules use. Pure.

/** `*` = any run of characters (including "/"), `?` = one character; the whole text must match. */
export function globMatch(pattern: string, text: string, ignoreCase = false): boolean {
  let source = "^";
  for (const ch of pattern) {
    if (ch === "*") source += ".*";
    else if (ch === "?") source += ".";
    else source += ch.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`${source}$`, ignoreCase ? "is" : "s").test(text);
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
