// Flows for the web console's live view: events folded into rows keyed by (identity, remote,
// port, protocol, verdict, rule) with counts and the time last seen, and the rows changed since
// the last delta. At any event rate the browser gets at most one delta per interval, sized by
// the rows that changed, never by the events.
import type { MoatEvent } from "../datapath/event.ts";

/** One aggregated flow, as the live view shows it (docs/api.md "Flows"). */
export interface FlowRow {
  id: number;
  /** Who on this host: the container's name and process, the process, or "-" when unknown. */
  identity: string;
  process: string | null;
  /** The process's executable, when known. */
  path: string | null;
  container: string | null;
  direction: MoatEvent["direction"];
  /** The remote address. */
  remote: string;
  /** Names the process learned for the remote from DNS, newest set seen. */
  names: string[];
  /** The service port: the remote's for egress, the local one for ingress. */
  port: number;
  /** The local address of the last event (for explain). */
  local: string;
  protocol: string;
  verdict: MoatEvent["verdict"];
  rule: string;
  /** Events per type. */
  types: Partial<Record<MoatEvent["type"], number>>;
  count: number;
  /** ISO time of the last event. */
  lastSeen: string;
  /** Layer-7 name of the last event (SNI, HTTP host, DNS query), if any. */
  l7name?: string;
}

export interface FlowDelta {
  /** Rows new or changed since the last delta. */
  rows: FlowRow[];
  /** Ids of rows evicted (the table holds at most maxFlows). */
  removed: number[];
  /** Events folded in so far, and rows held. */
  events: number;
  flows: number;
}

export const MAX_FLOWS = 2000;
/** Rows per delta at most: a flood of new flows reaches the browser a slice at a time. */
export const MAX_DELTA_ROWS = 100;

export class FlowAggregator {
  /** In order of last update: the first is the least recently seen. */
  private readonly rows = new Map<string, FlowRow>();
  private readonly dirty = new Set<FlowRow>();
  private removed: number[] = [];
  private nextId = 1;
  private events = 0;
  private readonly maxFlows: number;

  constructor(maxFlows = MAX_FLOWS) {
    this.maxFlows = maxFlows;
  }

  get size(): number {
    return this.rows.size;
  }

  add(e: MoatEvent): void {
    this.events++;
    const p = e.process;
    const container = p?.container ? p.container.name || p.container.id.slice(0, 12) : null;
    const identity = container ? `${container}/${p?.name ?? "-"}` : (p?.name ?? "-");
    const port = e.direction === "egress" ? e.remote.port : e.local.port;
    const key = `${identity}\0${e.remote.ip}\0${port}\0${e.protocol}\0${e.verdict}\0${e.rule}`;
    let row = this.rows.get(key);
    if (row) {
      this.rows.delete(key); // re-inserted below: the map stays in order of last update
    } else {
      row = {
        id: this.nextId++,
        identity,
        process: p?.name ?? null,
        path: p?.path || null,
        container,
        direction: e.direction,
        remote: e.remote.ip,
        names: [],
        port,
        local: e.local.ip,
        protocol: e.protocol,
        verdict: e.verdict,
        rule: e.rule,
        types: {},
        count: 0,
        lastSeen: e.time,
      };
    }
    this.rows.set(key, row);
    row.count++;
    row.types[e.type] = (row.types[e.type] ?? 0) + 1;
    row.lastSeen = e.time;
    row.local = e.local.ip;
    if (e.remote.names?.length) row.names = e.remote.names;
    const l7 = e.layer7;
    const l7name = l7?.tls?.sni ?? l7?.http?.host ?? l7?.dns?.name ?? e.dns?.query;
    if (l7name) row.l7name = l7name;
    this.dirty.add(row);
    if (this.rows.size > this.maxFlows) this.evictOldest();
  }

  /** Every row held, oldest update first (a new subscriber's first message). */
  snapshot(): FlowDelta {
    return {
      rows: [...this.rows.values()],
      removed: [],
      events: this.events,
      flows: this.rows.size,
    };
  }

  /**
   * The rows changed (at most maxRows, longest waiting first; the rest stay for the next call)
   * and removed since the last call; null when nothing changed.
   */
  drain(maxRows = MAX_DELTA_ROWS): FlowDelta | null {
    if (this.dirty.size === 0 && this.removed.length === 0) return null;
    const rows: FlowRow[] = [];
    for (const row of this.dirty) {
      if (rows.length >= maxRows) break;
      rows.push(row);
    }
    for (const row of rows) this.dirty.delete(row);
    const delta = { rows, removed: this.removed, events: this.events, flows: this.rows.size };
    this.removed = [];
    return delta;
  }

  private evictOldest(): void {
    const first = this.rows.entries().next().value;
    if (!first) return;
    const [key, row] = first;
    this.rows.delete(key);
    this.dirty.delete(row);
    // a row no delta carried yet is unknown to the browser, which ignores the id
    this.removed.push(row.id);
  }
}
