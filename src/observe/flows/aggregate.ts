// Flow records added up over a window before they reach the history: one summary per identity,
// peer, port, protocol, direction, verdict and rule, so a flood of short connections costs a
// bounded number of rows. Past `maxKeys` distinct keys in a window, records are added to one
// overflow summary per verdict (peer "*", identity unknown) and counted.
import type { FlowRecord, FlowSummary } from "./record.ts";
import { sameFields, SummaryKeys, type KeyFields } from "./summary-keys.ts";

export const DEFAULT_MAX_KEYS = 10_000;

/** Flow records and bytes by verdict, since start: the metrics' counters. */
export type FlowCounters = Record<
  "allowed" | "blocked" | "detected",
  { records: number; bytes: number }
>;

/** A summary of the window under its key; summaries whose keys hash alike are chained. */
interface Keyed {
  fields: KeyFields;
  summary: FlowSummary;
  next: Keyed | undefined;
}

export class FlowAggregator {
  readonly #maxKeys: number;
  readonly #keys = new SummaryKeys();
  /** The window's summaries by their key's hash. */
  #window = new Map<number, Keyed>();
  /** Overflow summaries by verdict. */
  #overflow = new Map<string, FlowSummary>();
  /** The window's summaries in the order they were made. */
  #summaries: FlowSummary[] = [];
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
    const full = this.#summaries.length >= this.#maxKeys;
    // a full window takes no new key: strings not numbered yet are in no summary
    const fields = this.#keys.scratch;
    const hash = this.#keys.fieldsOf(c, !full, fields);
    let s = this.#find(hash, fields);
    if (!s && full) {
      this.overflowed++;
      s = this.#overflow.get(c.verdict);
      if (!s) {
        const connection = {
          ...c,
          process: null,
          rule: "*",
          local: { ip: "", port: 0 },
          remote: { ip: "*", port: 0 },
        };
        const summary = { ...summaryOf(r), connection };
        this.#summaries.push(summary);
        this.#overflow.set(c.verdict, summary);
      }
    } else if (!s) {
      const summary = summaryOf(r);
      this.#summaries.push(summary);
      this.#window.set(hash, {
        fields: fields.slice(),
        summary,
        next: this.#window.get(hash),
      });
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
    return this.#summaries.length;
  }

  /** The window's summaries; the next window starts empty. */
  flush(): FlowSummary[] {
    const out = this.#summaries;
    this.#summaries = [];
    this.#window = new Map();
    this.#overflow = new Map();
    this.#keys.trim();
    return out;
  }

  #find(hash: number, fields: KeyFields): FlowSummary | undefined {
    for (let k = this.#window.get(hash); k; k = k.next)
      if (sameFields(k.fields, fields)) return k.summary;
    return undefined;
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
