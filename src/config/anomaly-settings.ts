// The `anomaly` section (docs/policy.md, "anomaly"; docs/anomaly.md): which anomaly detectors run
// and how they are tuned. Absent: every detector with the defaults below. Its schema is
// AnomalySchema in schema-anomaly.ts; the model carries the section only when the policy has one.
import type { CheckContext } from "./check-context.ts";
import type { SourcePos } from "./diagnostics.ts";
import { parseDuration } from "./duration.ts";
import { ANOMALY_DETECTORS, type AnomalyDetectorName } from "./anomaly-detectors.ts";

export { ANOMALY_DETECTORS, type AnomalyDetectorName };

const DAY = 86_400;
/** The most random-looking names a DNS window keeps a domain (observe/anomaly/dns-oddities.ts):
 * a higher `dns_names` could never be reached. */
export const MAX_DNS_NAMES = 256;

/** The section as the model has it (durations in seconds). */
export interface AnomalyModel {
  enabled: boolean;
  detectors: AnomalyDetectorName[];
  baselineSeconds: number;
  minBaselineSeconds: number;
  cooldownSeconds: number;
  volumeZ: number;
  beaconScore: number;
  minConnections: number;
  dnsNames: number;
  nxdomains: number;
  pos?: SourcePos;
}

export const DEFAULT_ANOMALY: AnomalyModel = {
  enabled: true,
  detectors: [...ANOMALY_DETECTORS],
  baselineSeconds: 14 * DAY,
  minBaselineSeconds: DAY,
  cooldownSeconds: DAY,
  volumeZ: 5,
  beaconScore: 0.8,
  minConnections: 20,
  dnsNames: 10,
  nxdomains: 20,
};

type AnomalyDocument = {
  anomaly?: {
    enabled?: boolean;
    detectors?: AnomalyDetectorName[];
    baseline?: number | string;
    min_baseline?: number | string;
    cooldown?: number | string;
    volume_z?: number;
    beacon_score?: number;
    min_connections?: number;
    dns_names?: number;
    nxdomains?: number;
  };
};

/** The section with its defaults; undefined when the policy has none. */
export function anomalySettings(ctx: CheckContext, doc: AnomalyDocument): AnomalyModel | undefined {
  const a = doc.anomaly;
  if (!a || !ctx.typed(["anomaly"])) return undefined;
  const seconds = (field: "baseline" | "min_baseline" | "cooldown", fallback: number) => {
    const value = a[field];
    if (value === undefined || !ctx.clean(["anomaly", field])) return fallback;
    const parsed = parseDuration(value);
    if (parsed.ok) return parsed.value;
    ctx.error(["anomaly", field], parsed.error);
    return fallback;
  };
  const d = DEFAULT_ANOMALY;
  const model: AnomalyModel = {
    enabled: a.enabled ?? d.enabled,
    detectors: a.detectors ? [...new Set(a.detectors)] : [...d.detectors],
    baselineSeconds: seconds("baseline", d.baselineSeconds),
    minBaselineSeconds: seconds("min_baseline", d.minBaselineSeconds),
    cooldownSeconds: seconds("cooldown", d.cooldownSeconds),
    volumeZ: a.volume_z ?? d.volumeZ,
    beaconScore: a.beacon_score ?? d.beaconScore,
    minConnections: a.min_connections ?? d.minConnections,
    dnsNames: a.dns_names ?? d.dnsNames,
    nxdomains: a.nxdomains ?? d.nxdomains,
    pos: ctx.pos(["anomaly"]),
  };
  if (model.dnsNames > MAX_DNS_NAMES) {
    ctx.error(
      ["anomaly", "dns_names"],
      `must be at most ${MAX_DNS_NAMES}: a 10-minute window keeps no more names of a domain`,
    );
    model.dnsNames = MAX_DNS_NAMES;
  }
  if (model.minBaselineSeconds > model.baselineSeconds)
    ctx.warn(
      ["anomaly", "min_baseline"],
      "min_baseline is longer than baseline: destinations are forgotten before an identity is learned",
    );
  return model;
}
