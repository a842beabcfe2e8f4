// Which protocol a connection speaks, from its first bytes: a TLS handshake record (0x16 0x03),
// an SSH banner ("SSH-"), an HTTP/1.x request line (a method token and a space) or the h2c
// preface ("PRI * HTTP/2.0"). "more" = the bytes so far are a prefix of one of them.

export type Sniffed = "tls" | "ssh" | "http" | "unknown" | "more";

const METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE"];
const HTTP_STARTS = [...METHODS.map((m) => `${m} `), "PRI * HTTP/2.0"];

/** Whether `head` starts with `text`, or is a prefix of it (then more bytes are needed). */
function against(head: Buffer, text: string): "yes" | "prefix" | "no" {
  const n = Math.min(head.length, text.length);
  if (head.toString("latin1", 0, n) !== text.slice(0, n)) return "no";
  return head.length >= text.length ? "yes" : "prefix";
}

export function sniff(head: Buffer): Sniffed {
  if (head.length === 0) return "more";
  if (head[0] === 0x16) {
    if (head.length < 2) return "more";
    return head[1] === 0x03 ? "tls" : "unknown";
  }
  let prefix = false;
  for (const [text, kind] of [
    ["SSH-", "ssh"] as const,
    ...HTTP_STARTS.map((t) => [t, "http"] as const),
  ]) {
    const a = against(head, text);
    if (a === "yes") return kind;
    if (a === "prefix") prefix = true;
  }
  return prefix ? "more" : "unknown";
}
