// Which protocol a connection speaks, from its first bytes: a TLS record as servers read a first
// one (a handshake or an alert, of a version below 0x1000) or an SSLv2-format ClientHello, an SSH
// banner ("SSH-") or an HTTP/1.x request line (h2c's preface, "PRI * HTTP/2.0", is one). A request
// line is told by its form, not by a list of methods, and read as leniently as any HTTP/1 server
// reads one: what a server would read as a request is judged as HTTP (docs/l7-http.md, "Which
// connections are HTTP"); the relay's parser then judges it or refuses it, never passes it on raw.
// "more" = the bytes so far are a prefix of one of them.

export type Sniffed = "tls" | "ssh" | "http" | "unknown" | "more";

const SSH_BANNER = Buffer.from("SSH-", "latin1");

/** Whether `head` starts with `text`, or is a prefix of it (then more bytes are needed). */
function against(head: Buffer, text: Buffer): "yes" | "prefix" | "no" {
  const n = Math.min(head.length, text.length);
  for (let i = 0; i < n; i++) if (head[i] !== text[i]) return "no";
  return head.length >= text.length ? "yes" : "prefix";
}

const LF = 0x0a;

/** RFC 9110 tchar: the bytes of a method token. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
  TCHAR[c.charCodeAt(0)] = 1;

/**
 * Bytes a lenient server takes for whitespace between and around the parts of a request line:
 * SP, HTAB, VT, FF and bare CR (RFC 9112, 3), and what Python's str.split() splits on besides
 * (0x1c-0x1f, 0x85, 0xa0). A CR before the LF is whitespace ending the line.
 */
const WS = new Uint8Array(256);
for (const c of [0x20, 0x09, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x85, 0xa0]) WS[c] = 1;

/**
 * Where a request-line scan stands: before the method (empty lines and whitespace, which
 * servers skip or split away), in the method, in the whitespace after it, in the rest of the
 * line; the method's start and length, the rest's start.
 */
interface LineScan {
  at: number;
  part: "before" | "method" | "gap" | "rest";
  method: number;
  methodLength: number;
  rest: number;
}

const freshScan = (): LineScan => ({ at: 0, part: "before", method: 0, methodLength: 0, rest: 0 });

const GET = Buffer.from("GET", "latin1");
const HTTP_SLASH = "HTTP/";

const isDigit = (c: number | undefined): boolean => c !== undefined && c >= 0x30 && c <= 0x39;

/** Past the digits from `i` (at most `end`). */
function digitsEnd(head: Buffer, i: number, end: number): number {
  while (i < end && isDigit(head[i])) i++;
  return i;
}

/** A version word at `i`: `HTTP/` (any case) digits `.` digits, then whitespace or `end`. */
function versionWordAt(head: Buffer, i: number, end: number): boolean {
  for (let k = 0; k < HTTP_SLASH.length; k++, i++)
    if (i >= end || String.fromCharCode(head[i] ?? 0).toUpperCase() !== HTTP_SLASH[k]) return false;
  const major = digitsEnd(head, i, end);
  if (major === i || head[major] !== 0x2e) return false;
  const minor = digitsEnd(head, major + 1, end);
  return minor > major + 1 && (minor === end || WS[head[minor] ?? 0] === 1);
}

/**
 * A complete line `method rest`: a request line when the rest holds a version word at its start
 * or after whitespace, anywhere (servers that split on other whitespace, or none, may read the
 * words before it as the target), or the method is GET (HTTP/0.9 has no version: `GET /x`).
 */
function requestLine(head: Buffer, scan: LineScan): boolean {
  const method = head.subarray(scan.method, scan.method + scan.methodLength);
  if (method.equals(GET)) return true;
  for (let i = scan.rest; i < scan.at; i++)
    if ((i === scan.rest || WS[head[i - 1] ?? 0]) && versionWordAt(head, i, scan.at)) return true;
  return false;
}

/**
 * Moves `scan` over the bytes of `head` it has not read yet: "yes" once a whole request line
 * (a method token, whitespace, the rest up to LF) is read, "no" at the first byte or the line
 * end that cannot be one, else "prefix".
 */
function scanRequestLine(head: Buffer, scan: LineScan): "yes" | "prefix" | "no" {
  for (; scan.at < head.length; scan.at++) {
    const c = head[scan.at] ?? 0;
    switch (scan.part) {
      case "before":
        if (TCHAR[c]) {
          scan.part = "method";
          scan.method = scan.at;
          scan.methodLength = 1;
        } else if (c !== LF && !WS[c]) return "no";
        break;
      case "method":
        if (WS[c]) scan.part = "gap";
        else if (TCHAR[c]) scan.methodLength++;
        else return "no";
        break;
      case "gap":
        if (c === LF) return "no";
        if (!WS[c]) {
          scan.part = "rest";
          scan.rest = scan.at;
        }
        break;
      case "rest":
        if (c === LF) return requestLine(head, scan) ? "yes" : "no";
        break;
    }
  }
  return "prefix";
}

/**
 * A TLS record's first byte as a server reads a connection's first record: a handshake, or (Go's
 * crypto/tls drops warning alerts before the ClientHello) an alert. Go also reads any record
 * version below 0x1000 until it has chosen one, so the second byte is any below 0x10: all are TLS
 * to moat, which refuses to read what is not its usual form (judged with the hello unseen).
 */
const HANDSHAKE_RECORD = 0x16;
const ALERT_RECORD = 0x15;

/** SSLv2's record header: top bit set, the length's other 15 bits; then CLIENT-HELLO (type 1). */
function sslv2Hello(head: Buffer): "yes" | "prefix" | "no" {
  if (((head[0] ?? 0) & 0x80) === 0) return "no";
  if (head.length < 3) return "prefix";
  return head[2] === 1 ? "yes" : "no";
}

/** What the head is, the request-line scan resumed from `scan` (bytes read before not read again). */
function sniffFrom(head: Buffer, scan: LineScan): Sniffed {
  if (head.length === 0) return "more";
  if (head[0] === HANDSHAKE_RECORD || head[0] === ALERT_RECORD) {
    if (head.length < 2) return "more";
    return (head[1] ?? 0) < 0x10 ? "tls" : "unknown";
  }
  const v2 = sslv2Hello(head);
  if (v2 !== "no") return v2 === "yes" ? "tls" : "more";
  const ssh = against(head, SSH_BANNER);
  if (ssh === "yes") return "ssh";
  const line = scanRequestLine(head, scan);
  if (line === "yes") return "http";
  return line === "prefix" || ssh === "prefix" ? "more" : "unknown";
}

export function sniff(head: Buffer): Sniffed {
  return sniffFrom(head, freshScan());
}

/**
 * `sniff` for one connection's head as it grows (each head the one before with bytes appended):
 * the request-line scan goes on where it stopped, so a client sending a byte at a time costs one
 * pass over its head, not one per byte. The same head asked twice is answered from memory.
 */
export function sniffer(): (head: Buffer) => Sniffed {
  let scan = freshScan();
  let last: { head: Buffer; kind: Sniffed } | null = null;
  return (head) => {
    if (last?.head === head) return last.kind;
    if (last === null || head.length < last.head.length) scan = freshScan();
    last = { head, kind: sniffFrom(head, scan) };
    return last.kind;
  };
}

/**
 * Whether a head that was not enough (a "more") may still become a TLS record or an SSLv2 hello:
 * such a client judged as a protocol moat cannot tell would have the rest of its ClientHello
 * forwarded unjudged once it had waited out the header timeout.
 */
export function mayBecomeTls(head: Buffer): boolean {
  const first = head[0];
  if (first === undefined) return false;
  if (first === HANDSHAKE_RECORD || first === ALERT_RECORD) return head.length < 2;
  return (first & 0x80) !== 0 && head.length < 3;
}

/** Whether a head that was not enough (a "more") may still become an HTTP request line. */
export function mayBecomeRequestLine(head: Buffer): boolean {
  return head.length > 0 && scanRequestLine(head, freshScan()) === "prefix";
}
