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

/** Whether the kernel no longer uses the entry at `nowNs` (CLOCK_MONOTONIC): idle too long. */
export function conntrackExpired(
  e: Pick<ConntrackEntry, "protocol" | "tcpState" | "flags" | "lastNs">,
  nowNs: bigint,
  t: Record<keyof typeof CONNTRACK_TIMEOUTS, number> = CONNTRACK_TIMEOUTS,
): boolean {
  let s: number;
  if (e.protocol === 6) {
    if (e.flags & CtFlag.cut) s = t.tcpFin;
    else if (e.tcpState === "synSent" || e.tcpState === "synRecv") s = t.tcpSyn;
    else if (e.tcpState === "finWait") s = t.tcpFin;
    else if (e.tcpState === "timeWait" || e.tcpState === "closed") s = t.tcpClose;
    else s = t.tcpEstablished;
  } else if (e.protocol === 17) s = t.udp;
  else if (e.protocol === 1 || e.protocol === 58) s = t.icmp;
  else s = t.other;
  return nowNs > e.lastNs && nowNs - e.lastNs > BigInt(s) * 1_000_000_000n;
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
