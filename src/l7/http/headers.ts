// Which headers belong to one hop (RFC 9110, 7.6.1) and are not forwarded: moat speaks to the
// client and to the server on two connections of its own. Nor is Trailer: moat passes bodies on,
// not trailer fields, so it would announce fields that never come (and Node throws on a Trailer
// in a message it does not send chunked: a Content-Length, a 204, an HTTP/1.0 client).

const NOT_FORWARDED = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
  "expect",
  "trailer",
]);

type HeaderValue = string | string[] | number | undefined;

/** The end-to-end headers: hop-by-hop ones and those the Connection header names are dropped. */
export function endToEnd(
  headers: Record<string, HeaderValue>,
  keep: readonly string[] = [],
): Record<string, string | string[]> {
  // a set: a client may name thousands of headers in Connection, and send thousands
  const named = new Set(
    String(headers.connection ?? "")
      .split(",")
      .map((t) => t.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (value === undefined || lower.startsWith(":")) continue;
    if (!keep.includes(lower) && (NOT_FORWARDED.has(lower) || named.has(lower))) continue;
    out[name] = typeof value === "number" ? String(value) : value;
  }
  return out;
}

/** Raw header pairs (as a parser gives them) as response head lines. */
export function headLines(raw: readonly string[]): string {
  let out = "";
  for (let i = 0; i + 1 < raw.length; i += 2) out += `${raw[i]}: ${raw[i + 1]}\r\n`;
  return out;
}
