// DNS messages as the proxy reads and writes them, through the `dns-packet` codec: the question
// of a query and the size of answer its client takes over UDP; the names (the query and its CNAME
// chain) and addresses of an answer; the answers moat makes itself (FORMERR, REFUSED, SERVFAIL, a
// truncated reply that sends the client to TCP, NXDOMAIN for the DoH canary); and HTTPS/SVCB
// address hints (and, when the policy asks, ECH configs) taken out.
import dnsPacket from "dns-packet";
import { installNameCodec } from "./name-codec.ts";
import { dnsName } from "./dns-name.ts";

/** The UDP answer size a client without EDNS takes (RFC 1035). */
export const CLASSIC_UDP_LIMIT = 512;
/** The most one IPv4 datagram carries (the proxy's listeners are IPv4): a larger one is not sent. */
const MAX_UDP_PAYLOAD = 65_507;
const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;
const TYPE_SVCB = 64;
const TYPE_HTTPS = 65;
/** How dns-packet names the record types it does not know (HTTPS and SVCB among them). */
const UNKNOWN_HTTPS = `UNKNOWN_${TYPE_HTTPS}`;
const UNKNOWN_SVCB = `UNKNOWN_${TYPE_SVCB}`;
/** SvcParamKeys whose values are addresses (RFC 9460). */
const HINT_KEYS = new Set([4, 6]);
/** The SvcParamKey of an Encrypted ClientHello config (RFC 9460 14.3.2). */
const ECH_KEY = 5;
const HINT_AND_ECH_KEYS = new Set([...HINT_KEYS, ECH_KEY]);

/** A resource record as dns-packet decodes it (data typed by the record type). */
interface Record {
  name: string;
  type: string;
  ttl?: number;
  data?: unknown;
  udpPayloadSize?: number;
}

interface Message {
  id?: number;
  type?: "query" | "response";
  flags?: number;
  rcode?: string;
  flag_tc?: boolean;
  questions?: { name: string; type: string; class?: string }[];
  answers?: Record[];
  authorities?: Record[];
  additionals?: Record[];
}

installNameCodec();

/** dns-packet's name codec (its type declarations leave it out). */
const nameCodec = (
  dnsPacket as unknown as {
    name: { decode: ((buf: Buffer, offset: number) => string) & { bytes: number } };
  }
).name;

/** The fewest bytes a question (the root name, type, class) and a record (plus TTL, length) take. */
const QUESTION_MIN = 5;
const RECORD_MIN = 11;

/**
 * Refuses a message whose header declares more questions and records than its length can hold,
 * before decoding: dns-packet reads on past a record that runs off the end (its offset becomes
 * NaN, which reads from the start again), so 30 bytes declaring 131,000 records cost the event
 * loop half a second. Bounded so, a decode costs what the message's length allows.
 */
function decode(buf: Buffer): Message {
  if (buf.length < 12) throw new Error("shorter than a DNS header");
  const records = u16(buf, 6) + u16(buf, 8) + u16(buf, 10);
  if (12 + u16(buf, 4) * QUESTION_MIN + records * RECORD_MIN > buf.length)
    throw new Error("more questions and records declared than the message holds");
  return dnsPacket.decode(buf) as unknown as Message;
}
/**
 * The 16-bit big-endian number at `at`, which the caller knows is inside `buf` (Buffer's reader
 * checks its offset through a validator that allocates its arguments, twice per message).
 */
const u16 = (buf: Buffer, at: number): number => (buf[at]! << 8) | buf[at + 1]!;
const encode = (m: Message): Buffer => dnsPacket.encode(m as unknown as dnsPacket.Packet);

/** Record type names dns-packet does not know ("UNKNOWN_65") by their usual name. */
export function typeName(type: string): string {
  if (type === UNKNOWN_HTTPS) return "HTTPS";
  if (type === UNKNOWN_SVCB) return "SVCB";
  return type;
}

export interface Query {
  id: number;
  /** The first question's name and type ("" when there is none, or it cannot be read). */
  name: string;
  type: string;
  /** The largest answer the client takes over UDP. */
  udpLimit: number;
  /** The questions its header counts: moat answers a query of one, the others FORMERR. */
  questions: number;
}

/** The header's bytes, and its QR bit (set: a response). */
const HEADER = 12;
const QR = 0x80;

/**
 * A query's question, or null when the bytes are not a query. A query whose header counts other
 * than one question is not decoded past its first name: it is answered FORMERR from its header
 * (errorAnswer), and reading thousands of questions would cost the event loop for nothing.
 */
export function readQuery(buf: Buffer): Query | null {
  if (buf.length < HEADER || (buf[2]! & QR) !== 0) return null;
  const questions = u16(buf, 4);
  if (questions !== 1)
    return {
      id: u16(buf, 0),
      name: firstName(buf),
      type: "",
      udpLimit: CLASSIC_UDP_LIMIT,
      questions,
    };
  let m: Message;
  try {
    m = decode(buf);
  } catch {
    return null;
  }
  if (m.type !== "query") return null;
  const q = m.questions?.[0];
  let edns = 0;
  for (const a of m.additionals ?? [])
    if (a.type === "OPT") {
      edns = a.udpPayloadSize ?? 0;
      break;
    }
  return {
    id: m.id ?? 0,
    name: q ? dnsName(q.name) : "",
    type: q ? typeName(q.type) : "",
    udpLimit: Math.min(MAX_UDP_PAYLOAD, Math.max(CLASSIC_UDP_LIMIT, edns)),
    questions,
  };
}

/** The first question's name, alone ("" when the header counts none or it cannot be read). */
function firstName(buf: Buffer): string {
  if (u16(buf, 4) === 0) return "";
  try {
    return dnsName(nameCodec.decode(buf, HEADER));
  } catch {
    return "";
  }
}

export interface AddressRecord {
  ip: string;
  ttlSeconds: number;
  /**
   * Where the record's owner stands in the answer's `names`: the address is that name's and the
   * names' before it (they alias to it), never a later one's (the owner does not alias to those).
   */
  ownerIndex: number;
}

export interface Answer {
  id: number;
  rcode: string;
  truncated: boolean;
  /** The query's name and every name its CNAME chain leads through. */
  names: string[];
  /**
   * The chain goes on past the names moat follows (16): a name it leads to is neither judged nor
   * bound, and the client, which follows it, would reach it. Absent otherwise.
   */
  chainCut?: true;
  /** A and AAAA records of those names, each with its owner's place in `names`. */
  addresses: AddressRecord[];
  /** What the answer says, for events: addresses, else the chain's last name. */
  summary: string[];
}

/** Reads an answer to a query for `qname`; null when the bytes are not a DNS response. */
export function readAnswer(buf: Buffer, qname: string): Answer | null {
  let m: Message;
  try {
    m = decode(buf);
  } catch {
    return null;
  }
  return answerOf(m, qname);
}

/**
 * A server's answer as the client gets it (stripHints) and what it says (readAnswer), from one
 * decode: the hints stripped are never read (only A, AAAA and CNAME records are).
 */
export function readReply(
  buf: Buffer,
  qname: string,
  ech = false,
): { reply: Buffer; answer: Answer | null } {
  let m: Message;
  try {
    m = decode(buf);
  } catch {
    return { reply: buf, answer: null };
  }
  return { reply: stripped(buf, m, ech), answer: answerOf(m, qname) };
}

function answerOf(m: Message, qname: string): Answer | null {
  if (m.type !== "response") return null;
  const records = m.answers ?? [];
  const { names, cut } = followChain(records, qname);
  // most answers have no CNAME: a record's name is compared with the query's, no map is built
  const places = names.length > 1 ? new Map(names.map((n, i) => [n, i])) : null;
  const addresses: AddressRecord[] = [];
  const ips: string[] = [];
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    if (r.type !== "A" && r.type !== "AAAA") continue;
    const name = dnsName(r.name);
    const ownerIndex = places ? places.get(name) : name === names[0] ? 0 : undefined;
    if (ownerIndex === undefined) continue;
    const ip = String(r.data);
    addresses.push({ ip, ttlSeconds: r.ttl ?? 0, ownerIndex });
    ips.push(ip);
  }
  const summary = ips.length ? ips : names.length > 1 ? [names[names.length - 1] ?? ""] : [];
  const answer: Answer = {
    id: m.id ?? 0,
    rcode: m.rcode ?? "NOERROR",
    truncated: !!m.flag_tc,
    names,
    addresses,
    summary,
  };
  if (cut) answer.chainCut = true;
  return answer;
}

/**
 * `qname`, then each CNAME target in turn: every name in it is reached from the query by the
 * answer's own CNAMEs, in order. A name with two CNAMEs (a branch) is followed by its first only;
 * a target already in the chain (a loop) or without a CNAME of its own ends it, and so does the
 * 16th name: every address would get every name before its owner's, so a chain of thousands in
 * one message would hold the proxy's thread (resolvers stop far sooner: BIND after 16 too).
 */
export function cnameChain(records: readonly Record[], qname: string): string[] {
  return followChain(records, qname).names;
}

/** cnameChain, and whether a CNAME goes on from its last name when it stops at MAX_CHAIN. */
function followChain(records: readonly Record[], qname: string): { names: string[]; cut: boolean } {
  const chain = [dnsName(qname)];
  if (!hasCname(records)) return { names: chain, cut: false };
  const seen = new Set(chain);
  // each name's first CNAME, looked up by name: a walk of the list per step was quadratic in a
  // chain of thousands of records
  const cnames = new Map<string, string>();
  for (const r of records)
    if (r.type === "CNAME" && !cnames.has(dnsName(r.name)))
      cnames.set(dnsName(r.name), dnsName(String(r.data)));
  while (chain.length < MAX_CHAIN) {
    const target = cnames.get(chain[chain.length - 1] ?? "") ?? "";
    if (!target || seen.has(target)) return { names: chain, cut: false };
    chain.push(target);
    seen.add(target);
  }
  const next = cnames.get(chain[chain.length - 1] ?? "");
  return { names: chain, cut: next !== undefined && !seen.has(next) };
}

/** The most names a chain holds, the query's included. */
const MAX_CHAIN = 16;

function hasCname(records: readonly Record[]): boolean {
  for (let i = 0; i < records.length; i++) if (records[i]!.type === "CNAME") return true;
  return false;
}

/**
 * moat's own answer to `query`: its question, no records, the given rcode. A query whose header
 * counts other than one question gets the header alone (no question): echoed, its questions
 * would make an answer as costly as the query to write, and larger than a TCP message holds.
 */
export function errorAnswer(
  query: Buffer,
  rcode: "FORMERR" | "REFUSED" | "SERVFAIL" | "NXDOMAIN",
): Buffer {
  if (query.length >= HEADER && u16(query, 4) !== 1) return headerAnswer(query, RCODE[rcode]);
  const q = decode(query);
  const answer = encode({
    id: q.id ?? 0,
    type: "response",
    flags: ((q.flags ?? 0) & dnsPacket.RECURSION_DESIRED) | RCODE[rcode],
    questions: [],
    answers: [],
    authorities: [],
    additionals: [],
  });
  return withQuestionsOf(query, answer);
}

/**
 * `answer` (encoded without questions) with the questions of `message`, octet for octet: a name
 * decoded and encoded again is not always the same octets (one that is not UTF-8 comes back
 * with U+FFFD), and a stub takes an answer whose question differs from its own for another's.
 */
function withQuestionsOf(message: Buffer, answer: Buffer): Buffer {
  let end = HEADER;
  for (let n = u16(message, 4); n > 0; n--) {
    nameCodec.decode(message, end);
    end += nameCodec.decode.bytes + 4;
  }
  if (end > message.length) throw new Error("a question runs past the message");
  const out = Buffer.concat([
    answer.subarray(0, HEADER),
    message.subarray(HEADER, end),
    answer.subarray(HEADER),
  ]);
  out[4] = message[4]!;
  out[5] = message[5]!;
  return out;
}

/** A 12-byte answer: the query's id and RD flag, QR set, `rcode`, no questions or records. */
function headerAnswer(query: Buffer, rcode: number): Buffer {
  const out = Buffer.alloc(HEADER);
  out[0] = query[0]!;
  out[1] = query[1]!;
  out[2] = QR | (query[2]! & RD);
  out[3] = rcode;
  return out;
}

/** The RD bit of a header's third byte. */
const RD = 0x01;

/** The largest DNS message: what TCP's 2-byte length says (RFC 1035 4.2.2). */
export const MAX_MESSAGE = 0xffff;

/**
 * The answer as a UDP client of `limit` bytes takes it: unchanged when it fits; else its header
 * and question only, with TC set, so the client asks again over TCP (never fragmented).
 */
export function fitUdp(answer: Buffer, limit: number): Buffer {
  return answer.length <= limit ? answer : truncated(answer);
}

/** The answer's header (TC set) and question, and its EDNS record; no other record. */
export function truncated(answer: Buffer): Buffer {
  const m = decode(answer);
  const opt = (m.additionals ?? []).filter((a) => a.type === "OPT");
  const header = encode({
    id: m.id ?? 0,
    type: "response",
    flags: (m.flags ?? 0) | dnsPacket.TRUNCATED_RESPONSE,
    questions: [],
    answers: [],
    authorities: [],
    additionals: opt,
  });
  return withQuestionsOf(answer, header);
}

/**
 * The answer with `ipv4hint` and `ipv6hint` taken out of its HTTPS and SVCB records: an address a
 * hint names would reach the client without a binding of its own. With `ech`, the `ech` parameter
 * too (the client then sends a visible SNI). Unchanged (the same bytes) when there is none.
 */
export function stripHints(answer: Buffer, ech = false): Buffer {
  let m: Message;
  try {
    m = decode(answer);
  } catch {
    return answer;
  }
  return stripped(answer, m, ech);
}

/** `answer` (decoded: `m`) without the hints (stripHints). */
function stripped(answer: Buffer, m: Message, ech: boolean): Buffer {
  // most answers have no HTTPS or SVCB record: nothing to copy
  const service =
    hasServiceRecord(m.answers) ||
    hasServiceRecord(m.authorities) ||
    hasServiceRecord(m.additionals);
  if (!service) return answer;
  const keys = ech ? HINT_AND_ECH_KEYS : HINT_KEYS;
  let changed = false;
  const strip = (records: Record[] | undefined) => {
    const out: Record[] = [];
    for (const r of records ?? []) {
      if ((r.type !== UNKNOWN_HTTPS && r.type !== UNKNOWN_SVCB) || !Buffer.isBuffer(r.data)) {
        out.push(r);
        continue;
      }
      const data = withoutParams(r.data, keys);
      if (data !== r.data) changed = true;
      // a record whose params cannot be read cannot be stripped: its hints would pass
      if (data) out.push(data === r.data ? r : { ...r, data });
    }
    return out;
  };
  const out = {
    ...m,
    answers: strip(m.answers),
    authorities: strip(m.authorities),
    additionals: strip(m.additionals),
  };
  return changed ? encode(out) : answer;
}

function hasServiceRecord(records: Record[] | undefined): boolean {
  if (!records) return false;
  for (let i = 0; i < records.length; i++) {
    const type = records[i]!.type;
    if (type === UNKNOWN_HTTPS || type === UNKNOWN_SVCB) return true;
  }
  return false;
}

/**
 * SVCB RDATA (RFC 9460 2.2): priority, target name (never compressed), then SvcParams
 * (key, length, value), which dns-packet leaves as bytes; the params of `keys` are left out.
 * Null when the target name or a param runs past the data (the record is malformed).
 */
function withoutParams(rdata: Buffer, keys: ReadonlySet<number>): Buffer | null {
  if (rdata.length < 3) return rdata;
  let offset = 2;
  try {
    nameCodec.decode(rdata, offset);
    offset += nameCodec.decode.bytes;
  } catch {
    return null;
  }
  const kept: Buffer[] = [rdata.subarray(0, offset)];
  let dropped = false;
  while (offset + 4 <= rdata.length) {
    const key = rdata.readUInt16BE(offset);
    const end = offset + 4 + rdata.readUInt16BE(offset + 2);
    if (end > rdata.length) return null;
    if (keys.has(key)) dropped = true;
    else kept.push(rdata.subarray(offset, end));
    offset = end;
  }
  return dropped ? Buffer.concat(kept) : rdata;
}
