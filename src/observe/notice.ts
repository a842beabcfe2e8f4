// A notice: what every sink is told that is not a connection's event. Today one kind: events the
// kernel lost (its ring buffer was full) since the last loss report, sent when the policy says
// `failure.events_lost: notify` (at most one per report, every 5 s).
export interface Notice {
  time: string;
  type: "events_lost";
  /** Events lost since the previous report. */
  count: number;
  /** The time the count covers (the loss-report interval). */
  intervalMs: number;
}

/** The notice in words (the audit log, the daemon's output, an OpenTelemetry log body). */
export function formatNoticeLine(n: Notice): string {
  const seconds = Math.round(n.intervalMs / 1000);
  return `NOTICE ${n.count} events lost in the kernel (ring buffer full) in the last ${seconds} s`;
}
