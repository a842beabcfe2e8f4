// A flow record: what one connection did since its last record (at its close, when its entry
// expired or was evicted, or on a periodic flush while it lives), and a flow summary: the
// records of one window with the same identity, peer, port, protocol, direction, verdict and
// rule, added up. Summaries are what the history stores (type "flow" events and the roll-ups).
import type { FlowTotals, MoatEvent } from "../../datapath/event.ts";

export type { FlowTotals };

/** Why a record was made. */
export type FlowEnd = "fin" | "rst" | "max_duration" | "expired" | "evicted" | "open";

/** The connection a record is about: a closed event's fields, without stats. */
export type FlowConnection = Pick<
  MoatEvent,
  | "mode"
  | "rule"
  | "direction"
  | "protocol"
  | "local"
  | "remote"
  | "interface"
  | "process"
  | "verdict"
  | "hook"
  | "generation"
>;

export interface FlowRecord {
  /** ms since the epoch. */
  timeMs: number;
  connection: FlowConnection;
  /** Packets and bytes (both ways) since this connection's previous record. */
  packets: number;
  bytes: number;
  /** The connection's age (first packet to last) at this record. */
  durationMs: number;
  /** The connection's first record: it counts as a connection. */
  first: boolean;
  /** The connection's last record (closed, expired or evicted); "open": a periodic one. */
  end: FlowEnd;
}

export interface FlowSummary extends FlowTotals {
  connection: FlowConnection;
}

/** Who owns the connection, as the statistics key it: executable (else comm), user, cgroup,
 * container (name, else id). */
export interface FlowIdentity {
  exe: string;
  /** uid; -1 when no socket hook saw the socket. */
  user: number;
  cgroup: string;
  container: string;
}

export function identityOf(c: Pick<FlowConnection, "process">): FlowIdentity {
  const p = c.process;
  if (!p) return { exe: "", user: -1, cgroup: "", container: "" };
  return {
    exe: p.path || p.name,
    user: p.user,
    cgroup: p.cgroup,
    container: p.container ? p.container.name || p.container.id : "",
  };
}

/**
 * Whether the identity's `exe` is the process's name (comm), its executable unknown (it exited
 * before moat read it): a name any process chooses, a slash included, so never read as a path.
 */
export function nameOnly(c: Pick<FlowConnection, "process">): boolean {
  const p = c.process;
  return !!p && !p.path && !!p.name;
}

/** The peer as statistics name it: its first DNS name where moat knows one, else its address. */
export function peerOf(c: Pick<FlowConnection, "remote">): string {
  return c.remote.names?.[0] ?? c.remote.ip;
}

/** The server port: the local one of an ingress connection, the remote one of an egress one. */
export function serverPort(c: Pick<FlowConnection, "direction" | "local" | "remote">): number {
  return c.direction === "ingress" ? c.local.port : c.remote.port;
}

/** A summary as a history event (type "flow"): the client's port is 0, the totals in `flow`. */
export function flowEvent(s: FlowSummary): MoatEvent {
  const c = s.connection;
  const client = (p: MoatEvent["local"]) => ({ ...p, port: 0 });
  const totals: FlowTotals = {
    connections: s.connections,
    closed: s.closed,
    packets: s.packets,
    bytes: s.bytes,
    durationMsSum: s.durationMsSum,
    durationMsMax: s.durationMsMax,
    firstMs: s.firstMs,
    lastMs: s.lastMs,
  };
  return {
    time: new Date(s.lastMs).toISOString(),
    type: "flow",
    mode: c.mode,
    rule: c.rule,
    direction: c.direction,
    protocol: c.protocol,
    local: c.direction === "ingress" ? c.local : client(c.local),
    remote: c.direction === "egress" ? c.remote : client(c.remote),
    interface: c.interface,
    process: c.process,
    layer7: null,
    connection: null,
    reason: "summary",
    verdict: c.verdict,
    hook: c.hook,
    generation: c.generation,
    stats: { packets: s.packets, bytes: s.bytes, durationMs: s.durationMsMax },
    flow: totals,
  };
}
