// The contract for a publisher (docs/observability.md, "Adding a publisher"): a factory from
// its own options to an EventSink. moat's webhooks and NATS follow it; a Kafka or MQTT publisher
// is one more module of this shape plus a line in policy-sinks.ts.
import type { EventSink, SnapshotSource } from "../sink.ts";

export interface PublisherContext {
  /** The daemon's counters, for a publisher that also reports state. */
  snapshot: SnapshotSource;
}

/**
 * Builds a sink from already-validated options. It may throw (a refused key file, a bad
 * option): the daemon then refuses the policy and keeps the running one. It must not block:
 * connect in the background and drop (counting) until connected.
 */
export type PublisherFactory<Options> = (options: Options, context: PublisherContext) => EventSink;
