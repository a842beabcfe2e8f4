// Sets of numbers as flat, sorted, disjoint, non-adjacent half-open intervals:
// [s0, e0, s1, e1, ...] means [s0, e0) ∪ [s1, e1) ∪ ... Numbers, not bigints: IPv4 addresses are
// exact in a double, IPv6 addresses are first mapped to ranks (address-regions.ts).

export type Flat = Float64Array;

export const EMPTY: Flat = new Float64Array(0);

export const whole = (size: number): Flat => Float64Array.of(0, size);

// Small sets (a rule's one CIDR, one port range) are views into shared chunks: a Float64Array of
// its own costs some 230 bytes of heap, a view about 100, and a policy has one or two a rule.
const CHUNK = 4096;
let chunk = new Float64Array(0);
let used = 0;

/** `length` numbers (at most CHUNK) for a small set, zeroed. */
function small(length: number): Float64Array {
  if (used + length > chunk.length) {
    chunk = new Float64Array(CHUNK);
    used = 0;
  }
  const out = chunk.subarray(used, used + length);
  used += length;
  return out;
}

/** The set [start, end). */
export function interval(start: number, end: number): Flat {
  const out = small(2);
  out[0] = start;
  out[1] = end;
  return out;
}

export function isWhole(set: Flat, size: number): boolean {
  return set.length === 2 && set[0] === 0 && set[1] === size;
}

/** The union of intervals given as separate start and end arrays (any order, each start < end). */
export function unionOf(starts: Float64Array, ends: Float64Array): Flat {
  const n = starts.length;
  if (n === 0) return EMPTY;
  // the depth at x is (#starts <= x) - (#ends <= x): the two lists can be sorted apart
  starts.sort();
  ends.sort();
  const out = new Float64Array(2 * n);
  let length = 0;
  let depth = 0;
  let open = 0;
  let i = 0;
  let j = 0;
  while (j < n) {
    // a start at the point where another interval ends joins them (adjacent intervals merge)
    if (i < n && starts[i]! <= ends[j]!) {
      if (depth++ === 0) open = starts[i]!;
      i++;
    } else {
      if (--depth === 0) {
        out[length++] = open;
        out[length++] = ends[j]!;
      }
      j++;
    }
  }
  return out.slice(0, length);
}

/** The union of several flat sets. */
export function unionAll(sets: readonly Flat[]): Flat {
  if (sets.length === 1) return sets[0]!;
  let total = 0;
  for (const s of sets) total += s.length / 2;
  const starts = new Float64Array(total);
  const ends = new Float64Array(total);
  let k = 0;
  for (const s of sets)
    for (let i = 0; i < s.length; i += 2) {
      starts[k] = s[i]!;
      ends[k++] = s[i + 1]!;
    }
  return unionOf(starts, ends);
}

/** a \ b. */
export function subtract(a: Flat, b: Flat): Flat {
  if (a.length === 0 || b.length === 0) return a;
  // each interval of b splits at most one interval of a in two
  const out = new Float64Array(a.length + b.length);
  let length = 0;
  let j = 0;
  for (let i = 0; i < a.length; i += 2) {
    let start = a[i]!;
    const end = a[i + 1]!;
    while (j < b.length && b[j + 1]! <= start) j += 2;
    let k = j;
    while (k < b.length && b[k]! < end) {
      if (b[k]! > start) {
        out[length++] = start;
        out[length++] = b[k]!;
      }
      start = Math.max(start, b[k + 1]!);
      if (start >= end) break;
      k += 2;
    }
    if (start < end) {
      out[length++] = start;
      out[length++] = end;
    }
  }
  return out.slice(0, length);
}

/** Adds `offset` to every bound. */
export function shift(set: Flat, offset: number): Flat {
  const out = set.length <= 16 ? small(set.length) : new Float64Array(set.length);
  for (let i = 0; i < set.length; i++) out[i] = set[i]! + offset;
  return out;
}

/** The number of intervals. */
export const intervalCount = (set: Flat): number => set.length / 2;
