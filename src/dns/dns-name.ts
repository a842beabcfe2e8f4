// A DNS name as moat judges, binds and reports it. DNS compares ASCII letters without case and
// every other octet as it is (RFC 4343): only A-Z are lower-cased. JavaScript's toLowerCase would
// fold more (U+212A KELVIN SIGN becomes "k"), and the policy's matching lower-cases what it is
// given, so an octet outside printable ASCII is written as dig writes it, `\DDD` (decimal): the
// name stays ASCII, and a label no pattern can name (patterns are ASCII: an IDN is written as its
// A-label) never reads as one that a pattern does. A dot or a backslash inside a label comes from
// the name codec already written so, `\046` and `\092` (name-codec.ts).

/** Lower case (A-Z only), without the root's trailing dot, other octets as `\DDD`. Idempotent. */
export function dnsName(name: string): string {
  const end = name.endsWith(".") ? name.length - 1 : name.length;
  // per name of every message: a scan, no regular expression
  for (let i = 0; i < end; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return escaped(name.slice(0, end));
  }
  // printable ASCII: toLowerCase changes A-Z and nothing else
  return (end === name.length ? name : name.slice(0, end)).toLowerCase();
}

/** `name` with each character outside printable ASCII as its UTF-8 octets. */
function escaped(name: string): string {
  let out = "";
  for (const ch of name) {
    const c = ch.codePointAt(0) ?? 0;
    if (c >= 0x21 && c <= 0x7e) out += ch.toLowerCase();
    else for (const octet of Buffer.from(ch)) out += `\\${String(octet).padStart(3, "0")}`;
  }
  return out;
}

/** A dot inside a label as the name codec writes it (a backslash octet is `\092`: never this). */
const DOT_IN_LABEL = "\\046";

/**
 * Whether a name (decoded by moat) has a label with a dot in it: a name that reads, its labels
 * joined, as another (the labels "allowed.moat", "test" as allowed.moat.test).
 */
export function hasDotInLabel(name: string): boolean {
  return name.includes(DOT_IN_LABEL);
}
