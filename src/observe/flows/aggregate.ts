// Flow records added up over a window before they reach the history: one summary per identity,
// peer, port, protocol, direction, verdict and rule, so a flood of short connections costs a
// bounded number of rows. Past `maxKeys` distinct keys in a window, records are added to one
// overflow summary per verdict (peer "*", identity unknown) and counted.
import { identityOf, peerOf, serverPort, type FlowRecord, type FlowSummary } from "./record.ts";

export const DEFAULT_MAX_KEYS = 10_000;

/** Flow records and bytes by verdict, since start: the metrics' counters. */
export type FlowCounters = Record<
  "allowed" | "blocked" | "detected",
  { records: number; bytes: number }
>;

export class FlowAggregator {
  readonly #maxKeys: number;
  #window = new Map<string, FlowSummary>();
  /** Records added to an overflow summary since start. */
  overflowed = 0;
  readonly counters: FlowCounters = {
    allowed: { records: 0, bytes: 0 },
    blocked: { records: 0, bytes: 0 },
    detected: { records: 0, bytes: 0 },
  };

  constructor(options: { maxKeys?: number } = {}) {
    this.#maxKeys = options.maxKeys ?? DEFAULT_MAX_KEYS;
  }

  add(r: FlowRecord): void {
    const c = r.connection;
    const id = identityOf(c);
    let key = JSON.stringify([
      id.exe,
      id.user,
      id.cgroup,
      id.container,
      peerOf(c),
      c.local.ip,
      serverPort(c),
      c.protocol,
      c.direction,
      c.verdict,
      c.rule,
      c.mode,
    ]);
    let s = this.#window.get(key);
    if (!s && this.#window.size >= this.#maxKeys) {
      this.overflowed++;
      key = `*${c.verdict}`;
      s = this.#window.get(key);
      if (!s) {
        const connection = {
          ...c,
          process: null,
          rule: "*",
          local: { ip: "", port: 0 },
          remote: { ip: "*", port: 0 },
        };
        this.#window.set(key, { ...summaryOf(r), connection });
      }
    } else if (!s) {
      this.#window.set(key, summaryOf(r));
    }
    if (s) {
      s.connections += r.first ? 1 : 0;
      s.packets += r.packets;
      s.bytes += r.bytes;
      if (r.end !== "open") {
        s.closed += 1;
        s.durationMsSum += r.durationMs;
        s.durationMsMax = Math.max(s.durationMsMax, r.durationMs);
      }
      s.firstMs = Math.min(s.firstMs, r.timeMs);
      s.lastMs = Math.max(s.lastMs, r.timeMs);
    }
    const n = this.counters[c.verdict];
    n.records += 1;
    n.bytes += r.bytes;
  }

  /** Distinct summaries in the window. */
  get size(): number {
    return this.#window.size;
  }

  /** The window's summaries; the next window starts empty. */
  flush(): FlowSummary[] {
    const out = [...this.#window.values()];
    this.#window = new Map();
    return out;
  }
}

function summaryOf(r: FlowRecord): FlowSummary {
  const ended = r.end !== "open";
  return {
    connection: r.connection,
    connections: r.first ? 1 : 0,
    closed: ended ? 1 : 0,
    packets: r.packets,
    bytes: r.bytes,
    durationMsSum: ended ? r.durationMs : 0,
    durationMsMax: ended ? r.durationMs : 0,
    firstMs: r.timeMs,
    lastMs: r.timeMs,
  };
}
