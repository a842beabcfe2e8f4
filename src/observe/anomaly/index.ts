// Anomaly detection (docs/anomaly.md): pure detectors fed from flow records and DNS queries, the
// engine that profiles identities, the anomaly event, and the engine's state file.
export {
  AnomalyDetector,
  anomalyId,
  type Acceptance,
  type AnomalyReport,
  type RecentAnomaly,
} from "./detector.ts";
export { anomalyEvent } from "./event.ts";
export { loadAnomalyState, saveAnomalyState, saveAnomalyStateInSlices } from "./state-file.ts";
export { seedFromRollups, type BaselineInput, type BaselineRow } from "./from-rollups.ts";
export {
  anomalySettingsOf,
  DEFAULT_ANOMALY_SETTINGS,
  type AnomalyFacts,
  type AnomalySettings,
} from "./types.ts";
