// dns-packet's name codec as moat reads DNS names, installed once over dns-packet's own (its
// records read and write names through it):
//
// - A bound on the compression pointers one name follows. dns-packet follows a name's pointers
//   for as long as each points further back, so a name of a 64 KB message can follow thousands of
//   them, and thousands of records can each name the end of such a chain: time squared in the
//   message's length, for any datagram a local client (or the server it asked) sends. A name of
//   at most 255 bytes has at most 127 labels, so no name needs more pointers than that; one that
//   follows more is refused before dns-packet reads it, as dns-packet refuses a bad pointer.
// - A dot or a backslash inside a label. A label may hold any octet (RFC 2181 11), and dns-packet
//   joins labels with "." as they are: the labels "allowed.moat" and "test" would read as
//   allowed.moat.test, a name of three labels that a server never resolves for it. moat writes
//   such an octet as `\DDD`, as dig may (`\046`, `\092`), so the dots of a name are always its
//   label boundaries and a label with a dot never reads as two; it writes them back as they were.
//   Mailbox names (SOA, RP) are left to dns-packet, which escapes their dots itself.
import dnsPacket from "dns-packet";

const MAX_POINTERS = 127;
/** A name's bytes (labels and their lengths) past which dns-packet refuses it as too long. */
const MAX_NAME_BYTES = 255;
const DOT = 0x2e;
const BACKSLASH = 0x5c;

interface Mail {
  mail?: boolean;
}
type Decode = ((buf: Buffer, offset?: number, options?: Mail) => string) & { bytes: number };
type Encode = ((name: string, buf?: Buffer, offset?: number, options?: Mail) => Buffer) & {
  bytes: number;
};
/** dns-packet's name codec (its type declarations leave it out). */
const codec = (
  dnsPacket as unknown as {
    name: { decode: Decode; encode: Encode; encodingLength: (name: string) => number };
  }
).name;
/** dns-packet's own functions, which moat's call. */
const plain = {
  decode: codec.decode,
  encode: codec.encode,
  encodingLength: codec.encodingLength,
};

/** What reading a name takes: refusing it, escaping octets of its labels, or dns-packet alone. */
type NameScan = "too-many-pointers" | "escaped" | "plain";

/** One pass over the name at `offset`: its pointers counted, its labels' octets looked at. */
function scanName(buf: Buffer, offset: number): NameScan {
  let at = offset;
  let jumps = 0;
  let bytes = 0;
  let escaped = false;
  while (at < buf.length) {
    const len = buf[at]!;
    if (len === 0) break;
    if ((len & 0xc0) === 0xc0) {
      if (++jumps > MAX_POINTERS) return "too-many-pointers";
      at = ((len & 0x3f) << 8) | (buf[at + 1] ?? 0);
      continue;
    }
    // too long, or a bad label: dns-packet refuses it itself
    bytes += len + 1;
    if (bytes > MAX_NAME_BYTES) break;
    if (!escaped) escaped = hasEscapedOctet(buf, at + 1, Math.min(at + 1 + len, buf.length));
    at += len + 1;
  }
  return escaped ? "escaped" : "plain";
}

function hasEscapedOctet(buf: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (buf[i] === DOT || buf[i] === BACKSLASH) return true;
  return false;
}

/**
 * The name at `offset`, which dns-packet has read (so it is well-formed), its labels' dots and
 * backslashes as `\046` and `\092`.
 */
function escapedName(buf: Buffer, offset: number): string {
  const labels: string[] = [];
  let at = offset;
  for (let len = buf[at]!; len !== 0; len = buf[at]!) {
    if ((len & 0xc0) === 0xc0) {
      at = ((len & 0x3f) << 8) | buf[at + 1]!;
      continue;
    }
    // in UTF-8, 0x2E and 0x5C are only ever "." and "\": escaped in the text, as octets
    labels.push(escapeLabel(buf.toString("utf-8", at + 1, at + 1 + len)));
    at += len + 1;
  }
  return labels.join(".");
}

const escapeLabel = (label: string): string =>
  label.replace(/[.\\]/g, (c) => (c === "." ? "\\046" : "\\092"));

/** `\046` and `\092` in a name's text, as the decoder writes them. */
const ESCAPE = /\\(046|092)/g;
const unescapeLabel = (label: string): string =>
  label.replace(ESCAPE, (_, code: string) => (code === "046" ? "." : "\\"));

/** A name's text with escapes (decoded by moat) written as its labels' octets. */
function encodeEscaped(name: string, buf: Buffer | undefined, offset: number): Buffer {
  const out = buf ?? Buffer.alloc(escapedLength(name));
  let at = offset;
  // as dns-packet: one leading and one trailing dot left out
  const text = name.replace(/^\.|\.$/g, "");
  if (text.length)
    for (const label of text.split(".")) {
      const len = out.write(unescapeLabel(label), at + 1);
      out[at] = len;
      at += len + 1;
    }
  out[at++] = 0;
  codec.encode.bytes = at - offset;
  return out;
}

/** The encoded length of a name with escapes: each takes one octet, not four. */
const escapedLength = (name: string): number =>
  plain.encodingLength(name) - 3 * (name.match(ESCAPE)?.length ?? 0);

let installed = false;

/** Installs moat's name codec over dns-packet's (once; every read and write after). */
export function installNameCodec(): void {
  if (installed) return;
  installed = true;
  // dns-packet sets `name.decode.bytes` (and encode's) on whichever function is installed
  codec.decode = Object.assign(
    (buf: Buffer, offset = 0, options?: Mail): string => {
      const scan = scanName(buf, offset);
      if (scan === "too-many-pointers") throw new Error("Cannot decode name (too many pointers)");
      const name = plain.decode(buf, offset, options);
      return scan === "escaped" && !options?.mail ? escapedName(buf, offset) : name;
    },
    { bytes: 0 },
  );
  codec.encode = Object.assign(
    (name: string, buf?: Buffer, offset = 0, options?: Mail): Buffer =>
      options?.mail || !name.includes("\\")
        ? plain.encode(name, buf, offset, options)
        : encodeEscaped(name, buf, offset),
    { bytes: 0 },
  );
  codec.encodingLength = (name: string): number =>
    name.includes("\\") ? escapedLength(name) : plain.encodingLength(name);
}
