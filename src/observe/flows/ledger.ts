// Turns what the kernel tells about connections into flow records, each connection's packets
// and bytes counted once: its close record (fin, rst, max_duration: every judged connection's,
// from the ring buffer) and periodic scans of the connection table, which report what live
// connections did since their last record, and end those whose entry expired or went away
// (an idle udp flow, an lru eviction) without a close record.
import type { MoatEvent } from "../../datapath/event.ts";
import type { FlowConnection, FlowEnd, FlowRecord } from "./record.ts";

/** A connection-table entry as a scan sees it. */
export interface LiveConnection {
  /** Connection id (hex), as events name it. */
  id: string;
  /** The kernel sent its close record: that record ends it. */
  closeSent: boolean;
  /** Idle past its timeout: the kernel no longer uses the entry. */
  expired: boolean;
  /** Both directions, since the connection's first packet. */
  packets: number;
  bytes: number;
  /** First packet to last. */
  durationMs: number;
  /** Its facts (rule name, process, names): read only for a connection not seen before. */
  connection(): FlowConnection;
}

interface Seen {
  packets: number;
  bytes: number;
  durationMs: number;
  connection: FlowConnection;
}

const END_OF: Partial<Record<MoatEvent["reason"], FlowEnd>> = {
  fin: "fin",
  rst: "rst",
  max_duration: "max_duration",
};

export class FlowLedger {
  readonly #add: (r: FlowRecord) => void;
  /** Connections a scan reported, with what was reported. */
  readonly #seen = new Map<string, Seen>();
  /** Connections ended by expiry whose entries are still in the table. */
  #ended = new Set<string>();

  constructor(add: (r: FlowRecord) => void) {
    this.#add = add;
  }

  /** Connections a scan has reported that have not ended. */
  get open(): number {
    return this.#seen.size;
  }

  /** A close record from the kernel (a "closed" event, or a "flow" one for an unreported
   * opening): the connection's totals in `stats`. */
  closed(ev: MoatEvent, timeMs = Date.parse(ev.time)): void {
    const stats = ev.stats;
    if (!stats) return;
    const id = ev.connection;
    if (id !== null && this.#ended.has(id)) return;
    const prev = id === null ? undefined : this.#seen.get(id);
    if (id !== null) this.#seen.delete(id);
    const connection: FlowConnection = {
      mode: ev.mode,
      rule: ev.rule,
      direction: ev.direction,
      protocol: ev.protocol,
      local: ev.local,
      remote: ev.remote,
      interface: ev.interface,
      process: ev.process,
      verdict: ev.verdict,
      hook: ev.hook,
      generation: ev.generation,
    };
    this.#add({
      timeMs,
      connection: prev?.connection ?? connection,
      packets: Math.max(0, stats.packets - (prev?.packets ?? 0)),
      bytes: Math.max(0, stats.bytes - (prev?.bytes ?? 0)),
      durationMs: stats.durationMs,
      first: !prev,
      end: END_OF[ev.reason] ?? "fin",
    });
  }

  /** One pass over the connection table at `timeMs`. */
  scan(entries: Iterable<LiveConnection>, timeMs = Date.now()): void {
    const pass = this.startScan(timeMs);
    pass.see(entries);
    pass.end();
  }

  /**
   * A pass over the table given a page at a time (see each, then end), so a caller may let
   * other work run between pages.
   */
  startScan(timeMs = Date.now()): { see(entries: Iterable<LiveConnection>): void; end(): void } {
    const present = new Set<string>();
    return {
      see: (entries) => {
        for (const e of entries) {
          present.add(e.id);
          this.#see(e, timeMs);
        }
      },
      end: () => this.#endScan(present, timeMs),
    };
  }

  #see(e: LiveConnection, timeMs: number): void {
    if (e.closeSent || this.#ended.has(e.id)) return;
    const prev = this.#seen.get(e.id);
    const packets = e.packets - (prev?.packets ?? 0);
    const bytes = e.bytes - (prev?.bytes ?? 0);
    if (prev && !e.expired && packets <= 0 && bytes <= 0) return;
    const connection = prev?.connection ?? e.connection();
    this.#add({
      timeMs,
      connection,
      packets: Math.max(0, packets),
      bytes: Math.max(0, bytes),
      durationMs: e.durationMs,
      first: !prev,
      end: e.expired ? "expired" : "open",
    });
    if (e.expired) {
      this.#seen.delete(e.id);
      this.#ended.add(e.id);
    } else {
      this.#seen.set(e.id, {
        packets: e.packets,
        bytes: e.bytes,
        durationMs: e.durationMs,
        connection,
      });
    }
  }

  /** Gone from the table without a close record: evicted, or deleted. */
  #endScan(present: Set<string>, timeMs: number): void {
    for (const [id, prev] of this.#seen) {
      if (present.has(id)) continue;
      this.#seen.delete(id);
      this.#add({
        timeMs,
        connection: prev.connection,
        packets: 0,
        bytes: 0,
        durationMs: prev.durationMs,
        first: false,
        end: "evicted",
      });
    }
    this.#ended = new Set([...this.#ended].filter((id) => present.has(id)));
  }
}
