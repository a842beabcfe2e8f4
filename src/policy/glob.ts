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

/** "*.example.org" = any subdomain (not example.org itself); otherwise exact; case-insensitive. */
export function hostMatch(pattern: string, host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, "");
  const p = pattern.toLowerCase().replace(/\.$/, "");
  return p.startsWith("*.") ? name.endsWith(p.slice(1)) && name.length > p.length - 1 : name === p;
}
