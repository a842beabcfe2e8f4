// The name pattern a wildcard answer to the review queue derives from a learned name: every name
// below its parent, but never above its registrable domain (the Public Suffix List, private
// suffixes included, read as learning and anomaly detection read it): `a.b.example.co.uk` ->
// `**.b.example.co.uk`, `evil.co.uk` -> `**.evil.co.uk`, never `**.co.uk`, which would take in
// every domain registered under `co.uk`.
import { domainOf } from "../observe/index.ts";

/**
 * The pattern for `name` (a parsed hostname: lower case, ASCII, no trailing dot), or why there is
 * none: a public suffix (`co.uk`, `github.io`, a single label) has no domain of its own below it.
 */
export function wildcardOfName(
  name: string,
): { ok: true; value: string } | { ok: false; error: string } {
  const domain = domainOf(name);
  if (domain === null)
    return {
      ok: false,
      error: `'${name}' is a public suffix: a wildcard below it would cover every domain registered under it; decide by host or domain, or give the pattern`,
    };
  const parent = name.slice(name.indexOf(".") + 1);
  const base = parent === domain || parent.endsWith(`.${domain}`) ? parent : domain;
  return { ok: true, value: `**.${base}` };
}
