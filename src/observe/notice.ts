// A notice: what every sink is told that is not a connection's event. Events the kernel lost
// (its ring buffer was full) since the last loss report, sent when the policy says
// `failure.events_lost: notify` (at most one per report, every 5 s); a URL feed whose fetches
// started failing (its last good list stays in force, going stale), and the fetch that ended it.
export type Notice = EventsLostNotice | FeedNotice;

export interface EventsLostNotice {
  time: string;
  type: "events_lost";
  /** Events lost since the previous report. */
  count: number;
  /** The time the count covers (the loss-report interval). */
  intervalMs: number;
}

export interface FeedNotice {
  time: string;
  /** One on the first failed fetch after a good one (or the start), one on the next good fetch. */
  type: "feed_failing" | "feed_recovered";
  /** The feed's set name. */
  feed: string;
  /** feed_failing: why the fetch failed. */
  error?: string;
  /** Failed fetches since the daemon started. */
  failures: number;
}

/** The notice in words (the audit log, the daemon's output, an OpenTelemetry log body). */
export function formatNoticeLine(n: Notice): string {
  if (n.type !== "events_lost")
    return n.type === "feed_failing"
      ? `NOTICE feed ${n.feed}: fetching failed (${n.error ?? "unknown"}); its last good list stays in force`
      : `NOTICE feed ${n.feed}: fetched again (${n.failures === 1 ? "1 failed fetch" : `${n.failures} failed fetches`} since the start)`;
  const seconds = Math.round(n.intervalMs / 1000);
  return `NOTICE ${n.count} events lost in the kernel (ring buffer full) in the last ${seconds} s`;
}
