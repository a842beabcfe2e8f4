// Anomaly baselines rebuilt from the flow statistics' hour and day roll-ups (docs/anomaly.md,
// "After a restart"), for a start without the engine's state file: each identity's age, its known
// destinations and their novelty, its hourly and daily volume, and which peers it used (so a
// series begun while it was learned stays its baseline), as the detectors would have kept them
// from the flow records the roll-ups add up. Beacon series' connection times, the minute rate and
// DNS windows have no stored form and start afresh. Pure: the rows are read elsewhere (the
// history thread).
import { isIP } from "node:net";
import {
  identityKey,
  MAX_IDENTITIES,
  type AnomalyDetector,
  type AnomalyIdentity,
  type Profile,
} from "./detector.ts";
import { destinationOf } from "./destination.ts";
import { dnsState } from "./dns-oddities.ts";
import { seedDestinations } from "./new-destination.ts";
import { seedBeacons } from "./beacon.ts";
import { seedVolume, type VolumeState } from "./volume.ts";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** How far back the hour and day levels are read. */
export const BASELINE_HOURS_MS = 14 * DAY;
export const BASELINE_DAYS_MS = 28 * DAY;
/** Roll-up rows read at most (the most recent first); the rest are counted. */
export const MAX_BASELINE_ROWS = 200_000;

/** One roll-up row (rollup.ts) as the rebuild reads it. */
export interface BaselineRow {
  level: "hour" | "day";
  bucketMs: number;
  exe: string;
  /** `exe` is a process's name (comm), not a path (the roll-ups' name_only). */
  nameOnly: boolean;
  user: number;
  cgroup: string;
  container: string;
  /** The peer's DNS name where moat knew one, else its address. */
  peer: string;
  port: number;
  protocol: string;
  direction: string;
  connections: number;
  bytes: number;
  durationMaxMs: number;
  firstMs: number;
  lastMs: number;
}

export interface BaselineInput {
  rows: BaselineRow[];
  /** Rows past MAX_BASELINE_ROWS, not read. */
  overflow: number;
}

/** Destination or peer keys with when they were first and last used. */
type Uses = Map<string, { firstMs: number; lastMs: number }>;

interface Gathered {
  identity: AnomalyIdentity;
  firstMs: number;
  lastMs: number;
  hours: Map<number, { connections: number; bytes: number; durationMax: number }>;
  days: Map<number, number>;
  uses: Uses;
  peers: Uses;
}

function use(m: Uses, key: string, r: BaselineRow): void {
  const u = m.get(key);
  if (!u) m.set(key, { firstMs: r.firstMs, lastMs: r.lastMs });
  else {
    u.firstMs = Math.min(u.firstMs, r.firstMs);
    u.lastMs = Math.max(u.lastMs, r.lastMs);
  }
}

/**
 * Profiles for the identities the rows name and `d` does not profile yet (at most
 * MAX_IDENTITIES in all); buckets from `nowMs`'s hour and day on are left out (they are not
 * over). Returns how many identities were profiled.
 */
export function seedFromRollups(
  d: AnomalyDetector,
  input: BaselineInput,
  nowMs: number,
): { identities: number; rows: number } {
  const hourNow = nowMs - (nowMs % HOUR);
  const dayNow = nowMs - (nowMs % DAY);
  const byIdentity = new Map<string, Gathered>();
  for (const r of input.rows) {
    const identity: AnomalyIdentity = {
      exe: r.exe,
      ...(r.nameOnly ? { nameOnly: true } : {}),
      user: r.user,
      cgroup: r.cgroup,
      container: r.container,
    };
    const key = identityKey(identity);
    if (d.profiles.has(key)) continue;
    let g = byIdentity.get(key);
    if (!g) {
      g = {
        identity,
        firstMs: r.firstMs,
        lastMs: r.lastMs,
        hours: new Map(),
        days: new Map(),
        uses: new Map(),
        peers: new Map(),
      };
      byIdentity.set(key, g);
    }
    g.firstMs = Math.min(g.firstMs, r.firstMs);
    g.lastMs = Math.max(g.lastMs, r.lastMs);
    if (r.level === "hour" && r.bucketMs < hourNow) {
      const h = g.hours.get(r.bucketMs) ?? { connections: 0, bytes: 0, durationMax: 0 };
      h.connections += r.connections;
      h.bytes += r.bytes;
      h.durationMax = Math.max(h.durationMax, r.durationMaxMs);
      g.hours.set(r.bucketMs, h);
    }
    if (r.level === "day" && r.bucketMs < dayNow)
      g.days.set(r.bucketMs, (g.days.get(r.bucketMs) ?? 0) + r.bytes);
    if (r.direction === "egress" && r.connections > 0) {
      const remote = isIP(r.peer) ? { ip: r.peer } : { ip: "", names: [r.peer] };
      use(g.uses, `${destinationOf(remote)} ${r.protocol}/${r.port}`, r);
      use(g.peers, `${r.peer} ${r.protocol}/${r.port}`, r);
    }
  }
  const s = d.settings;
  const limits = { z: s.volumeZ, minHours: s.minHours, minDays: s.minDays };
  let identities = 0;
  // the most active first, while there is room
  const order = [...byIdentity].sort((a, b) => b[1].lastMs - a[1].lastMs);
  for (const [key, g] of order) {
    if (d.profiles.size >= MAX_IDENTITIES) break;
    const sorted = <T>(m: Map<number, T>): T[] =>
      [...m].sort((a, b) => a[0] - b[0]).map(([, v]) => v);
    const volume: VolumeState = seedVolume(sorted(g.hours), sorted(g.days), limits);
    const countFrom = g.firstMs + Math.min(HOUR, s.minBaselineMs / 10);
    const profile: Profile = {
      identity: g.identity,
      firstMs: g.firstMs,
      lastMs: g.lastMs,
      destinations: seedDestinations(g.uses, countFrom),
      volume,
      beacons: seedBeacons(g.peers, s.minConnections),
      dns: dnsState(),
    };
    d.profiles.set(key, profile);
    identities++;
  }
  return { identities, rows: input.rows.length };
}
