// Decodes kernel event records (struct moat_event) into moat's event (event.ts).
import {
  event as eventCodec,
  EventType,
  Hook,
  Mode,
  owner as ownerCodec,
  Reason,
  RULE_NONE,
  TcpState,
} from "./abi.ts";
import { formatAddress } from "./address.ts";
import type { KernelOwner, ProcessFacts } from "../attribution/index.ts";
import type { EventKind, EventReason, MoatEvent } from "./event.ts";
import { wallTimeMs, type WallTimeSource } from "./kernel-clock.ts";

const kinds: Record<number, EventKind> = {
  [EventType.allowed]: "allowed",
  [EventType.blocked]: "blocked",
  [EventType.detected]: "detected",
  [EventType.closed]: "closed",
  // the close of a connection whose opening was not reported: for the flow records only
  [EventType.flow]: "flow",
};

const reasons = Object.fromEntries(
  Object.entries(Reason).map(([k, v]) => [v, k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)]),
) as Record<number, EventReason>;

const protocols: Record<number, string> = { 1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6" };

export function protocolName(n: number): string {
  return protocols[n] ?? String(n);
}

/** Kernel times become wall-clock times by the context's clock (kernel-clock.ts). */
export interface DecodeContext extends WallTimeSource {
  /** The rule `index` of policy `generation` (index is MOAT_RULE_NONE before any policy). */
  rule: (index: number, generation: number) => { name: string; reason?: EventReason } | undefined;
  interfaceName: (ifindex: number) => string | null;
  /** The full process facts of a kernel owner (src/attribution); default: what the kernel has. */
  process?: (owner: KernelOwner) => ProcessFacts;
  /** Redirect `index` of policy `generation`. */
  redirect?: (
    index: number,
    generation: number,
  ) => { name: string; ip: string; port: number; via?: { ip: string; port: number } } | null;
}

const hooks: Record<number, MoatEvent["hook"]> = {
  [Hook.xdpIngress]: "xdp",
  [Hook.tcEgress]: "tc",
  [Hook.connect]: "connect",
  [Hook.sendmsg]: "sendmsg",
  [Hook.postRoute]: "post_route",
  [Hook.accept]: "accept",
  [Hook.tcIngress]: "tc",
};

/** The kernel's owner record, or null when no socket hook saw the socket. */
export function decodeOwner(bytes: Buffer): KernelOwner | null {
  // read in place: the DNS proxy and the L7 relay do this per query and per connection
  const O = ownerCodec.fields;
  const pid = bytes.readUInt32LE(O.pid.offset);
  if (pid === 0) return null;
  const at = O.comm.offset;
  const nul = bytes.indexOf(0, at);
  const end = nul < 0 || nul > at + O.comm.bytes ? at + O.comm.bytes : nul;
  const owner: KernelOwner = {
    pid,
    uid: bytes.readUInt32LE(O.uid.offset),
    cgroupId: bytes.readBigUInt64LE(O.cgroup_id.offset),
    comm: bytes.toString("utf8", at, end),
  };
  // the hooks read the executable only when rules need it; 0 = not read
  const exeIno = bytes.readBigUInt64LE(O.exe_ino.offset);
  if (exeIno !== 0n)
    Object.assign(owner, {
      exeIno,
      exeDev: bytes.readUInt32LE(O.exe_dev.offset),
      exeGen: bytes.readUInt32LE(O.exe_gen.offset),
    });
  return owner;
}

const kernelOnly = (o: KernelOwner): ProcessFacts => ({
  pid: o.pid,
  name: o.comm,
  path: "",
  user: o.uid,
  cgroup: "",
  container: null,
});

const verdictOf = (n: number): MoatEvent["verdict"] =>
  n === EventType.allowed ? "allowed" : n === EventType.detected ? "detected" : "blocked";

/** Field offsets of struct moat_event and of its owner (abi.ts, checked against the BTF). */
const F = eventCodec.fields;
const OWNER_AT = F.owner.offset;
const OWNER_PID_AT = OWNER_AT + ownerCodec.fields.pid.offset;

/** floor(u64 / 1e6) of the little-endian u64 at `at`, exactly, without a bigint. */
function u64Millis(buf: Buffer, at: number): number {
  const lo = buf.readUInt32LE(at);
  const hi = buf.readUInt32LE(at + 4);
  // 2^32 = 4294 * 1e6 + 967296; both parts stay below 2^53
  const rest = hi * 967_296 + lo;
  let q = Math.floor(rest / 1e6);
  if (q * 1e6 > rest) q--;
  else if ((q + 1) * 1e6 <= rest) q++;
  return hi * 4294 + q;
}

/** The little-endian u64 at `at` in hex, as bigint.toString(16) writes it. */
function u64Hex(buf: Buffer, at: number): string {
  const lo = buf.readUInt32LE(at);
  const hi = buf.readUInt32LE(at + 4);
  return hi === 0 ? lo.toString(16) : hi.toString(16) + lo.toString(16).padStart(8, "0");
}

/** The connection id in hex; null when untracked (0). */
function connectionId(record: Buffer): string | null {
  const id = u64Hex(record, F.conn_id.offset);
  return id === "0" ? null : id;
}

/** Events come in bursts within the same millisecond: its ISO text is made once. */
let isoMs = Number.NaN;
let isoText = "";
function isoTime(ms: number): string {
  if (ms !== isoMs) {
    isoText = new Date(ms).toISOString();
    isoMs = ms;
  }
  return isoText;
}

/**
 * Local is this host and remote the peer, whichever hook saw the packet. Fields are read in
 * place from the record (at abi.ts's offsets): every event passes here, so no copy of the
 * struct is made, and the owner is read only when a socket hook recorded one.
 */
export function decodeEvent(record: Buffer, ctx: DecodeContext): MoatEvent {
  if (record.length < eventCodec.size)
    throw new RangeError(`an event record of ${record.length} bytes (${eventCodec.size} expected)`);
  const type = record[F.type.offset]!;
  const family = record[F.family.offset]!;
  const protocol = record[F.protocol.offset]!;
  const reasonCode = record[F.reason.offset]!;
  const ruleIndex = record.readUInt32LE(F.rule.offset);
  const generation = record.readUInt32LE(F.generation.offset);
  const ifindex = record.readUInt32LE(F.ifindex.offset);
  const redirect = record.readUInt32LE(F.redirect.offset);
  const owner =
    record.readUInt32LE(OWNER_PID_AT) === 0
      ? null
      : decodeOwner(record.subarray(OWNER_AT, OWNER_AT + ownerCodec.size));
  const judged = ruleIndex === RULE_NONE ? undefined : ctx.rule(ruleIndex, generation);
  const rule =
    ruleIndex !== RULE_NONE
      ? (judged?.name ?? `#${ruleIndex}`)
      : reasonCode === Reason.tcpFlags
        ? "scrub"
        : reasonCode === Reason.udpAmplification || reasonCode === Reason.icmpSize
          ? "flood"
          : "none";
  const reason = reasons[reasonCode] ?? "new";
  const ev: MoatEvent = {
    time: isoTime(wallTimeMs(u64Millis(record, F.ts_ns.offset), ctx)),
    type: kinds[type] ?? "blocked",
    mode: record[F.mode.offset] === Mode.detect ? "detect" : "prevent",
    rule,
    direction: record[F.direction.offset] === 0 ? "ingress" : "egress",
    protocol: protocolName(protocol),
    local: {
      ip: formatAddress(record, family, F.local.offset),
      port: record.readUInt16LE(F.local_port.offset),
    },
    remote: {
      ip: formatAddress(record, family, F.remote.offset),
      port: record.readUInt16LE(F.remote_port.offset),
    },
    interface: ifindex ? ctx.interfaceName(ifindex) : null,
    process: owner ? (ctx.process ?? kernelOnly)(owner) : null,
    layer7: null,
    connection: connectionId(record),
    // a new connection judged by a rule with its own reason (dns:doh) says that one
    reason: reason === "new" && judged?.reason ? judged.reason : reason,
    verdict: verdictOf(record[F.verdict.offset]!),
    hook: hooks[record[F.hook.offset]!] ?? "tc",
    generation,
  };
  if (redirect > 0) {
    const r = ctx.redirect?.(redirect - 1, generation);
    // an unavailable target is where the kernel sends connections: moat's relay, if any
    const to = (reasonCode === Reason.unavailable ? r?.via : undefined) ?? r;
    ev.redirect = {
      name: r?.name ?? `#${redirect - 1}`,
      to: { ip: to?.ip ?? "", port: to?.port ?? 0 },
    };
  }
  if (protocol === 1 || protocol === 58)
    ev.icmp = { type: record[F.icmp_type.offset]!, code: record[F.icmp_code.offset]! };
  // over-limit and invalid-flag reports stand for every packet since the previous one
  if (
    reasonCode === Reason.rateLimit ||
    reasonCode === Reason.tcpFlags ||
    reasonCode === Reason.udpAmplification ||
    reasonCode === Reason.icmpSize
  )
    ev.aggregated = { packets: Number(record.readBigUInt64LE(F.packets.offset)) };
  if (type === EventType.closed || type === EventType.flow) {
    // rare (one per closed connection): the whole struct, its u64s as bigints
    const e = eventCodec.decode(record);
    ev.stats = {
      packets: Number(e.packets),
      bytes: Number(e.bytes),
      durationMs: Number(e.duration_ns / 1000n) / 1000,
    };
  }
  return ev;
}

/** TCP state names, for messages. */
export const tcpStateName = (n: number): string =>
  Object.entries(TcpState).find(([, v]) => v === n)?.[0] ?? String(n);
