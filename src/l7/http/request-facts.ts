// What moat judges of one HTTP request, and what its event says. The path is judged (and
// forwarded) in its normal form, so `/public/../%61dmin` is `/admin` to the rule and to the server.
import type { IncomingMessage } from "node:http";
import type { HttpFacts, Layer7Facts } from "../../policy/facts.ts";

/** Events carry at most this much of the path. */
export const EVENT_PATH_CHARS = 256;

export interface RequestTarget {
  /** The path in normal form, without the query (what rules match). */
  path: string;
  /** What is sent upstream: the normal path and the query as the client wrote it. */
  target: string;
  /** The authority of an absolute-form target (`GET http://host/x`), which wins over Host. */
  authority?: string;
}

/**
 * A URI authority as a server reads a host from it: a bracketed IP literal or a reg-name
 * (RFC 3986, 3.2.2), then `:` and digits or nothing. No userinfo (`x@evil.example`: servers
 * disagree on the host) and no second port (`evil.example:80:80`).
 */
const AUTHORITY = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?$/;

/** An absolute-form target of any scheme (RFC 3986, 3.1): scheme `://` authority, then the rest. */
const ABSOLUTE_FORM = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*))(.*)$/s;

const UNRESERVED = /[A-Za-z0-9\-._~]/;

/**
 * %41 -> A for unreserved characters, other escapes upper-cased (RFC 3986, 6.2.2), and a % that
 * starts no escape escaped itself (%25): else a decoded character could complete it into a new
 * escape (`%2%65` -> `%2e`) that the server would decode again, to a path moat never judged. So
 * every % of the result starts an escape that stays as it is: the normal form is its own.
 */
function normalEscapes(path: string): string {
  return path.replace(/%([0-9A-Fa-f]{2})|%/g, (_, hex: string | undefined) => {
    if (hex === undefined) return "%25";
    const ch = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`;
  });
}

/** Removes `.` and `..` segments (RFC 3986, 5.2.4); a `..` never climbs above the root. */
function removeDots(path: string): string {
  // a `.` or `..` segment starts with "/.": a path without one is its own result
  if (path.startsWith("/") && !path.includes("/.")) return path;
  const out: string[] = [];
  const segments = path.split("/").slice(1);
  segments.forEach((segment, i) => {
    const lastOne = i === segments.length - 1;
    if (segment === "..") {
      if (out.length > 0) out.pop();
      if (lastOne) out.push("");
    } else if (segment === ".") {
      if (lastOne) out.push("");
    } else out.push(segment);
  });
  return `/${out.join("/")}`;
}

/** The request-target of an HTTP/1.x request line or an h2 `:path`. */
export function requestTarget(raw: string): RequestTarget {
  const absolute = ABSOLUTE_FORM.exec(raw);
  const origin = absolute?.[1] ?? "";
  const authority = absolute?.[2];
  // a fragment is the client's own (servers drop it): neither judged nor sent
  const rest = (absolute ? absolute[3] || "/" : raw).replace(/#.*$/s, "");
  if (!rest.startsWith("/")) return { path: rest, target: raw, authority };
  const q = rest.indexOf("?");
  const path = removeDots(normalEscapes(q < 0 ? rest : rest.slice(0, q)));
  const query = q < 0 ? "" : rest.slice(q);
  return { path, target: `${origin}${path}${query}`, authority };
}

/** Header values as one string each (repeated headers joined with ", "). */
export function flatHeaders(
  headers: Record<string, string | string[] | undefined>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || name.startsWith(":")) continue;
    out[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

/** Why the host moat would judge is malformed (refused with 400), or null. */
export function malformedHost(
  authority: string | undefined,
  host: string | undefined,
): string | null {
  if (authority !== undefined && !AUTHORITY.test(authority))
    return "the request-target's authority is no host and port";
  if (host !== undefined && !AUTHORITY.test(host)) return "the Host header is no host and port";
  return null;
}

/**
 * The facts of an HTTP/1.x request Node parsed, and its target as forwarded. CONNECT's target is
 * an authority (`host:port`): that is the host, and the path is empty. `authority`: the target's
 * (absolute form, CONNECT), which the server receives as Host in place of the client's (RFC 9112,
 * 3.2.2), so it serves the host moat judged. `malformed` says why the request is refused with 400
 * before it is judged.
 */
export function requestFacts(req: IncomingMessage): {
  facts: HttpFacts;
  target: string;
  authority: string | undefined;
  malformed: string | null;
} {
  const raw = req.url ?? "";
  const t: RequestTarget =
    req.method === "CONNECT" ? { path: "", target: raw, authority: raw } : requestTarget(raw);
  // HTTP/0.9 (a request line without a version, no headers): no host to judge, and no answer
  // moat could relay in its form
  const malformed =
    req.httpVersion === "0.9"
      ? "an HTTP/0.9 request"
      : malformedHost(t.authority, req.headers.host);
  const facts: HttpFacts = {
    host: t.authority ?? req.headers.host ?? "",
    method: req.method ?? "",
    path: t.path,
    headers: flatHeaders(req.headers),
    version: req.httpVersion === "1.0" ? "1.0" : "1.1",
  };
  return { facts, target: t.target, authority: t.authority, malformed };
}

/**
 * The address a connection went to as a URI authority: an IPv6 address in brackets, the port
 * unless it is the scheme's `defaultPort`. What a server is told as the host when the client
 * named none.
 */
export function destinationAuthority(
  original: { ip: string; port: number; family: 4 | 6 },
  defaultPort: number,
): string {
  const host = original.family === 6 ? `[${original.ip}]` : original.ip;
  return original.port === defaultPort ? host : `${host}:${original.port}`;
}

/** The layer7 facts of an event: no headers (they may hold credentials), the path capped. */
export function reportFacts(facts: HttpFacts, status: number): Layer7Facts {
  const { method, host, version } = facts;
  const path = facts.path.slice(0, EVENT_PATH_CHARS);
  return { http: { method, host, path, headers: {}, version, status } };
}
