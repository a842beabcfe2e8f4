// What the anomaly detectors report and how they are tuned (the policy's `anomaly` section,
// docs/anomaly.md). An anomaly states the baseline it was judged against, the value seen, the
// threshold it crossed and a few sample flows, so a person can tell why it was raised.
import {
  ANOMALY_DETECTORS,
  DEFAULT_ANOMALY,
  type AnomalyDetectorName,
  type AnomalyModel,
} from "../../config/index.ts";
import type { AnomalyFacts, AnomalyKind, AnomalySample } from "../../datapath/event.ts";

export type { AnomalyFacts, AnomalyKind, AnomalySample };

export const DETECTORS = ANOMALY_DETECTORS;
export type DetectorName = AnomalyDetectorName;

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

/** The detectors' settings from the policy's `anomaly` section (absent: the defaults). */
export function anomalySettingsOf(m: AnomalyModel = DEFAULT_ANOMALY): AnomalySettings {
  return {
    detectors: m.detectors,
    baselineMs: m.baselineSeconds * 1000,
    minBaselineMs: m.minBaselineSeconds * 1000,
    cooldownMs: m.cooldownSeconds * 1000,
    volumeZ: m.volumeZ,
    minHours: 24,
    minDays: 5,
    beaconScore: m.beaconScore,
    minConnections: m.minConnections,
    dnsNames: m.dnsNames,
    nxdomains: m.nxdomains,
    dnsWindowMs: 10 * 60_000,
  };
}

export const DEFAULT_ANOMALY_SETTINGS: AnomalySettings = anomalySettingsOf();
