// The Expect header's members (RFC 9110, 10.1.1): 100-continue is met on the client's hop (Node's
// server answers `100 Continue` itself), any other expectation is the server's to meet or refuse.

/** Splits a field list at commas outside quoted strings; empty members are dropped. */
function members(value: string): string[] {
  const out: string[] = [];
  let member = "";
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (quoted && c === "\\") {
      member += c + (value[++i] ?? "");
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (c === "," && !quoted) {
      out.push(member.trim());
      member = "";
    } else member += c;
  }
  out.push(member.trim());
  return out.filter(Boolean);
}

/** The Expect value to send the server: the client's without its 100-continue member, if any. */
export function expectationsForServer(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const others = members(value).filter((m) => m.toLowerCase() !== "100-continue");
  return others.length > 0 ? others.join(", ") : undefined;
}
