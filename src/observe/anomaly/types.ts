// What the anomaly detectors report and how they are tuned (the policy's `anomaly` section,
// docs/anomaly.md). An anomaly states the baseline it was judged against, the value seen, the
// threshold it crossed and a few sample flows, so a person can tell why it was raised.
import type { FlowIdentity } from "../flows/record.ts";

export const DETECTORS = ["new_destination", "volume", "beacon", "dns"] as const;
export type DetectorName = (typeof DETECTORS)[number];

/** What was odd. */
export type AnomalyKind =
  /** A destination (registrable domain or prefix, with port) the identity never used before. */
  | "new_destination"
  /** An hour's or a day's connections, bytes or longest connection far above the identity's. */
  | "volume"
  /** Connections to one destination at regular intervals with regular sizes. */
  | "beacon"
  /** Many random-looking names under one domain in a short time. */
  | "dns_entropy"
  /** Many NXDOMAIN answers in a short time. */
  | "dns_nxdomain";

export interface AnomalySettings {
  detectors: readonly DetectorName[];
  /** How long a destination stays known after its last use. */
  baselineMs: number;
  /** An identity is watched this long before anything about it is reported. */
  minBaselineMs: number;
  /** The same anomaly (kind, identity, key) is not reported again within this time. */
  cooldownMs: number;
  /** volume: robust z (spreads of log values above the median) that counts as an outlier. */
  volumeZ: number;
  /** volume: hours (and days) of an identity's history before its volume is judged. */
  minHours: number;
  minDays: number;
  /** beacon: the score (0..1) from which a series of connections counts as a beacon. */
  beaconScore: number;
  /** beacon: connections to one destination before its regularity is judged. */
  minConnections: number;
  /** dns: distinct random-looking names under one domain, or NXDOMAIN answers, in `dnsWindowMs`. */
  dnsNames: number;
  nxdomains: number;
  dnsWindowMs: number;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export const DEFAULT_ANOMALY_SETTINGS: AnomalySettings = {
  detectors: DETECTORS,
  baselineMs: 14 * DAY,
  minBaselineMs: DAY,
  cooldownMs: DAY,
  volumeZ: 5,
  minHours: 24,
  minDays: 5,
  beaconScore: 0.8,
  minConnections: 20,
  dnsNames: 10,
  nxdomains: 20,
  dnsWindowMs: 10 * 60_000,
};

/** A flow (or query) an anomaly points at. */
export interface AnomalySample {
  /** ISO time. */
  time: string;
  remote: string;
  /** The peer's DNS name where known. */
  name?: string;
  port: number;
  protocol: string;
  bytes: number;
  durationMs: number;
}

/** What an anomaly event carries in its `anomaly` field. */
export interface AnomalyFacts {
  /** Stable per (kind, identity, key): what `moat anomalies accept` names. */
  id: string;
  kind: AnomalyKind;
  identity: FlowIdentity;
  /** What the value is about: a destination, a metric ("bytes/hour"), a domain. */
  key: string;
  /** One sentence: what was seen against what was usual. */
  summary: string;
  /** The measure judged (e.g. "bytes per hour", "beacon score"). */
  metric: string;
  value: number;
  threshold: number;
  /** What the value was compared with (median and spread, samples, known destinations, ...). */
  baseline: Record<string, number | string>;
  samples: AnomalySample[];
}
