// Volume outliers: an identity's connections, bytes and longest connection in the current hour,
// its bytes in the current day, and its connections in the current minute, against its own past
// (hours and days with traffic: median and MAD of log values; minutes: an exponentially weighted
// mean and variance of log values, so the streaming rate needs no stored series). The current
// bucket is judged as it grows, so a burst is reported while it happens, once a bucket and metric.
import { Ewma, logBaseline, logOf, valueAtZ, type LogBaseline } from "./robust.ts";
import { sampleOf, type Finding, type Observation } from "./finding.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const KEEP_HOURS = 14 * 24;
const KEEP_DAYS = 28;
/** The least spread of log values: a near-constant baseline still needs a few-fold change. */
const MIN_SPREAD = 0.3;
/** An outlier also passes this many times the busiest (99th percentile) past bucket: an
 * identity whose usual is bimodal (small checks, now and then a large download) has a low
 * median and spread but has done the large thing before. */
const PEAK_FACTOR = 2;
/** Records come out of order by seconds; one this far before the bucket under way means the
 * clock was set back: that bucket starts anew at the record (it is not added to the baselines). */
const CLOCK_STEP_MS = 5 * MINUTE;
/** EWMA weight of one active minute (about a day of active minutes remembered). */
const MINUTE_ALPHA = 1 / 1440;

export type VolumeMetric =
  "connections/hour" | "bytes/hour" | "duration/hour" | "bytes/day" | "connections/minute";

/** Below these excesses over the median nothing is worth a report, however rare. */
const MIN_EXCESS: Record<VolumeMetric, number> = {
  "connections/hour": 100,
  "bytes/hour": 1 << 20,
  "duration/hour": 10 * MINUTE,
  "bytes/day": 10 << 20,
  "connections/minute": 60,
};

const WHAT: Record<VolumeMetric, string> = {
  "connections/hour": "connections in an hour",
  "bytes/hour": "bytes in an hour",
  "duration/hour": "longest connection (ms) ending in an hour",
  "bytes/day": "bytes in a day",
  "connections/minute": "connections in a minute",
};

interface Bucket {
  start: number;
  connections: number;
  bytes: number;
  durationMax: number;
  /** Metrics already reported for this bucket. */
  reported: VolumeMetric[];
  /** The largest flow of the bucket: the sample. */
  top: Observation | null;
}

export interface VolumeState {
  hours: { connections: number; bytes: number; durationMax: number }[];
  days: number[];
  hour: Bucket | null;
  day: Bucket | null;
  minute: Bucket | null;
  perMinute: Ewma;
  /** Baselines of the closed buckets, computed when a bucket closes. */
  cache: Partial<Record<VolumeMetric, LogBaseline>>;
}

export function volumeState(): VolumeState {
  return {
    hours: [],
    days: [],
    hour: null,
    day: null,
    minute: null,
    perMinute: new Ewma(MINUTE_ALPHA),
    cache: {},
  };
}

const bucket = (start: number): Bucket => ({
  start,
  connections: 0,
  bytes: 0,
  durationMax: 0,
  reported: [],
  top: null,
});

export interface VolumeLimits {
  z: number;
  minHours: number;
  minDays: number;
}

/** Adds the flow to its buckets; findings for the metrics it pushed past their thresholds. */
export function observeVolume(s: VolumeState, o: Observation, limits: VolumeLimits): Finding[] {
  roll(s, o.timeMs, limits);
  const h = s.hour as Bucket;
  const d = s.day as Bucket;
  const m = s.minute as Bucket;
  for (const b of [h, d, m]) {
    // a record whose bucket closed already (it arrived after a later one) is left out
    if (o.timeMs < b.start) continue;
    if (o.first) b.connections++;
    b.bytes += o.bytes;
    if (o.ended) b.durationMax = Math.max(b.durationMax, o.durationMs);
    if (!b.top || o.bytes > b.top.bytes) b.top = o;
  }
  const out: Finding[] = [];
  const check = (b: Bucket, metric: VolumeMetric, value: number) => {
    const base = s.cache[metric];
    if (!base || b.reported.includes(metric)) return;
    const threshold = Math.max(
      valueAtZ(base, limits.z),
      base.median + MIN_EXCESS[metric],
      base.p99 * PEAK_FACTOR,
    );
    if (value <= threshold) return;
    b.reported.push(metric);
    out.push(finding(metric, value, threshold, base, limits.z, b, o));
  };
  check(h, "connections/hour", h.connections);
  check(h, "bytes/hour", h.bytes);
  // the day's bytes are for slow drips: a burst the hour reported is not reported twice
  if (h.reported.includes("bytes/hour") && !d.reported.includes("bytes/day"))
    d.reported.push("bytes/day");
  check(h, "duration/hour", h.durationMax);
  check(d, "bytes/day", d.bytes);
  const pm = s.perMinute;
  if (pm.samples >= limits.minHours * 60 && !m.reported.includes("connections/minute")) {
    const spread = Math.max(MIN_SPREAD, pm.sd);
    const threshold = Math.max(
      Math.expm1(pm.mean + limits.z * spread),
      Math.expm1(pm.mean) + MIN_EXCESS["connections/minute"],
    );
    if (m.connections > threshold) {
      m.reported.push("connections/minute");
      const base = { median: Math.expm1(pm.mean), p99: NaN, spread, samples: pm.samples };
      out.push(finding("connections/minute", m.connections, threshold, base, limits.z, m, o));
    }
  }
  return out;
}

/** The bucket under way is one the clock was set back from (CLOCK_STEP_MS). */
const setBack = (b: Bucket, timeMs: number) => timeMs < b.start - CLOCK_STEP_MS;

/**
 * Closes the buckets `timeMs` is past, adding them to the baselines; never one going backwards
 * (records arrive slightly out of order: a close stamped by the kernel after a later scan). After
 * the clock was set back, the bucket under way starts anew, so what follows is judged at once
 * instead of being left out until the clock is back where it was.
 */
function roll(s: VolumeState, timeMs: number, limits: VolumeLimits): void {
  const minute = timeMs - (timeMs % MINUTE);
  if (s.minute && setBack(s.minute, timeMs)) s.minute = bucket(minute);
  if (!s.minute || s.minute.start < minute) {
    if (s.minute && s.minute.connections) s.perMinute.add(logOf(s.minute.connections));
    s.minute = bucket(minute);
  }
  const hour = timeMs - (timeMs % HOUR);
  if (s.hour && setBack(s.hour, timeMs)) s.hour = bucket(hour);
  if (!s.hour || s.hour.start < hour) {
    if (s.hour) {
      const { connections, bytes, durationMax } = s.hour;
      s.hours.push({ connections, bytes, durationMax });
      if (s.hours.length > KEEP_HOURS) s.hours.shift();
      hourBaselines(s, limits);
    }
    s.hour = bucket(hour);
  }
  const day = timeMs - (timeMs % DAY);
  if (s.day && setBack(s.day, timeMs)) s.day = bucket(day);
  if (!s.day || s.day.start < day) {
    if (s.day) {
      s.days.push(s.day.bytes);
      if (s.days.length > KEEP_DAYS) s.days.shift();
      dayBaselines(s, limits);
    }
    s.day = bucket(day);
  }
}

function hourBaselines(s: VolumeState, limits: VolumeLimits): void {
  if (s.hours.length < limits.minHours) return;
  s.cache["connections/hour"] = logBaseline(
    s.hours.map((x) => x.connections),
    MIN_SPREAD,
  );
  s.cache["bytes/hour"] = logBaseline(
    s.hours.map((x) => x.bytes),
    MIN_SPREAD,
  );
  s.cache["duration/hour"] = logBaseline(
    s.hours.map((x) => x.durationMax),
    MIN_SPREAD,
  );
}

function dayBaselines(s: VolumeState, limits: VolumeLimits): void {
  if (s.days.length >= limits.minDays) s.cache["bytes/day"] = logBaseline(s.days, MIN_SPREAD);
}

/**
 * A volume state from stored totals (the hour and day roll-ups, oldest first, closed buckets
 * only): the same series and baselines the buckets would have left. The minute rate has no
 * stored series: it starts afresh.
 */
export function seedVolume(
  hours: VolumeState["hours"],
  days: number[],
  limits: VolumeLimits,
): VolumeState {
  const s = volumeState();
  s.hours = hours.slice(-KEEP_HOURS);
  s.days = days.slice(-KEEP_DAYS);
  hourBaselines(s, limits);
  dayBaselines(s, limits);
  return s;
}

function finding(
  metric: VolumeMetric,
  value: number,
  threshold: number,
  base: LogBaseline,
  z: number,
  b: Bucket,
  o: Observation,
): Finding {
  const times = (value / Math.max(1, base.median)).toFixed(1);
  return {
    kind: "volume",
    key: metric,
    summary: `${WHAT[metric]}: ${Math.round(value)}, ${times}x the usual ${Math.round(base.median)} (threshold ${Math.round(threshold)})`,
    metric,
    value: Math.round(value),
    threshold: Math.round(threshold),
    baseline: {
      median: Math.round(base.median),
      ...(Number.isFinite(base.p99) ? { p99: Math.round(base.p99) } : {}),
      logSpread: Number(base.spread.toFixed(3)),
      samples: base.samples,
      z,
      bucketStart: new Date(b.start).toISOString(),
    },
    samples: [sampleOf(b.top ?? o)],
  };
}
