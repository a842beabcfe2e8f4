// The grammar src/l7/sniff.ts implements, written the longer way: the head read as latin1 text,
// the request line by regular expressions. Tests compare the sniffer's byte-at-a-time scan with it.
import type { Sniffed } from "../../src/l7/sniff.ts";

const TCHAR = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]";
/** Whitespace a lenient server splits a request line on (a CR before the LF among it). */
const WS = "[\\t\\x0b\\x0c\\r \\x1c-\\x1f\\x85\\xa0]";
/** Empty lines and whitespace, the method, whitespace, the rest of the line, its LF. */
const REQUEST_LINE = new RegExp(`^(?:\\n|${WS})*(${TCHAR}+)${WS}+([^\\n]*)\\n`);
/** A prefix of one: no LF after the method's start. */
const REQUEST_LINE_PREFIX = new RegExp(`^(?:\\n|${WS})*(?:${TCHAR}+(?:${WS}[^\\n]*)?)?$`);
const VERSION = new RegExp(`(?:^|${WS})HTTP/[0-9]+\\.[0-9]+(?:${WS}|$)`, "i");
const STARTS_WITH_WS = new RegExp(`^${WS}`);

/** What sniff() tells of `head`, the longer way. */
export function sniffAsText(head: Buffer): Sniffed {
  if (head.length === 0) return "more";
  // a handshake or an alert record of a version below 0x1000, as servers read a first record
  if (head[0] === 0x16 || head[0] === 0x15) {
    if (head.length < 2) return "more";
    return (head[1] ?? 0) < 0x10 ? "tls" : "unknown";
  }
  if ((head[0] ?? 0) & 0x80) {
    if (head.length < 3) return "more";
    if (head[2] === 1) return "tls";
  }
  const text = head.toString("latin1");
  if (text.startsWith("SSH-")) return "ssh";
  const line = REQUEST_LINE.exec(text);
  if (line) {
    const [, method, rest = ""] = line;
    const word = rest.length > 0 && !STARTS_WITH_WS.test(rest);
    return word && (method === "GET" || VERSION.test(rest)) ? "http" : "unknown";
  }
  if ("SSH-".startsWith(text) || REQUEST_LINE_PREFIX.test(text)) return "more";
  return "unknown";
}
