// The DNS messages nearly every query and answer are, read in one pass without building
// dns-packet's objects (the proxy reads two per query): a query with one question and no other
// record; an answer with one question, A and CNAME records only, and no authority or additional
// record. Names are read only when every label is letters, digits, '-' or '_'. Anything else is
// null here and answer.ts decodes it with dns-packet, so what the proxy reads is the same either
// way (test/unit/dns-plain-message.test.ts compares both).

const TYPE_A = 1;
const TYPE_CNAME = 5;
/** The record types a plain query may ask, by dns-packet's names (UNKNOWN_n: it has none). */
const QUERY_TYPES = new Map<number, string>([
  [1, "A"],
  [2, "NS"],
  [5, "CNAME"],
  [6, "SOA"],
  [12, "PTR"],
  [15, "MX"],
  [16, "TXT"],
  [28, "AAAA"],
  [33, "SRV"],
  [64, "UNKNOWN_64"],
  [65, "UNKNOWN_65"],
  [255, "ANY"],
]);
/** The response codes of a plain answer, by dns-packet's names. */
const RCODES = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"];
/** dns-packet's limit on a name's length (labels and their length bytes). */
const MAX_NAME = 254;

export interface PlainQuery {
  id: number;
  name: string;
  /** The question's type as dns-packet names it. */
  type: string;
}

export interface PlainRecord {
  name: string;
  type: "A" | "CNAME";
  ttl: number;
  data: string;
}

export interface PlainAnswer {
  id: number;
  /** As dns-packet names it. */
  rcode: string;
  truncated: boolean;
  answers: PlainRecord[];
}

/** A name at `at` and the bytes it takes there; null when it is not a plain one. */
function plainName(buf: Buffer, at: number): { name: string; bytes: number } | null {
  const labels: string[] = [];
  let offset = at;
  let bytes = -1;
  let floor = at; // a pointer goes back only, before the last place it went
  let length = 0;
  for (;;) {
    if (offset >= buf.length) return null;
    const len = buf[offset] ?? 0;
    if (len === 0) {
      if (bytes < 0) bytes = offset + 1 - at;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      if (offset + 1 >= buf.length) return null;
      const to = ((len & 0x3f) << 8) | (buf[offset + 1] ?? 0);
      if (to >= floor) return null;
      if (bytes < 0) bytes = offset + 2 - at;
      offset = to;
      floor = to;
      continue;
    }
    if ((len & 0xc0) !== 0 || offset + 1 + len > buf.length) return null;
    length += len + 1;
    if (length > MAX_NAME) return null;
    for (let i = offset + 1; i <= offset + len; i++) if (!plainByte(buf[i] ?? 0)) return null;
    labels.push(buf.toString("latin1", offset + 1, offset + 1 + len));
    offset += 1 + len;
  }
  return labels.length === 0 ? null : { name: labels.join("."), bytes };
}

/** A-Z, a-z, 0-9, '-', '_'. */
function plainByte(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x30 && c <= 0x39) ||
    c === 0x2d ||
    c === 0x5f
  );
}

/** A query with one question and nothing else; null for any other message. */
export function plainQuery(buf: Buffer): PlainQuery | null {
  if (buf.length < 12) return null;
  const flags = buf.readUInt16BE(2);
  if (flags & 0x8000) return null;
  if (buf.readUInt16BE(4) !== 1 || buf.readUInt32BE(6) !== 0 || buf.readUInt16BE(10) !== 0)
    return null;
  const q = plainName(buf, 12);
  if (!q || 12 + q.bytes + 4 > buf.length) return null;
  const type = QUERY_TYPES.get(buf.readUInt16BE(12 + q.bytes));
  return type ? { id: buf.readUInt16BE(0), name: q.name, type } : null;
}

/** An answer with one question, A and CNAME records only; null for any other message. */
export function plainAnswer(buf: Buffer): PlainAnswer | null {
  if (buf.length < 12) return null;
  const flags = buf.readUInt16BE(2);
  const rcode = RCODES[flags & 0xf];
  if (!(flags & 0x8000) || !rcode) return null;
  if (buf.readUInt16BE(4) !== 1 || buf.readUInt32BE(8) !== 0) return null;
  const count = buf.readUInt16BE(6);
  const q = plainName(buf, 12);
  if (!q) return null;
  let offset = 12 + q.bytes + 4;
  if (offset > buf.length) return null;
  const answers: PlainRecord[] = [];
  for (let i = 0; i < count; i++) {
    const owner = plainName(buf, offset);
    if (!owner) return null;
    offset += owner.bytes;
    if (offset + 10 > buf.length) return null;
    const type = buf.readUInt16BE(offset);
    const ttl = buf.readUInt32BE(offset + 4);
    const rdlength = buf.readUInt16BE(offset + 8);
    offset += 10;
    if (offset + rdlength > buf.length) return null;
    if (type === TYPE_A && rdlength === 4) {
      const data = `${buf[offset]}.${buf[offset + 1]}.${buf[offset + 2]}.${buf[offset + 3]}`;
      answers.push({ name: owner.name, type: "A", ttl, data });
    } else if (type === TYPE_CNAME) {
      const target = plainName(buf, offset);
      if (!target || target.bytes !== rdlength) return null;
      answers.push({ name: owner.name, type: "CNAME", ttl, data: target.name });
    } else return null;
    offset += rdlength;
  }
  return {
    id: buf.readUInt16BE(0),
    rcode,
    truncated: (flags & 0x200) !== 0,
    answers,
  };
}
