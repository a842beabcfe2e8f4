// Floods in the human-facing sinks (audit log, stdout): in each second, the first few events of
// a kind (type, direction, protocol, remote address, service port, rule) are written in full and the rest are
// counted, then written as one line "and N more like this in the last second: ...". Past a total
// line budget per second every further event is counted the same way. The events themselves
// still reach every other sink (history, live subscribers) and are counted by the pipeline.
import { lineField, type MoatEvent } from "../datapath/event.ts";

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
interface Kind {
  type: string;
  direction: string;
  protocol: string;
  ip: string;
  port: number;
  rule: string;
  /** Events written in full, events counted into its summary, in this window. */
  full: number;
  more: number;
  /** Another kind of the same remote address and port. */
  next: Kind | null;
}

/** The service port: the local one of an ingress event, the remote one of an egress one. */
const portOf = (e: MoatEvent) => (e.direction === "ingress" ? e.local.port : e.remote.port);

/** A kind as its summary line says it. */
function kindText(k: Kind): string {
  const ip = (a: string) => lineField(a.includes(":") ? `[${a}]` : a);
  const words =
    k.direction === "ingress" ? `from ${ip(k.ip)} to port ${k.port}` : `to ${ip(k.ip)}:${k.port}`;
  return `${k.type.toUpperCase()} ${k.direction} ${k.protocol} ${words} by rule ${lineField(k.rule)}`;
}

export class FloodSummary {
  private readonly limits: FloodLimits;
  private readonly write: (line: string) => void;
  private readonly written: () => void;
  private windowStart = 0;
  private lines = 0;
  /**
   * The kinds seen in this window by remote address, then port (the kinds of one address and
   * port chained: they differ only in rule, type, direction or protocol), and in the order first
   * seen, the order of the summaries: found without making a text of the event's kind. Keyed by
   * both, so neither a scan of many ports from one source nor a flood from many sources to one
   * port makes an event walk a long chain.
   */
  private readonly byRemote = new Map<string, Map<number, Kind>>();
  private kinds: Kind[] = [];
  /** Counted events of kinds past MAX_KINDS. */
  private others = 0;
  private readonly timer: NodeJS.Timeout;

  /**
   * `write` gets the summary lines, when a window closes; `written` is told once after a window's
   * lines, if it had any (a flood of many kinds ends a window with thousands of lines: one write
   * of them to the audit log, not one each).
   */
  constructor(
    write: (line: string) => void,
    limits: FloodLimits = FLOOD_LIMITS,
    written: () => void = () => {},
  ) {
    this.write = write;
    this.written = written;
    this.limits = limits;
    this.timer = setInterval(() => {
      if (Date.now() - this.windowStart >= this.limits.windowMs) this.flush();
    }, limits.windowMs);
    this.timer.unref();
  }

  /** True when the event gets its own line; false when it is counted into a summary. */
  admit(event: MoatEvent): boolean {
    if (Date.now() - this.windowStart >= this.limits.windowMs) this.flush();
    const entry = this.kindOf(event);
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

  /** The event's kind in this window, added if new; null past MAX_KINDS. */
  private kindOf(e: MoatEvent): Kind | null {
    const ip = e.remote.ip;
    const port = portOf(e);
    let byPort = this.byRemote.get(ip);
    const first = byPort?.get(port) ?? null;
    for (let k = first; k; k = k.next)
      if (
        k.type === e.type &&
        k.rule === e.rule &&
        k.direction === e.direction &&
        k.protocol === e.protocol
      )
        return k;
    if (this.kinds.length >= MAX_KINDS) return null;
    const kind: Kind = {
      type: e.type,
      direction: e.direction,
      protocol: e.protocol,
      ip,
      port,
      rule: e.rule,
      full: 0,
      more: 0,
      next: first,
    };
    if (!byPort) this.byRemote.set(ip, (byPort = new Map()));
    byPort.set(port, kind);
    this.kinds.push(kind);
    return kind;
  }

  /** Writes the summaries of the window so far and starts a new one. */
  flush(): void {
    const at = new Date().toISOString();
    let lines = 0;
    for (const kind of this.kinds)
      if (kind.more > 0) {
        this.write(`${at} and ${kind.more} more like this in the last second: ${kindText(kind)}`);
        lines++;
      }
    if (this.others > 0) {
      this.write(`${at} and ${this.others} more events of other kinds in the last second`);
      lines++;
    }
    if (lines > 0) this.written();
    this.byRemote.clear();
    this.kinds = [];
    this.others = 0;
    this.lines = 0;
    this.windowStart = Date.now();
  }

  close(): void {
    clearInterval(this.timer);
    this.flush();
  }
}
