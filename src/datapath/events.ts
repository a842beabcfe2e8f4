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

const kinds: Record<number, EventKind> = {
  [EventType.allowed]: "allowed",
  [EventType.blocked]: "blocked",
  [EventType.detected]: "detected",
  [EventType.closed]: "closed",
};

const reasons = Object.fromEntries(
  Object.entries(Reason).map(([k, v]) => [v, k === "maxDuration" ? "max_duration" : k]),
) as Record<number, EventReason>;

const protocols: Record<number, string> = { 1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6" };

export function protocolName(n: number): string {
  return protocols[n] ?? String(n);
}

export interface DecodeContext {
  /** ns since boot -> wall clock: Date.now() - monotonic offset */
  bootTimeMs: number;
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
  const o = ownerCodec.decode(bytes);
  if (o.pid === 0) return null;
  const end = o.comm.indexOf(0);
  const comm = o.comm.subarray(0, end < 0 ? o.comm.length : end).toString("utf8");
  const owner: KernelOwner = { pid: o.pid, uid: o.uid, cgroupId: o.cgroup_id, comm };
  // the hooks read the executable only when rules need it; 0 = not read
  if (o.exe_ino !== 0n) Object.assign(owner, { exeIno: o.exe_ino, exeDev: o.exe_dev });
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

/** Local is this host and remote the peer, whichever hook saw the packet. */
export function decodeEvent(record: Buffer, ctx: DecodeContext): MoatEvent {
  const e = eventCodec.decode(record);
  const owner = decodeOwner(e.owner);
  const judged = e.rule === RULE_NONE ? undefined : ctx.rule(e.rule, e.generation);
  const rule = e.rule === RULE_NONE ? "none" : (judged?.name ?? `#${e.rule}`);
  const reason = reasons[e.reason] ?? "new";
  const ev: MoatEvent = {
    time: new Date(ctx.bootTimeMs + Number(e.ts_ns / 1_000_000n)).toISOString(),
    type: kinds[e.type] ?? "blocked",
    mode: e.mode === Mode.detect ? "detect" : "prevent",
    rule,
    direction: e.direction === 0 ? "ingress" : "egress",
    protocol: protocolName(e.protocol),
    local: { ip: formatAddress(e.local, e.family), port: e.local_port },
    remote: { ip: formatAddress(e.remote, e.family), port: e.remote_port },
    interface: e.ifindex ? ctx.interfaceName(e.ifindex) : null,
    process: owner ? (ctx.process ?? kernelOnly)(owner) : null,
    layer7: null,
    connection: e.conn_id === 0n ? null : e.conn_id.toString(16),
    // a new connection judged by a rule with its own reason (dns:doh) says that one
    reason: reason === "new" && judged?.reason ? judged.reason : reason,
    verdict: verdictOf(e.verdict),
    hook: hooks[e.hook] ?? "tc",
    generation: e.generation,
  };
  if (e.redirect > 0) {
    const r = ctx.redirect?.(e.redirect - 1, e.generation);
    // an unavailable target is where the kernel sends connections: moat's relay, if any
    const to = (e.reason === Reason.unavailable ? r?.via : undefined) ?? r;
    ev.redirect = {
      name: r?.name ?? `#${e.redirect - 1}`,
      to: { ip: to?.ip ?? "", port: to?.port ?? 0 },
    };
  }
  if (e.protocol === 1 || e.protocol === 58) ev.icmp = { type: e.icmp_type, code: e.icmp_code };
  if (e.type === EventType.closed) {
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
