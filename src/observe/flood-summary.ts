// Floods in the human-facing sinks (audit log, stdout): in each second, the first few events of
// a kind (type, direction, protocol, remote address, service port, rule) are written in full and the rest are
// counted, then written as one line "and N more like this in the last second: ...". Past a total
// line budget per second every further event is counted the same way. The events themselves
// still reach every other sink (history, live subscribers) and are counted by the pipeline.
import type { MoatEvent } from "../datapath/event.ts";

export interface FloodLimits {
  /** Events of one kind written in full per window. */
  perKey: number;
  /** Full lines per window, all kinds together. */
  perWindow: number;
  windowMs: number;
}

export const FLOOD_LIMITS: FloodLimits = { perKey: 5, perWindow: 1000, windowMs: 1000 };

/** Kinds tracked in one window; beyond it events are counted as their kind without a line. */
const MAX_KINDS = 65_536;

/** Same type, direction, protocol, remote address, service port (the local one for ingress) and rule. */
const kindOf = (e: MoatEvent) => {
  const ip = (a: string) => (a.includes(":") ? `[${a}]` : a);
  const words =
    e.direction === "ingress"
      ? `from ${ip(e.remote.ip)} to port ${e.local.port}`
      : `to ${ip(e.remote.ip)}:${e.remote.port}`;
  return `${e.type.toUpperCase()} ${e.direction} ${e.protocol} ${words} by rule ${e.rule}`;
};

export class FloodSummary {
  private readonly limits: FloodLimits;
  private readonly write: (line: string) => void;
  private windowStart = 0;
  private lines = 0;
  /** Per kind in this window: events written in full, events counted into its summary. */
  private readonly seen = new Map<string, { full: number; more: number }>();
  /** Counted events of kinds past MAX_KINDS. */
  private others = 0;
  private readonly timer: NodeJS.Timeout;

  /** `write` gets the summary lines, when a window closes. */
  constructor(write: (line: string) => void, limits: FloodLimits = FLOOD_LIMITS) {
    this.write = write;
    this.limits = limits;
    this.timer = setInterval(() => {
      if (Date.now() - this.windowStart >= this.limits.windowMs) this.flush();
    }, limits.windowMs);
    this.timer.unref();
  }

  /** True when the event gets its own line; false when it is counted into a summary. */
  admit(event: MoatEvent): boolean {
    if (Date.now() - this.windowStart >= this.limits.windowMs) this.flush();
    const kind = kindOf(event);
    let entry = this.seen.get(kind);
    if (!entry && this.seen.size < MAX_KINDS) {
      entry = { full: 0, more: 0 };
      this.seen.set(kind, entry);
    }
    const room = this.lines < this.limits.perWindow;
    if (room && (!entry || entry.full < this.limits.perKey)) {
      if (entry) entry.full++;
      this.lines++;
      return true;
    }
    if (entry) entry.more++;
    else this.others++;
    return false;
  }

  /** Writes the summaries of the window so far and starts a new one. */
  flush(): void {
    const at = new Date().toISOString();
    for (const [kind, { more }] of this.seen)
      if (more > 0) this.write(`${at} and ${more} more like this in the last second: ${kind}`);
    if (this.others > 0)
      this.write(`${at} and ${this.others} more events of other kinds in the last second`);
    this.seen.clear();
    this.others = 0;
    this.lines = 0;
    this.windowStart = Date.now();
  }

  close(): void {
    clearInterval(this.timer);
    this.flush();
  }
}
