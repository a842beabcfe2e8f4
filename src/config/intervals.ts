// Sets of numbers as sorted, disjoint, merged closed intervals; the algebra the shadowing check
// (and a compiler) needs for address and port sets. Pure.

export type Interval = readonly [bigint, bigint];
export type IntervalSet = readonly Interval[];

const byStart = (a: Interval, b: Interval): number => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

/** Below this many intervals the comparator's sort is as quick. */
const AS_NUMBERS_FROM = 256;

/**
 * normalize() worked with numbers, when every bound is small enough (IPv4 addresses, ports): a
 * set file's 1M intervals took ~1.5 s of bigint comparisons and additions, this ~0.2 s. Sorted
 * by start, ties in list order (as the comparator's stable sort); undefined when a bound is not.
 */
function normalizedAsNumbers(list: Interval[]): IntervalSet | undefined {
  const n = list.length;
  let slots = 1;
  while (slots < n) slots *= 2;
  // a start and the interval's place in one exact number: start * slots + place
  const most = BigInt(Math.floor(Number.MAX_SAFE_INTEGER / slots) - 1);
  const keys = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const [start, end] = list[i]!;
    if (start < 0n || start > most || end > most) return undefined;
    keys[i] = Number(start) * slots + i;
  }
  keys.sort();
  const out: [bigint, bigint][] = [];
  let lastEnd = 0;
  for (let k = 0; k < n; k++) {
    const place = keys[k]! % slots;
    const [lo, hi] = list[place]!;
    const start = (keys[k]! - place) / slots;
    const end = Number(hi);
    if (out.length > 0 && start <= lastEnd + 1) {
      if (end > lastEnd) {
        lastEnd = end;
        out[out.length - 1]![1] = hi;
      }
    } else {
      out.push([lo, hi]);
      lastEnd = end;
    }
  }
  return out;
}

export function normalize(intervals: Iterable<Interval>): IntervalSet {
  const list = [...intervals];
  const asNumbers = list.length >= AS_NUMBERS_FROM ? normalizedAsNumbers(list) : undefined;
  if (asNumbers) return asNumbers;
  const sorted = list.sort(byStart);
  const out: [bigint, bigint][] = [];
  for (const [lo, hi] of sorted) {
    const last = out[out.length - 1];
    if (last && lo <= last[1] + 1n) last[1] = hi > last[1] ? hi : last[1];
    else out.push([lo, hi]);
  }
  return out;
}

export function union(a: IntervalSet, b: IntervalSet): IntervalSet {
  return normalize([...a, ...b]);
}

export function subtract(a: IntervalSet, b: IntervalSet): IntervalSet {
  const out: Interval[] = [];
  for (const [lo, hi] of a) {
    let start = lo;
    for (const [blo, bhi] of b) {
      if (bhi < start || blo > hi) continue;
      if (blo > start) out.push([start, blo - 1n]);
      start = bhi + 1n;
      if (start > hi) break;
    }
    if (start <= hi) out.push([start, hi]);
  }
  return out;
}

/** Whether every number in `inner` is in `outer`. */
export function covers(outer: IntervalSet, inner: IntervalSet): boolean {
  return subtract(inner, outer).length === 0;
}
