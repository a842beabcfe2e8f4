// Which protocol a connection speaks, from its first bytes: a TLS handshake record (0x16 0x03),
// an SSH banner ("SSH-"), an HTTP/1.x request line (a method token and a space) or the h2c
// preface ("PRI * HTTP/2.0"). "more" = the bytes so far are a prefix of one of them.

export type Sniffed = "tls" | "ssh" | "http" | "unknown" | "more";

const METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE"];
const HTTP_STARTS = [...METHODS.map((m) => `${m} `), "PRI * HTTP/2.0"];
/** The starts, as bytes (compared in place: no string is made of the head for each of them). */
const STARTS: readonly { bytes: Buffer; kind: "ssh" | "http" }[] = [
  { bytes: Buffer.from("SSH-", "latin1"), kind: "ssh" },
  ...HTTP_STARTS.map((t) => ({ bytes: Buffer.from(t, "latin1"), kind: "http" as const })),
];

/** Whether `head` starts with `text`, or is a prefix of it (then more bytes are needed). */
function against(head: Buffer, text: Buffer): "yes" | "prefix" | "no" {
  const n = Math.min(head.length, text.length);
  for (let i = 0; i < n; i++) if (head[i] !== text[i]) return "no";
  return head.length >= text.length ? "yes" : "prefix";
}

export function sniff(head: Buffer): Sniffed {
  if (head.length === 0) return "more";
  if (head[0] === 0x16) {
    if (head.length < 2) return "more";
    return head[1] === 0x03 ? "tls" : "unknown";
  }
  let prefix = false;
  for (const { bytes, kind } of STARTS) {
    const a = against(head, bytes);
    if (a === "yes") return kind;
    if (a === "prefix") prefix = true;
  }
  return prefix ? "more" : "unknown";
}
