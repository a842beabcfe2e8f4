// The Expect header's members (RFC 9110, 10.1.1). An expectation is the server's to meet or
// refuse: moat forwards it, after judging the request, and passes the server's `100 Continue`
// back, never one of its own. HTTP/1.0 knows no 100-continue (a server ignores it in a 1.0
// request), and moat sends every request as HTTP/1.1: that member is dropped from a 1.0 request.

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

/** A header value as one field list (an HTTP/2 client's repeated field as its members). */
const asList = (value: string | string[]): string =>
  Array.isArray(value) ? value.join(", ") : value;

/**
 * The Expect value to send the server: the client's as sent, or, from an HTTP/1.0 client,
 * without its 100-continue member; undefined when nothing is left.
 */
export function expectationsForServer(
  value: string | string[] | undefined,
  clientVersion: string,
): string | undefined {
  if (value === undefined) return undefined;
  const list = asList(value);
  if (clientVersion !== "1.0") return list.trim() === "" ? undefined : list;
  const others = members(list).filter((m) => m.toLowerCase() !== "100-continue");
  return others.length > 0 ? others.join(", ") : undefined;
}
