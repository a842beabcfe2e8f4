// Repeated detections and floods, summarised for the human-readable outputs (stdout, the audit
// log). Repeated detections: the
// first detection of a kind is printed in full; repeats within the window (the same rule,
// direction, protocol, client address, server address and port, and process name; the client
// port changes every time) are counted and reported in one line when the window ends. Every event
// still reaches the history, the API's subscribers and the counters; only these lines are folded.
import type { Endpoint, MoatEvent } from "../datapath/event.ts";
import { formatEventLine, lineField } from "../datapath/event.ts";
import { FloodSummary, FLOOD_LIMITS, type FloodLimits } from "./flood-summary.ts";

export interface RepeatSummary {
  /** The line to print for `event` now, or null when it repeats one printed within the window. */
  line(event: MoatEvent): string | null;
  /** "... and N more like this" lines for the windows that ended by `now`. */
  due(now?: number): string[];
  /** The same for everything still counted (on close). */
  flush(now?: number): string[];
}

/** Kinds of repeats tracked at once; past this, new kinds are printed in full. */
const MAX_KINDS = 10_000;

interface Seen {
  first: number;
  repeats: number;
  what: string;
}

/** "DETECTED egress tcp 10.0.0.1 -> 198.51.100.7:443 on eth0 by rule web (curl)". */
function describe(ev: MoatEvent): string {
  const ip = (p: Endpoint) => (p.ip.includes(":") ? `[${p.ip}]` : p.ip);
  const ep = (p: Endpoint) => `${ip(p)}:${p.port}`;
  const [client, server] =
    ev.direction === "ingress" ? [ev.remote, ev.local] : [ev.local, ev.remote];
  const on = ev.interface ? ` on ${lineField(ev.interface)}` : "";
  const who = ev.process ? ` (${lineField(ev.process.name)})` : "";
  return `${ev.type.toUpperCase()} ${ev.direction} ${ev.protocol} ${lineField(ip(client))} -> ${lineField(ep(server))}${on} by rule ${lineField(ev.rule)}${who}`;
}

export function repeatSummary(windowMs = 60_000): RepeatSummary {
  const seen = new Map<string, Seen>();
  /** Summaries of windows a new event of the same kind closed, before due() ran. */
  let ended: string[] = [];
  const report = (s: Seen, now: number, seconds: number) =>
    `${new Date(now).toISOString()} ... and ${s.repeats} more like this in the last ${seconds} s: ${s.what}`;
  return {
    line(ev) {
      if (ev.type !== "detected") return formatEventLine(ev);
      const what = describe(ev);
      const time = Date.parse(ev.time);
      const s = seen.get(what);
      if (s && time - s.first < windowMs) {
        s.repeats++;
        return null;
      }
      if (s && s.repeats > 0) ended.push(report(s, time, Math.round(windowMs / 1000)));
      if (s || seen.size < MAX_KINDS) seen.set(what, { first: time, repeats: 0, what });
      return formatEventLine(ev);
    },
    due(now = Date.now()) {
      const out = ended;
      ended = [];
      for (const [key, s] of seen) {
        if (now - s.first < windowMs) continue;
        seen.delete(key);
        if (s.repeats > 0) out.push(report(s, now, Math.round(windowMs / 1000)));
      }
      return out;
    },
    flush(now = Date.now()) {
      const out = ended;
      ended = [];
      for (const s of seen.values())
        if (s.repeats > 0)
          out.push(report(s, now, Math.max(1, Math.round((now - s.first) / 1000))));
      seen.clear();
      return out;
    },
  };
}

/** How often ended windows are reported. */
const REPORT_MS = 5000;

export interface FoldedLines {
  /** Prints each event's line (repeats and floods folded), as formatEventLine escaped it. */
  write(batch: readonly MoatEvent[]): void;
  /** Reports what is still counted and stops the timers. */
  close(): void;
}

export interface FoldedOutput {
  /** Where the lines go. */
  emit: (line: string) => void;
  /** Called after summary lines written between batches (by a timer). */
  flush?: () => void;
  /** How long a repeated detection is folded. */
  windowMs?: number;
  floods?: FloodLimits;
}

/**
 * Event lines for a person to read, sent to `emit`: repeated detections folded for a minute
 * (repeatSummary), then floods of any kind cut to a few lines a second (FloodSummary).
 */
export function foldedLines(output: FoldedOutput): FoldedLines {
  // every line is escaped where it is made (formatEventLine, lineField): printed as it is
  const emit = output.emit;
  const summary = repeatSummary(output.windowMs ?? 60_000);
  const floods = new FloodSummary(emit, output.floods ?? FLOOD_LIMITS, () => output.flush?.());
  const timer = setInterval(() => {
    const due = summary.due();
    for (const line of due) emit(line);
    if (due.length > 0) output.flush?.();
  }, REPORT_MS);
  timer.unref();
  return {
    write(batch) {
      for (const event of batch) {
        // only detections are folded by repeat: any other event's line is written if the flood
        // limit admits it, so it is not formatted when the flood would count it instead
        if (event.type !== "detected") {
          if (floods.admit(event)) emit(formatEventLine(event));
          continue;
        }
        const line = summary.line(event);
        if (line !== null && floods.admit(event)) emit(line);
      }
    },
    close() {
      clearInterval(timer);
      floods.close();
      for (const line of summary.flush()) emit(line);
    },
  };
}
