// Reads the kernel's connection table (struct moat_ct_key -> struct moat_ct), oriented by the
// connection: local is this host, remote the peer, direction who initiated.
import { ct as ctCodec, ctKey as keyCodec, CtFlag, EventType, Mode, TcpState } from "./abi.ts";
import { formatAddress } from "./address.ts";
import type { BpfMap } from "./native.d.ts";
import type { Decoded } from "./struct.ts";

const PORTED = new Set([6, 17]);

const verdicts: Record<number, ConntrackEntry["verdict"]> = {
  [EventType.allowed]: "allowed",
  [EventType.blocked]: "blocked",
  [EventType.detected]: "detected",
};

const tcpStates = Object.fromEntries(Object.entries(TcpState).map(([k, v]) => [v, k])) as Record<
  number,
  keyof typeof TcpState
>;

export interface ConntrackEntry {
  id: bigint;
  family: 4 | 6;
  protocol: number;
  direction: "ingress" | "egress";
  local: { ip: string; port: number };
  remote: { ip: string; port: number };
  verdict: "allowed" | "blocked" | "detected";
  mode: "detect" | "prevent";
  /** Rule index in `generation`. */
  rule: number;
  generation: number;
  tcpState: keyof typeof TcpState;
  /** CLOCK_MONOTONIC ns (bpf_ktime_get_ns). */
  createdNs: bigint;
  lastNs: bigint;
  /** max_duration cut time; 0n = none. */
  deadlineNs: bigint;
  packets: { initiator: bigint; responder: bigint };
  bytes: { initiator: bigint; responder: bigint };
  ifindex: number;
  /** MOAT_CT_* bits (abi.ts CtFlag). */
  flags: number;
  icmp: { type: number; code: number } | null;
  /** The raw key and value, to update or delete the entry. */
  key: Buffer;
  value: Decoded<typeof ctCodec.fields>;
}

export function decodeConntrack(key: Buffer, value: Buffer): ConntrackEntry {
  const k = keyCodec.decode(key);
  const v = ctCodec.decode(value);
  const family = k.family === 4 ? 4 : 6;
  const ported = PORTED.has(k.protocol);
  const side0 = { ip: formatAddress(k.addr0, family), port: ported ? k.port0 : 0 };
  const side1 = { ip: formatAddress(k.addr1, family), port: ported ? k.port1 : 0 };
  const init = v.initiator & 1;
  const ingress = v.direction === 0;
  // the remote initiated an ingress connection; this host an egress one
  const remoteSide = ingress ? init : init ^ 1;
  const icmp = k.protocol === 1 || k.protocol === 58;
  return {
    id: v.id,
    family,
    protocol: k.protocol,
    direction: ingress ? "ingress" : "egress",
    local: remoteSide ? side0 : side1,
    remote: remoteSide ? side1 : side0,
    verdict: verdicts[v.verdict] ?? "blocked",
    mode: v.mode === Mode.detect ? "detect" : "prevent",
    rule: v.rule,
    generation: v.generation,
    tcpState: tcpStates[v.tcp_state] ?? "none",
    createdNs: v.created_ns,
    lastNs: v.last_ns,
    deadlineNs: v.deadline_ns,
    packets: { initiator: v.packets.readBigUInt64LE(0), responder: v.packets.readBigUInt64LE(8) },
    bytes: { initiator: v.bytes.readBigUInt64LE(0), responder: v.bytes.readBigUInt64LE(8) },
    ifindex: v.ifindex,
    flags: v.flags,
    icmp: icmp ? { type: v.icmp_type, code: v.icmp_code } : null,
    key: Buffer.from(key),
    value: v,
  };
}

/**
 * What the flow records read of an entry, in place, as plain numbers (a u64 of ns since boot or
 * of bytes stays exact below 2^53: 104 days of uptime); the rest decoded only when asked.
 */
export interface ConntrackCounts {
  /** Connection id in hex (as events name it); "0" when untracked. */
  id: string;
  protocol: number;
  tcpState: keyof typeof TcpState;
  flags: number;
  createdNs: number;
  lastNs: number;
  /** Both directions. */
  packets: number;
  bytes: number;
  /** The whole entry (a copy of its key). */
  decode(): ConntrackEntry;
}

const V = ctCodec.fields;
const K = keyCodec.fields;
const u64 = (b: Buffer, at: number) => b.readUInt32LE(at + 4) * 2 ** 32 + b.readUInt32LE(at);
const hex64 = (b: Buffer, at: number) => {
  const hi = b.readUInt32LE(at + 4);
  const lo = b.readUInt32LE(at);
  return hi === 0 ? lo.toString(16) : hi.toString(16) + lo.toString(16).padStart(8, "0");
};

/**
 * The table a page (a batch lookup of `pageSize` entries) at a time, each entry's counters read
 * in place: a walk of a full table without decoding every entry (the flow records' scan).
 */
export function* conntrackCountPages(map: BpfMap, pageSize = 256): Generator<ConntrackCounts[]> {
  let cursor: Buffer | null = null;
  const p = V.packets.offset;
  const b = V.bytes.offset;
  do {
    const page = map.lookupBatch(cursor, pageSize);
    const out: ConntrackCounts[] = [];
    for (let i = 0; i < page.count; i++) {
      const k = page.keys.subarray(i * keyCodec.size, (i + 1) * keyCodec.size);
      const v = page.values.subarray(i * ctCodec.size, (i + 1) * ctCodec.size);
      out.push({
        id: hex64(v, V.id.offset),
        protocol: k[K.protocol.offset]!,
        tcpState: tcpStates[v[V.tcp_state.offset]!] ?? "none",
        flags: v.readUInt32LE(V.flags.offset),
        createdNs: u64(v, V.created_ns.offset),
        lastNs: u64(v, V.last_ns.offset),
        packets: u64(v, p) + u64(v, p + 8),
        bytes: u64(v, b) + u64(v, b + 8),
        decode: () => decodeConntrack(k, v),
      });
    }
    yield out;
    cursor = page.next;
  } while (cursor);
}

/**
 * An entry of a batch page read in place: each field is read from the page when asked, so a scan
 * that looks at a few fields of every entry decodes none of them (a full decode of a 65,536-entry
 * table takes 350-490 ms). conntrackViews re-points one view at each entry in turn.
 */
export class ConntrackView {
  key: Buffer = Buffer.alloc(0);
  value: Buffer = Buffer.alloc(0);

  get protocol(): number {
    return this.key[K.protocol.offset]!;
  }

  get direction(): ConntrackEntry["direction"] {
    return this.value[V.direction.offset] === 0 ? "ingress" : "egress";
  }

  get verdict(): ConntrackEntry["verdict"] {
    return verdicts[this.value[V.verdict.offset]!] ?? "blocked";
  }

  get tcpState(): ConntrackEntry["tcpState"] {
    return tcpStates[this.value[V.tcp_state.offset]!] ?? "none";
  }

  get lastNs(): bigint {
    return this.value.readBigUInt64LE(V.last_ns.offset);
  }

  /** The owner's bytes (struct moat_owner, for decodeOwner): a view, valid during the visit. */
  get owner(): Buffer {
    return this.value.subarray(V.owner.offset, V.owner.offset + V.owner.bytes);
  }

  /** The peer's address, as decodeConntrack's `remote.ip`. */
  get remoteIp(): string {
    const k = this.key;
    const family = k[K.family.offset] === 4 ? 4 : 6;
    const init = this.value[V.initiator.offset]! & 1;
    // the remote initiated an ingress connection; this host an egress one
    const remoteSide = this.value[V.direction.offset] === 0 ? init : init ^ 1;
    return formatAddress(k, family, remoteSide ? K.addr1.offset : K.addr0.offset);
  }
}

/** Every entry, a page of batch lookups at a time, as one view re-pointed at each in turn. */
export function* conntrackViews(map: BpfMap, pageSize = 1024): Generator<ConntrackView> {
  const view = new ConntrackView();
  let cursor: Buffer | null = null;
  do {
    const page = map.lookupBatch(cursor, pageSize);
    for (let i = 0; i < page.count; i++) {
      view.key = page.keys.subarray(i * keyCodec.size, (i + 1) * keyCodec.size);
      view.value = page.values.subarray(i * ctCodec.size, (i + 1) * ctCodec.size);
      yield view;
    }
    cursor = page.next;
  } while (cursor);
}

/** Idle timeouts in seconds by state: conntrack.h's defaults, which the daemon keeps. */
export const CONNTRACK_TIMEOUTS = {
  tcpSyn: 120,
  tcpEstablished: 432_000,
  tcpFin: 120,
  tcpClose: 10,
  udp: 60,
  icmp: 30,
  other: 600,
} as const;

/** The entry's idle timeout in seconds, by protocol and state (conntrack.h's ct_timeout_ns). */
export function conntrackTimeoutS(
  e: Pick<ConntrackEntry, "protocol" | "tcpState" | "flags">,
  t: Record<keyof typeof CONNTRACK_TIMEOUTS, number> = CONNTRACK_TIMEOUTS,
): number {
  if (e.protocol === 6) {
    if (e.flags & CtFlag.cut) return t.tcpFin;
    if (e.tcpState === "synSent" || e.tcpState === "synRecv") return t.tcpSyn;
    if (e.tcpState === "finWait") return t.tcpFin;
    if (e.tcpState === "timeWait" || e.tcpState === "closed") return t.tcpClose;
    return t.tcpEstablished;
  }
  if (e.protocol === 17) return t.udp;
  if (e.protocol === 1 || e.protocol === 58) return t.icmp;
  return t.other;
}

/** Whether the kernel no longer uses the entry at `nowNs` (CLOCK_MONOTONIC): idle too long. */
export function conntrackExpired(
  e: Pick<ConntrackCounts, "protocol" | "tcpState" | "flags" | "lastNs">,
  nowNs: number,
): boolean {
  return nowNs > e.lastNs && nowNs - e.lastNs > conntrackTimeoutS(e) * 1e9;
}

/** Every entry, a page of batch lookups at a time (entries may come and go meanwhile). */
export function* conntrackEntries(map: BpfMap): Generator<ConntrackEntry> {
  let cursor: Buffer | null = null;
  do {
    const page = map.lookupBatch(cursor, 1024);
    for (let i = 0; i < page.count; i++) {
      yield decodeConntrack(
        page.keys.subarray(i * keyCodec.size, (i + 1) * keyCodec.size),
        page.values.subarray(i * ctCodec.size, (i + 1) * ctCodec.size),
      );
    }
    cursor = page.next;
  } while (cursor);
}

/** Deletes every entry; returns how many. */
export function clearConntrack(map: BpfMap): number {
  const keys: Buffer[] = [];
  let k = map.nextKey(null);
  while (k) {
    keys.push(k);
    k = map.nextKey(k);
  }
  let n = 0;
  for (const key of keys) if (map.delete(key)) n++;
  return n;
}

/** Rewrites an entry's value (the daemon's re-judging; tests). */
export function writeConntrack(map: BpfMap, entry: ConntrackEntry): void {
  map.update(entry.key, ctCodec.encode(entry.value));
}
