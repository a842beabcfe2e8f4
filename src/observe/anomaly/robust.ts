// Robust statistics the detectors share: median and MAD (on log values, so a 10x change counts the
// same at any size), quartile skew, an exponentially weighted mean and variance for streaming
// values, and the Shannon entropy of a string. Pure.

/** The median of `xs` (NaN when empty); `xs` is not changed. */
export function median(xs: readonly number[]): number {
  return quantile(xs, 0.5);
}

/** The q-quantile (0..1) by linear interpolation between order statistics. */
export function quantile(xs: readonly number[], q: number): number {
  if (!xs.length) return NaN;
  return sortedQuantile(
    [...xs].sort((a, b) => a - b),
    q,
  );
}

/** The q-quantile of values sorted ascending. */
export function sortedQuantile(s: readonly number[], q: number): number {
  if (!s.length) return NaN;
  const at = (s.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  const a = s[lo] ?? 0;
  const b = s[hi] ?? 0;
  return a + (b - a) * (at - lo);
}

/** The median absolute deviation from the median. */
export function mad(xs: readonly number[], m = median(xs)): number {
  return median(xs.map((x) => Math.abs(x - m)));
}

/** MAD scaled to a normal distribution's standard deviation. */
export const MAD_TO_SD = 1.4826;

/** The log scale values are compared on: log(1 + x), so 0 is fine. */
export const logOf = (x: number): number => Math.log1p(Math.max(0, x));

/**
 * Median and spread of log values, and the raw value a log-z of `z` stands for: what an outlier
 * detector states as its baseline and threshold. `minSpread` keeps a near-constant baseline from
 * calling a small change an outlier.
 */
export interface LogBaseline {
  /** Median of the raw values (exp of the log median, minus one). */
  median: number;
  /** The 99th percentile of the raw values: what the identity's busiest times reach. */
  p99: number;
  /** Spread of the log values (MAD scaled to a standard deviation, at least minSpread). */
  spread: number;
  samples: number;
}

export function logBaseline(values: readonly number[], minSpread: number): LogBaseline {
  const logs = values.map(logOf).sort((a, b) => a - b);
  const m = sortedQuantile(logs, 0.5);
  return {
    median: Math.expm1(m),
    p99: Math.expm1(sortedQuantile(logs, 0.99)),
    spread: Math.max(minSpread, MAD_TO_SD * mad(logs, m)),
    samples: values.length,
  };
}

/** How many spreads above the baseline's median `value` is (log scale). */
export function logZ(b: LogBaseline, value: number): number {
  return (logOf(value) - logOf(b.median)) / b.spread;
}

/** The raw value `z` spreads above the median stands for. */
export function valueAtZ(b: LogBaseline, z: number): number {
  return Math.expm1(logOf(b.median) + z * b.spread);
}

/** Bowley's quartile skewness in [-1, 1]: 0 for a symmetric distribution. */
export function bowleySkew(xs: readonly number[]): number {
  return sortedBowleySkew([...xs].sort((a, b) => a - b));
}

export function sortedBowleySkew(s: readonly number[]): number {
  const q1 = sortedQuantile(s, 0.25);
  const q2 = sortedQuantile(s, 0.5);
  const q3 = sortedQuantile(s, 0.75);
  if (q3 === q1) return 0;
  return (q3 + q1 - 2 * q2) / (q3 - q1);
}

/** A streaming mean and variance that forget with weight `alpha` a sample. */
export class Ewma {
  mean = 0;
  variance = 0;
  samples = 0;
  readonly alpha: number;
  constructor(alpha: number) {
    this.alpha = alpha;
  }

  add(x: number): void {
    if (this.samples++ === 0) {
      this.mean = x;
      return;
    }
    const d = x - this.mean;
    this.mean += this.alpha * d;
    this.variance = (1 - this.alpha) * (this.variance + this.alpha * d * d);
  }

  get sd(): number {
    return Math.sqrt(this.variance);
  }
}

/** Shannon entropy of a string's characters, in bits per character. */
export function entropy(text: string): number {
  if (!text) return 0;
  const counts = new Map<string, number>();
  for (const c of text) counts.set(c, (counts.get(c) ?? 0) + 1);
  let h = 0;
  for (const n of counts.values()) {
    const p = n / text.length;
    h -= p * Math.log2(p);
  }
  return h;
}
