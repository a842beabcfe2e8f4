// What one detector found, before the engine decides whether to report it (learning period,
// cooldown, accepted as normal) and gives it an id.
import type { AnomalyFacts } from "./types.ts";

export type Finding = Omit<AnomalyFacts, "id" | "identity">;

/** A flow as the detectors see it: one connection record of one identity. */
export interface Observation {
  timeMs: number;
  /** The connection started (its first record): counts as a connection. */
  first: boolean;
  /** The connection ended with this record: its duration is final. */
  ended: boolean;
  egress: boolean;
  destination: string;
  remote: string;
  /** The peer's DNS name where known. */
  name: string | undefined;
  port: number;
  protocol: string;
  bytes: number;
  durationMs: number;
}

export function sampleOf(o: Observation): AnomalyFacts["samples"][number] {
  return {
    time: new Date(o.timeMs).toISOString(),
    remote: o.remote,
    ...(o.name ? { name: o.name } : {}),
    port: o.port,
    protocol: o.protocol,
    bytes: o.bytes,
    durationMs: Math.round(o.durationMs),
  };
}
