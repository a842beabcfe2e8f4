// moat's event: what every sink (stdout, audit log, history, API subscribers, OpenTelemetry,
// publishers) receives for a connection's verdict and its close, and its one-line form (the
// audit log's and the daemon's output). The kernel's records are decoded
// into it (events.ts). Fields are added, never renamed or given another meaning.
import type { ProcessFacts } from "../attribution/types.ts";

export type EventKind = "allowed" | "blocked" | "detected" | "closed";
export type EventReason =
  | "new"
  | "rejudged"
  | "untracked"
  | "fin"
  | "rst"
  | "max_duration"
  | "redirected"
  /** a redirect's target did not listen; `redirect` names it (failure.helper decided) */
  | "unavailable";

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
  /** The local socket's owner, when a socket hook saw it (else null). */
  process: ProcessFacts | null;
  layer7: null;
  /** Connection id (hex), the same for a connection's verdict and its close; null if untracked. */
  connection: string | null;
  /** Why the event was sent: a new connection, a reload changed its verdict, or how it closed. */
  reason: EventReason;
  /** The connection's verdict (for "closed": the verdict it had). */
  verdict: "allowed" | "blocked" | "detected";
  /** icmp / icmpv6 type and code of the connection's first packet. */
  icmp?: { type: number; code: number };
  /** closed: both directions, first packet to last. */
  stats?: { packets: number; bytes: number; durationMs: number };
  /**
   * The hook that caused the event: a packet (xdp, tc), a socket call (connect, sendmsg), the
   * post-route check of a connection's first packet (post_route: judged by the real interface),
   * or a local socket receiving a new connection (accept).
   */
  hook: "xdp" | "tc" | "connect" | "sendmsg" | "post_route" | "accept";
  /** Policy generation that judged the connection. */
  generation: number;
  /** Sent to a proxy by this redirect (docs/redirect.md); local/remote are what the client asked. */
  redirect?: { name: string; to: Endpoint };
}

/** The audit-log line: the event in words. */
export function formatEventLine(ev: MoatEvent): string {
  const ep = (p: Endpoint) => (p.ip.includes(":") ? `[${p.ip}]:${p.port}` : `${p.ip}:${p.port}`);
  const [from, to] = ev.direction === "ingress" ? [ev.remote, ev.local] : [ev.local, ev.remote];
  const on = ev.interface ? ` on ${ev.interface}` : "";
  const line = `${ev.time} ${ev.type.toUpperCase()} ${ev.direction} ${ev.protocol} ${ep(from)} -> ${ep(to)}${on} by rule ${ev.rule}`;
  if (ev.type === "closed" && ev.stats) {
    const reason = ev.reason.replace("_", " ");
    const s = ev.stats;
    const who = ev.process ? ` (${ev.process.name} pid ${ev.process.pid})` : "";
    return `${line}${who} (${reason}, ${s.packets} packets, ${s.bytes} bytes, ${(s.durationMs / 1000).toFixed(1)} s)`;
  }
  const who = ev.process ? ` (${ev.process.name} pid ${ev.process.pid})` : "";
  if (ev.reason === "rejudged") return `${line}${who} (policy reloaded)`;
  if (ev.redirect && ev.reason === "unavailable")
    return `${line}${who}, redirect ${ev.redirect.name}: ${ep(ev.redirect.to)} is unavailable`;
  if (ev.redirect)
    return `${line}${who}, redirected to ${ep(ev.redirect.to)} by redirect ${ev.redirect.name}`;
  // judged by the interface the packet really left by, not the route mirror's
  if (ev.hook === "post_route") return `${line}${who} (after routing)`;
  return line + who;
}
