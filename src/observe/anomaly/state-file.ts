// The anomaly engine's state on disk (profiles, acceptances, recent anomalies), so baselines and
// "accept as normal" survive a restart: one JSON file, written whole to a temporary file and
// renamed over the old one. A file that cannot be read starts a fresh state, said once.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { AnomalyDetector } from "./detector.ts";
import { Ewma } from "./robust.ts";

const VERSION = 1;

/** Maps, sets and EWMAs as tagged JSON values. */
function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Map) return { $map: [...value.entries()] };
  if (value instanceof Set) return { $set: [...value] };
  if (value instanceof Ewma)
    return {
      $ewma: [value.alpha, value.mean, value.variance, value.samples],
    };
  return value;
}

function reviver(_key: string, value: unknown): unknown {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    const v = value as { $map?: [unknown, unknown][]; $set?: unknown[]; $ewma?: number[] };
    if (v.$map) return new Map(v.$map);
    if (v.$set) return new Set(v.$set);
    if (v.$ewma) {
      const [alpha = 0, mean = 0, variance = 0, samples = 0] = v.$ewma;
      const e = new Ewma(alpha);
      Object.assign(e, { mean, variance, samples });
      return e;
    }
  }
  return value;
}

export function saveAnomalyState(path: string, d: AnomalyDetector): void {
  const text = JSON.stringify(
    {
      version: VERSION,
      profiles: d.profiles,
      accepted: d.accepted,
      reportedAt: d.reportedAt,
      recent: d.recent,
    },
    replacer,
  );
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, path);
}

/** Loads the saved state into `d`; false (d unchanged) when there is none or it is unreadable. */
export function loadAnomalyState(path: string, d: AnomalyDetector): boolean {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return false;
  }
  const saved = JSON.parse(text, reviver) as {
    version?: number;
    profiles?: AnomalyDetector["profiles"];
    accepted?: AnomalyDetector["accepted"];
    reportedAt?: AnomalyDetector["reportedAt"];
    recent?: AnomalyDetector["recent"];
  };
  if (saved.version !== VERSION) return false;
  for (const [k, v] of saved.profiles ?? []) d.profiles.set(k, v);
  for (const [k, v] of saved.accepted ?? []) d.accepted.set(k, v);
  for (const [k, v] of saved.reportedAt ?? []) d.reportedAt.set(k, v);
  d.recent = saved.recent ?? [];
  return true;
}
