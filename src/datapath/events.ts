// Decodes kernel event records into moat's event format (policy-language.md, "Events").
import { event as eventCodec, EventType } from "./abi.ts";
import { formatAddress } from "./address.ts";

export type EventKind = "allowed" | "blocked" | "detected" | "closed";

export interface Endpoint {
  ip: string;
  port: number;
}

export interface MoatEvent {
  time: string;
  type: EventKind;
  mode: "detect" | "prevent";
  rule: string;
  direction: "ingress" | "egress";
  protocol: string;
  local: Endpoint;
  remote: Endpoint;
  interface: string | null;
  process: null;
  layer7: null;
}

const kinds: Record<number, EventKind> = {
  [EventType.allowed]: "allowed",
  [EventType.blocked]: "blocked",
  [EventType.detected]: "detected",
  [EventType.closed]: "closed",
};

const protocols: Record<number, string> = { 1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6" };

export function protocolName(n: number): string {
  return protocols[n] ?? String(n);
}

export interface DecodeContext {
  /** ns since boot -> wall clock: Date.now() - monotonic offset */
  bootTimeMs: number;
  ruleName: (index: number) => string;
  interfaceName: (ifindex: number) => string | null;
  mode: "detect" | "prevent";
}

/** Ingress events (XDP) have the remote as source; egress (TC) as destination. */
export function decodeEvent(record: Buffer, ctx: DecodeContext): MoatEvent {
  const e = eventCodec.decode(record);
  const src = { ip: formatAddress(e.saddr, e.family), port: e.sport };
  const dst = { ip: formatAddress(e.daddr, e.family), port: e.dport };
  const ingress = e.hook === 1;
  return {
    time: new Date(ctx.bootTimeMs + Number(e.ts_ns / 1_000_000n)).toISOString(),
    type: kinds[e.type] ?? "blocked",
    mode: ctx.mode,
    rule: ctx.ruleName(e.rule),
    direction: ingress ? "ingress" : "egress",
    protocol: protocolName(e.protocol),
    local: ingress ? dst : src,
    remote: ingress ? src : dst,
    interface: ctx.interfaceName(e.ifindex),
    process: null,
    layer7: null,
  };
}

/** The audit-log line: the event in words. */
export function formatEventLine(ev: MoatEvent): string {
  const ep = (p: Endpoint) => (p.ip.includes(":") ? `[${p.ip}]:${p.port}` : `${p.ip}:${p.port}`);
  const [from, to] = ev.direction === "ingress" ? [ev.remote, ev.local] : [ev.local, ev.remote];
  const on = ev.interface ? ` on ${ev.interface}` : "";
  return `${ev.time} ${ev.type.toUpperCase()} ${ev.direction} ${ev.protocol} ${ep(from)} -> ${ep(to)}${on} by rule ${ev.rule}`;
}
