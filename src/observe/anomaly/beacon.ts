// Beacons: connections from one identity to one destination and port at regular intervals with
// regular sizes (the way RITA scores them): over the last connections, the intervals' and sizes'
// dispersion (1 - MAD/median) and symmetry (1 - |Bowley skew|) are each a score in 0..1, and
// their mean is the beacon score. A series that began during the identity's learning period and
// has not been irregular since (an NTP client, a package-update timer, a metrics push) is part of
// its baseline; one that begins later, or turns regular after being irregular, is reported.
import { sortedBowleySkew, sortedQuantile } from "./robust.ts";
import { sampleOf, type Finding, type Observation } from "./finding.ts";
import type { SeriesKeys } from "./series-key.ts";
import { oldestCut } from "./new-destination.ts";

/** Connections kept per series. */
export const KEEP = 64;
/** Series kept per identity; past it, the least recently used quarter goes. */
export const MAX_SERIES = 1024;
/** Below the threshold by this much a series counts as irregular. */
const IRREGULAR_MARGIN = 0.2;
/** Judged every this many connections once there are enough (cost, not accuracy). */
const EVERY = 8;

interface Series {
  /** Start times and sizes of the last KEEP connections (a ring; `count` % KEEP is next). */
  starts: number[];
  sizes: number[];
  /** Its first and latest connection (ms). */
  firstMs: number;
  lastMs: number;
  /** It was judged and not regular after the identity's learning period. */
  irregular: boolean;
  /** Connections seen in all. */
  count: number;
  /** The connection count at which it is judged next. */
  judgeAt: number;
}

export type BeaconState = Map<string, Series>;

export interface BeaconScore {
  score: number;
  intervalMedianMs: number;
  intervalDispersion: number;
  intervalSkew: number;
  sizeMedian: number;
  sizeDispersion: number;
  sizeSkew: number;
}

/** Connections that start within this of the one before are one contact (a pool opened at
 * once): the gap between them is no interval, or connections opened together at random times
 * would score as a perfectly regular series of zero intervals. */
const ONE_CONTACT_MS = 1000;

/** The beacon score of a series of connection starts (ascending) and sizes. */
export function beaconScore(starts: readonly number[], sizes: readonly number[]): BeaconScore {
  const intervals: number[] = [];
  for (let i = 1; i < starts.length; i++) {
    const gap = (starts[i] ?? 0) - (starts[i - 1] ?? 0);
    if (gap >= ONE_CONTACT_MS) intervals.push(gap);
  }
  const byValue = (a: number, b: number) => a - b;
  const si = intervals.sort(byValue);
  const ss = [...sizes].sort(byValue);
  const im = si.length ? sortedQuantile(si, 0.5) : 0;
  const sm = sortedQuantile(ss, 0.5);
  const dispersion = (s: number[], m: number) => {
    const mad = sortedQuantile(s.map((x) => Math.abs(x - m)).sort(byValue), 0.5);
    return m > 0 ? Math.max(0, 1 - mad / m) : mad === 0 ? 1 : 0;
  };
  // a series of mostly connections opened together (fewer intervals than a quarter of its gaps,
  // or fewer than two): nothing regular in time; a beacon opening a few at each check-in is timed
  const timed = si.length >= 2 && si.length >= (starts.length - 1) / 4;
  const intervalDispersion = timed ? dispersion(si, im) : 0;
  const intervalSkew = timed ? Math.abs(sortedBowleySkew(si)) : 1;
  const sizeDispersion = dispersion(ss, sm);
  const sizeSkew = Math.abs(sortedBowleySkew(ss));
  const score =
    ((intervalDispersion + (1 - intervalSkew)) / 2) * 0.6 +
    ((sizeDispersion + (1 - sizeSkew)) / 2) * 0.4;
  return {
    score,
    intervalMedianMs: im,
    intervalDispersion,
    intervalSkew,
    sizeMedian: sm,
    sizeDispersion,
    sizeSkew,
  };
}

export interface BeaconLimits {
  score: number;
  minConnections: number;
  /** The identity's learning period ends here (ms): series regular before are its baseline. */
  learnedAt: number;
}

/**
 * Beacon series from stored use (the roll-ups): each peer and port with when it was first and
 * last used, without connections yet. One first used while the identity was learned (before
 * `learnedAt`) is part of its baseline, as it would have been; its regularity is judged anew.
 */
export function seedBeacons(
  uses: Map<string, { firstMs: number; lastMs: number }>,
  minConnections: number,
): BeaconState {
  const s: BeaconState = new Map();
  const recent = [...uses].sort((a, b) => a[1].lastMs - b[1].lastMs).slice(-MAX_SERIES);
  for (const [key, use] of recent)
    s.set(key, {
      starts: [],
      sizes: [],
      firstMs: use.firstMs,
      lastMs: use.lastMs,
      irregular: false,
      count: 0,
      judgeAt: minConnections,
    });
  return s;
}

/** Forgotten series, used again: most series of a busy identity never get a second connection
 * before they are forgotten, and making each anew was much of the collector's work. */
const spare: Series[] = [];
const MAX_SPARE = MAX_SERIES;

/** A series of one connection. */
function newSeries(start: number, bytes: number, timeMs: number, judgeAt: number): Series {
  const x = spare.pop();
  // arrays of the one connection: an empty array grows by 17 on its first write
  if (!x)
    return {
      starts: [start],
      sizes: [bytes],
      firstMs: timeMs,
      lastMs: timeMs,
      irregular: false,
      count: 1,
      judgeAt,
    };
  x.starts.length = 1;
  x.starts[0] = start;
  x.sizes.length = 1;
  x.sizes[0] = bytes;
  x.firstMs = timeMs;
  x.lastMs = timeMs;
  x.irregular = false;
  x.count = 1;
  x.judgeAt = judgeAt;
  return x;
}

export function observeBeacon(
  s: BeaconState,
  o: Observation,
  /** The record's keys; null unless an egress connection's first record. */
  keys: SeriesKeys | null,
  limits: BeaconLimits,
): Finding | null {
  if (!o.egress || !o.first || !keys) return null;
  // one series per peer (its name, else its address): two servers of one pool interleave
  const key = keys.series;
  const start = o.timeMs - o.durationMs;
  let series = s.get(key);
  if (!series) {
    series = newSeries(start, o.bytes, o.timeMs, limits.minConnections);
    s.set(key, series);
    if (s.size > MAX_SERIES) forgetIdle(s, MAX_SERIES / 4);
  } else {
    series.lastMs = o.timeMs;
    // the last KEEP connections, a ring: sorted by start when judged (closes may come before
    // the scan records of connections that started earlier)
    const slot = series.count % KEEP;
    series.starts[slot] = start;
    series.sizes[slot] = o.bytes;
    series.count++;
  }
  const n = series.starts.length;
  if (series.count < series.judgeAt || n < limits.minConnections) return null;
  const baseline = series.firstMs < limits.learnedAt && !series.irregular;
  const order = series.starts
    .map((_, i) => i)
    .sort((a, b) => series.starts[a]! - series.starts[b]!);
  const scored = beaconScore(
    order.map((i) => series.starts[i]!),
    order.map((i) => series.sizes[i]!),
  );
  // a baseline series, and one far from regular, are judged again once half a window changed
  // (to notice them changing); one near the threshold every few connections
  const far = scored.score < limits.score - IRREGULAR_MARGIN;
  series.judgeAt = series.count + (baseline || far ? KEEP / 2 : EVERY);
  if (scored.score < limits.score) {
    // clearly irregular, not a regular series' sampling noise
    if (o.timeMs >= limits.learnedAt && far) series.irregular = true;
    return null;
  }
  // begun while the identity was learned and never irregular since: its baseline
  if (baseline) return null;
  const seconds = (scored.intervalMedianMs / 1000).toFixed(1);
  return {
    kind: "beacon",
    key,
    summary: `${n} connections to ${o.name ?? o.remote} (${key}) every ${seconds} s with regular sizes: beacon score ${scored.score.toFixed(2)}`,
    metric: "beacon score",
    value: Number(scored.score.toFixed(3)),
    threshold: limits.score,
    baseline: {
      connections: n,
      intervalMedianMs: Math.round(scored.intervalMedianMs),
      intervalDispersion: Number(scored.intervalDispersion.toFixed(3)),
      intervalSkew: Number(scored.intervalSkew.toFixed(3)),
      sizeMedian: Math.round(scored.sizeMedian),
      sizeDispersion: Number(scored.sizeDispersion.toFixed(3)),
      sizeSkew: Number(scored.sizeSkew.toFixed(3)),
    },
    samples: [sampleOf(o)],
  };
}

/** Forgets exactly the `count` least recently used series. */
export function forgetIdle(s: BeaconState, count: number): void {
  // one pass over the map (a read of each series), then deletions by the copied keys and times
  const keys = new Array<string>(s.size);
  const series = new Array<Series>(s.size);
  const last = new Float64Array(s.size);
  let i = 0;
  for (const [k, x] of s) {
    keys[i] = k;
    series[i] = x;
    last[i++] = x.lastMs;
  }
  const { cut, ties: atCut } = oldestCut(last, count);
  let ties = atCut;
  for (i = 0; i < keys.length; i++) {
    const t = last[i]!;
    if (t > cut) continue;
    if (t === cut) {
      if (ties === 0) continue;
      ties--;
    }
    s.delete(keys[i]!);
    if (spare.length < MAX_SPARE) spare.push(series[i]!);
  }
}
