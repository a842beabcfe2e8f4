// IDS signatures against one direction of a flow's first bytes (docs/policy.md, "ids"): the
// header (protocol, addresses, ports, flow direction) first, then the contents in order with
// nocase, offset/depth (from the start of the direction's bytes) and distance/within (from the
// end of the previous content's match). Pure: the daemon and `moat explain` share it.
import {
  idsAddressRange,
  type IdsAddress,
  type IdsContent,
  type IdsPorts,
} from "../config/ids-signature.ts";
import { parseIp, type Family, type IpAddress } from "../config/ip.ts";
import type { IdsRule } from "../config/model.ts";

export interface IdsEnd {
  ip: string;
  port: number;
}

/** One direction of a flow, as far as it was read. */
export interface IdsStream {
  protocol: "tcp" | "udp";
  /** Sent by the side that opened the flow (the client). */
  toServer: boolean;
  sender: IdsEnd;
  receiver: IdsEnd;
  /** Whether the sender is this host. */
  senderLocal: boolean;
  /**
   * UDP: both directions of the flow were seen (flow:established fits, as in Suricata); absent:
   * not known (a signature that needs it is taken as watching).
   */
  established?: boolean;
  /** The direction's bytes from its start, one char a byte (latin1). */
  data: string;
  /**
   * No more bytes of this direction will come (its window is full, or the flow is let go): a
   * negated content is judged absent on `data` alone. Until then it is absent only once the
   * bytes its range covers are all here.
   */
  final: boolean;
}

/** A direction of a flow without its bytes: what a signature's header is matched on. */
export type IdsHeaderView = Omit<IdsStream, "data" | "final">;

/**
 * An entry's addresses in the family it is written in: an IPv4-mapped IPv6 address is IPv6, as
 * Suricata reads it (an IPv4 packet's addresses are IPv4).
 */
interface Range {
  family: Family;
  start: bigint;
  end: bigint;
  negated: boolean;
}

type AddressTest = (ip: IpAddress, local: boolean) => boolean;

function addressRange(entry: { cidr: string; negated: boolean }): Range {
  const read = idsAddressRange(entry.cidr);
  // the loader refused every entry it could not read: one here is a signature made elsewhere
  if (!read.ok) throw new Error(`ids signature address: ${read.error}`);
  const { family, start, end } = read.value;
  return { family, start, end, negated: entry.negated };
}

/**
 * A list's test, family by family as Suricata's: an address matches a positive entry of its
 * family, or, where its family has negated entries only, any address of it; and no negated entry.
 * A family the list does not name matches nothing (`!10.0.0.1` is every IPv4 address but one,
 * no IPv6 address).
 */
function listTest(ranges: readonly Range[]): (ip: IpAddress) => boolean {
  const inRange = (ip: IpAddress, r: Range) =>
    ip.family === r.family && ip.value >= r.start && ip.value <= r.end;
  const named = (family: Family, negated: boolean) =>
    ranges.some((r) => r.family === family && r.negated === negated);
  const onlyNegated = (family: Family) => !named(family, false) && named(family, true);
  const open = { 4: onlyNegated(4), 6: onlyNegated(6) };
  return (ip) =>
    (open[ip.family] || ranges.some((r) => !r.negated && inRange(ip, r))) &&
    !ranges.some((r) => r.negated && inRange(ip, r));
}

function addressTest(a: IdsAddress): AddressTest {
  if (a.kind === "any") return () => true;
  if (a.kind !== "list") {
    const home = a.kind === "home";
    return (_ip, local) => local === home;
  }
  return listTest(a.entries.map(addressRange));
}

function portTest(p: IdsPorts): (port: number) => boolean {
  if (p.kind === "any") return () => true;
  const positive = p.ranges.filter((r) => !r.negated);
  const negative = p.ranges.filter((r) => r.negated);
  return (port) =>
    (positive.length === 0 || positive.some((r) => port >= r.lo && port <= r.hi)) &&
    !negative.some((r) => port >= r.lo && port <= r.hi);
}

const lowerAscii = (s: string) =>
  s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) | 0x20));

interface Compiled {
  rule: IdsRule;
  src: AddressTest;
  dst: AddressTest;
  sport: (port: number) => boolean;
  dport: (port: number) => boolean;
  contents: (IdsContent & { needle: string })[];
}

/** The signatures of one policy, ready to match. */
export class IdsMatcher {
  private readonly compiled: Compiled[];
  /** Some signature has a negated content: a match may wait for bytes to come (final). */
  readonly negates: boolean;

  constructor(rules: readonly IdsRule[]) {
    this.compiled = rules.map((rule) => ({
      rule,
      src: addressTest(rule.source.addresses),
      dst: addressTest(rule.target.addresses),
      sport: portTest(rule.source.ports),
      dport: portTest(rule.target.ports),
      contents: rule.contents.map((c) => ({
        ...c,
        needle: c.nocase ? lowerAscii(c.pattern) : c.pattern,
      })),
    }));
    this.negates = rules.some((r) => r.contents.some((c) => c.negated));
  }

  /** The signatures whose header fits this direction of the flow (contents not looked at). */
  watching(stream: IdsHeaderView): IdsRule[] {
    return this.compiled.filter((c) => this.headerFits(c, stream)).map((c) => c.rule);
  }

  /** A direction's tries of each signature, before its first bytes are matched (MATCH_TRIES). */
  budget(): IdsBudget {
    return new Int32Array(this.compiled.length).fill(MATCH_TRIES);
  }

  /**
   * The signatures that match the direction's bytes so far, in the policy's order: one whose
   * negated content may still appear in bytes to come does not match yet. `budget` is
   * what the direction has left of each signature's tries, spent here: the bytes are matched
   * again as each copy adds to them, so a direction's tries are its own, not each match's.
   */
  match(stream: IdsStream, budget: IdsBudget = this.budget()): IdsRule[] {
    let lower: string | undefined;
    const out: IdsRule[] = [];
    const left = { tries: 0 };
    this.compiled.forEach((c, k) => {
      left.tries = budget[k] ?? 0;
      if (left.tries <= 0 || !this.headerFits(c, stream)) return;
      const needsLower = c.contents.some((x) => x.nocase);
      if (needsLower && lower === undefined) lower = lowerAscii(stream.data);
      const bytes = { data: stream.data, lower: lower ?? stream.data, final: stream.final };
      if (contentsMatch(c.contents, bytes, left)) out.push(c.rule);
      budget[k] = left.tries;
    });
    return out;
  }

  private headerFits(c: Compiled, s: IdsHeaderView): boolean {
    const r = c.rule;
    if (r.protocol !== "ip" && r.protocol !== s.protocol) return false;
    if (r.flow === "to_server" && !s.toServer) return false;
    if (r.flow === "to_client" && s.toServer) return false;
    if (s.protocol === "udp" && (r.onlyStream || (r.established && s.established === false)))
      return false;
    const sender = ipOf(s.sender.ip);
    const receiver = ipOf(s.receiver.ip);
    if (!sender || !receiver) return false;
    const forward =
      c.src(sender, s.senderLocal) &&
      c.sport(s.sender.port) &&
      c.dst(receiver, !s.senderLocal) &&
      c.dport(s.receiver.port);
    if (forward || !r.bidirectional) return forward;
    return (
      c.src(receiver, !s.senderLocal) &&
      c.sport(s.receiver.port) &&
      c.dst(sender, s.senderLocal) &&
      c.dport(s.sender.port)
    );
  }
}

function ipOf(text: string): IpAddress | undefined {
  const ip = parseIp(text);
  return ip.ok ? ip.value : undefined;
}

/**
 * The most places one signature's contents are tried at on one direction of a flow, over every
 * match of its bytes as they come in; past it, the signature does not match (Suricata's
 * inspection recursion limit plays this part). With the memo below, a signature of up to 48
 * contents on 1 KiB never gets near it.
 */
const MATCH_TRIES = 200_000;

/** Tries left of each signature (by its place in the matcher) for one direction of a flow. */
export type IdsBudget = Int32Array;

/** A direction's bytes as the contents are matched on them. */
interface Bytes {
  data: string;
  /** `data` with ASCII lower-cased (for nocase contents). */
  lower: string;
  /** No more bytes will come (IdsStream.final). */
  final: boolean;
}

/** Where a content may match after `prevEnd`: from `start`, ending by `reach` (unbounded: Infinity). */
function contentRange(c: IdsContent, prevEnd: number): { start: number; reach: number } {
  const relative = c.distance !== undefined || c.within !== undefined;
  const start = relative ? prevEnd + (c.distance ?? 0) : (c.offset ?? 0);
  let reach = Infinity;
  if (relative && c.within !== undefined) reach = start + c.within;
  if (!relative && c.depth !== undefined) reach = start + c.depth;
  return { start: Math.max(start, 0), reach };
}

/**
 * Whether the contents match: each positive content is tried at every place its window allows,
 * so a later one may still fit; a negated one is absent only if its range holds no match and
 * every byte of that range is here (or no more will come), so a match is never taken back.
 * Whether contents[i..] match from `prevEnd` (the end of the previous content's match) depends
 * on (i, prevEnd) only: a failure is remembered, so the bytes are tried at most once a content
 * and end, not once a combination of places (1 KiB of zeros against six contents of |00| was
 * 1024^5 tries).
 */
function contentsMatch(
  contents: readonly (IdsContent & { needle: string })[],
  bytes: Bytes,
  left: { tries: number },
): boolean {
  const length = bytes.data.length;
  const failed = new Set<number>();
  const from = (i: number, prevEnd: number): boolean => {
    const c = contents[i];
    if (!c) return true;
    const key = i * (length + 1) + prevEnd;
    if (failed.has(key)) return false;
    const hay = c.nocase ? bytes.lower : bytes.data;
    const { start, reach } = contentRange(c, prevEnd);
    const end = Math.min(length, reach);
    if (c.negated) {
      const at = hay.indexOf(c.needle, start);
      const found = at >= 0 && at + c.needle.length <= end;
      const settled = bytes.final || reach <= length;
      if (!found && settled && from(i + 1, prevEnd)) return true;
    } else
      for (let at = hay.indexOf(c.needle, start); at >= 0; at = hay.indexOf(c.needle, at + 1)) {
        if (at + c.needle.length > end || --left.tries < 0) break;
        if (from(i + 1, at + c.needle.length)) return true;
      }
    failed.add(key);
    return false;
  };
  return from(0, 0);
}
