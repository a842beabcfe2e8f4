// Which protocol a connection speaks, from its first bytes: a TLS handshake record (0x16 0x03),
// an SSH banner ("SSH-") or an HTTP/1.x request line (h2c's preface, "PRI * HTTP/2.0", is one).
// A request line is told by its form, not by a list of methods: what an HTTP/1 server would read
// as a request is judged as HTTP (docs/l7-http.md, "Which connections are HTTP").
// "more" = the bytes so far are a prefix of one of them.

export type Sniffed = "tls" | "ssh" | "http" | "unknown" | "more";

const SSH_BANNER = Buffer.from("SSH-", "latin1");

/** Whether `head` starts with `text`, or is a prefix of it (then more bytes are needed). */
function against(head: Buffer, text: Buffer): "yes" | "prefix" | "no" {
  const n = Math.min(head.length, text.length);
  for (let i = 0; i < n; i++) if (head[i] !== text[i]) return "no";
  return head.length >= text.length ? "yes" : "prefix";
}

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;

/** RFC 9110 tchar: the bytes of a method token. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
  TCHAR[c.charCodeAt(0)] = 1;

/** `HTTP/` digit `.` digit, `#` standing for a digit. */
const VERSION = "HTTP/#.#";

/**
 * Where a request-line scan stands: empty lines (RFC 9112, 2.2: a server ignores CRLFs before
 * the request line), method, request-target, version, line end; `count` bytes into the part.
 */
interface LineScan {
  at: number;
  part: "empty" | "empty-lf" | "method" | "target" | "version" | "end-lf";
  count: number;
}

const freshScan = (): LineScan => ({ at: 0, part: "empty", count: 0 });

/** One byte of the version: `#` in VERSION takes any digit. */
function versionByte(c: number, i: number): boolean {
  const want = VERSION.charCodeAt(i);
  return want === 0x23 ? c >= 0x30 && c <= 0x39 : c === want;
}

/**
 * Moves `scan` over the bytes of `head` it has not read yet: "yes" once a whole request line
 * (`token SP target SP HTTP/d.d`, then CRLF or LF) is read, "no" at the first byte that cannot
 * be one, else "prefix".
 */
function scanRequestLine(head: Buffer, scan: LineScan): "yes" | "prefix" | "no" {
  for (; scan.at < head.length; scan.at++) {
    const c = head[scan.at] ?? 0;
    switch (scan.part) {
      case "empty":
        if (c === CR) scan.part = "empty-lf";
        else if (TCHAR[c]) scan.part = "method";
        else if (c !== LF) return "no";
        break;
      case "empty-lf":
        if (c !== LF) return "no";
        scan.part = "empty";
        break;
      case "method":
        if (c === SP) scan.part = "target";
        else if (!TCHAR[c]) return "no";
        break;
      case "target":
        if (c === CR || c === LF) return "no";
        if (c === SP) {
          if (scan.count === 0) return "no";
          scan.part = "version";
          scan.count = 0;
        } else scan.count++;
        break;
      case "version":
        if (scan.count === VERSION.length) {
          if (c === LF) return "yes";
          if (c !== CR) return "no";
          scan.part = "end-lf";
        } else if (versionByte(c, scan.count)) scan.count++;
        else return "no";
        break;
      case "end-lf":
        return c === LF ? "yes" : "no";
    }
  }
  return "prefix";
}

/** What the head is, the request-line scan resumed from `scan` (bytes read before not read again). */
function sniffFrom(head: Buffer, scan: LineScan): Sniffed {
  if (head.length === 0) return "more";
  if (head[0] === 0x16) {
    if (head.length < 2) return "more";
    return head[1] === 0x03 ? "tls" : "unknown";
  }
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

/** Whether a head that was not enough (a "more") may still become an HTTP request line. */
export function mayBecomeRequestLine(head: Buffer): boolean {
  return head.length > 0 && scanRequestLine(head, freshScan()) === "prefix";
}
