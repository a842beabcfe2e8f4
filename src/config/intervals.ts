// Sets of numbers as sorted, disjoint, merged closed intervals; the algebra the shadowing check
// (and a compiler) needs for address and port sets. Pure.

export type Interval = readonly [bigint, bigint];
export type IntervalSet = readonly Interval[];

export function normalize(intervals: Iterable<Interval>): IntervalSet {
  const sorted = [...intervals].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
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
