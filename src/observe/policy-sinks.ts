// The sinks a policy's `otel` and `event_publisher` sections ask for. The daemon adds these to
// the pipeline beside its own (audit log, history, API subscribers) at start and on reload.
import type { PolicyModel } from "../config/model.ts";
import type { EventSink, SnapshotSource } from "./sink.ts";

export interface PolicySinks {
  sinks: EventSink[];
  /** Stops timers (metric readers) and closes connections; the pipeline closes the sinks. */
  close(): Promise<void>;
}

/** Until OpenTelemetry and the publishers land, a policy using them is refused at load. */
export function sinksFromPolicy(_model: PolicyModel, _snapshot: SnapshotSource): PolicySinks {
  return { sinks: [], close: async () => {} };
}
