// One dimension's classes: sweep the sorted interval bounds of every rule that constrains the
// dimension, keep the set of rules covering the current segment (hashed incrementally), and give
// each distinct set a class. Rules that do not constrain the dimension (wildcards) are left out:
// they are in every class implicitly, so a catch-all rule does not split or inflate anything.

import { SIZE4 } from "./address-regions.ts";
import { Column } from "./dimensions.ts";
import type { Flat } from "./intervals.ts";
import type { ClassSets, ClassStore, Zobrist } from "./set-index.ts";

export interface SweepItem {
  rule: number;
  region: Flat;
}

/** Maximal runs of one class over [0, size): run k is [starts[k], starts[k + 1] or size). */
export interface Runs {
  size: number;
  starts: Float64Array;
  classes: Uint32Array;
}

const RADIX_BITS = 11;
const RADIX = 1 << RADIX_BITS;
const DIGIT = RADIX - 1;
const TWO32 = 2 ** 32;

/**
 * Buffers the sweeps of one compile share, grown as needed (a sweep's own would be garbage as
 * soon as it is done).
 */
export class SweepBuffers {
  private readonly words: Uint32Array<ArrayBuffer>[] = [];

  /** Buffer `which` (0..6), at least `length` long; its contents are left over. */
  get(which: number, length: number): Uint32Array {
    let buffer = this.words[which];
    if (!buffer || buffer.length < length) {
      // some room to spare: the next sweep's bounds are often a few more
      buffer = new Uint32Array(Math.max(length + (length >>> 3), 1024));
      this.words[which] = buffer;
    }
    return buffer;
  }
}

/** Bounds (keys) and what happens there (events), in one order. */
interface Events {
  keys: Uint32Array | Float64Array;
  events: Uint32Array;
}

/**
 * The events ordered by key: an LSD radix sort of 11-bit digits moving both arrays (three passes
 * at most for 32-bit keys; a pass whose digit is the same for every key is skipped), instead of
 * sorting the bounds and finding each one again by binary search. The order among equal keys is
 * not used. Keys past 32 bits (not a space the compiler builds) take a comparison sort.
 */
function sortEvents(input: Events, max: number, buffers: SweepBuffers): Events {
  const m = input.keys.length;
  if (m < 2) return input;
  if (!(input.keys instanceof Uint32Array)) {
    const { keys, events } = input;
    const order = Array.from({ length: m }, (_, i) => i).sort(
      (x, y) => keys[x]! - keys[y]! || x - y,
    );
    return {
      keys: Float64Array.from(order, (i) => keys[i]!),
      events: Uint32Array.from(order, (i) => events[i]!),
    };
  }
  let passes = 1;
  while (passes < 3 && max >= 2 ** (RADIX_BITS * passes)) passes++;
  const counts = new Uint32Array(passes * RADIX);
  const keys = input.keys;
  for (let i = 0; i < m; i++) {
    const key = keys[i]!;
    counts[key & DIGIT]!++;
    if (passes > 1) counts[RADIX + ((key >>> RADIX_BITS) & DIGIT)]!++;
    if (passes > 2) counts[2 * RADIX + (key >>> (2 * RADIX_BITS))]!++;
  }
  let from = input as { keys: Uint32Array; events: Uint32Array };
  let to = { keys: buffers.get(2, m).subarray(0, m), events: buffers.get(3, m).subarray(0, m) };
  for (let pass = 0; pass < passes; pass++) {
    const base = pass * RADIX;
    const shift = pass * RADIX_BITS;
    // every key has this digit: the order stays
    if (counts[base + ((from.keys[0]! >>> shift) & DIGIT)] === m) continue;
    let sum = 0;
    for (let d = 0; d < RADIX; d++) {
      const c = counts[base + d]!;
      counts[base + d] = sum;
      sum += c;
    }
    const { keys: fk, events: fe } = from;
    const { keys: tk, events: te } = to;
    for (let i = 0; i < m; i++) {
      const key = fk[i]!;
      const at = counts[base + ((key >>> shift) & DIGIT)]!++;
      tk[at] = key;
      te[at] = fe[i]!;
    }
    [from, to] = [to, from];
  }
  return from;
}

/**
 * The runs of `count` rules' sets: rule ids[k]'s (ids null: picks[k]'s) is column's picks[k].
 */
function sweepColumn(
  size: number,
  column: Column,
  picks: Uint32Array,
  ids: Uint32Array | null,
  count: number,
  store: ClassStore,
  z: Zobrist,
  buffers = new SweepBuffers(),
): Runs {
  // every bound below size, with its event: rule * 2 + 1 for an interval's start, rule * 2 for
  // its end (the ends at size are never reached)
  const { off, big } = column;
  let m = 0;
  for (let k = 0; k < count; k++) m += column.size(picks[k]!);
  const unsorted: Events = {
    keys: size <= TWO32 ? buffers.get(0, m) : new Float64Array(m),
    events: buffers.get(1, m),
  };
  let e = 0;
  let max = 0;
  for (let k = 0; k < count; k++) {
    const pick = picks[k]!;
    const rule = ids ? ids[k]! : pick;
    const kept = big.size > 0 ? big.get(pick) : undefined;
    const data = kept ?? column.data;
    // a picked rule has numbers: off is there unless its set is kept
    const to = kept ? kept.length : off![pick + 1]!;
    for (let j = kept ? 0 : off![pick]!; j < to; j += 2) {
      const start = data[j]!;
      const end = data[j + 1]!;
      unsorted.keys[e] = start;
      unsorted.events[e++] = rule * 2 + 1;
      if (start > max) max = start;
      if (end >= size) continue;
      unsorted.keys[e] = end;
      unsorted.events[e++] = rule * 2;
      if (end > max) max = end;
    }
  }
  m = e;
  unsorted.keys = unsorted.keys.subarray(0, m);
  unsorted.events = unsorted.events.subarray(0, m);
  const { keys, events } = sortEvents(unsorted, max, buffers);
  // segments: one from 0, one from each other distinct bound
  let segments = 1;
  for (let t = 0; t < m; t++) if (keys[t]! > 0 && (t === 0 || keys[t] !== keys[t - 1])) segments++;

  // a new class per segment at most, and (mostly) not many more than rules
  store.expect(Math.min(segments, count));
  const { z1, z2 } = z;
  // contents left over from another sweep are never read: an entry is written before it is read
  const active = buffers.get(4, count);
  const position = buffers.get(5, z1.length);
  let length = 0;
  let h1 = 0;
  let h2 = 0;
  const scratch = buffers.get(6, count);
  const runStarts = new Float64Array(segments);
  const runClasses = new Uint32Array(segments);
  let runs = 0;
  let t = 0;
  for (let x = 0; x < size;) {
    // the bounds at x: the intervals ending there leave, then those starting there enter
    let next = t;
    while (next < m && keys[next] === x) next++;
    for (let u = t; u < next; u++) {
      const e = events[u]!;
      if ((e & 1) === 1) continue;
      const rule = e >>> 1;
      h1 ^= z1[rule]!;
      h2 ^= z2[rule]!;
      const at = position[rule]!;
      const last = active[--length]!;
      active[at] = last;
      position[last] = at;
    }
    for (let u = t; u < next; u++) {
      const e = events[u]!;
      if ((e & 1) === 0) continue;
      const rule = e >>> 1;
      h1 ^= z1[rule]!;
      h2 ^= z2[rule]!;
      position[rule] = length;
      active[length++] = rule;
    }
    t = next;
    let cls = store.known(h1, h2, length);
    if (cls < 0) {
      // the members ascending: an insertion sort (a segment is mostly covered by few rules)
      if (length > 32) {
        for (let a = 0; a < length; a++) scratch[a] = active[a]!;
        scratch.subarray(0, length).sort();
      } else
        for (let a = 0; a < length; a++) {
          const v = active[a]!;
          let b = a;
          for (; b > 0 && scratch[b - 1]! > v; b--) scratch[b] = scratch[b - 1]!;
          scratch[b] = v;
        }
      cls = store.add(scratch, 0, length, h1, h2);
    }
    if (runs === 0 || runClasses[runs - 1] !== cls) {
      runStarts[runs] = x;
      runClasses[runs++] = cls;
    }
    x = next < m ? keys[next]! : size;
  }
  return { size, starts: runStarts.subarray(0, runs), classes: runClasses.subarray(0, runs) };
}

export function sweep(size: number, items: SweepItem[], store: ClassStore, z: Zobrist): Runs {
  const column = new Column(items.length);
  const picks = new Uint32Array(items.length);
  const ids = new Uint32Array(items.length);
  items.forEach((item, k) => {
    column.push(item.region);
    picks[k] = k;
    ids[k] = item.rule;
  });
  return sweepColumn(size, column, picks, ids, items.length, store, z);
}

/** A dense table value -> class, for the small dimensions (ports, client ports). */
export function denseTable(runs: Runs): Uint32Array {
  const table = new Uint32Array(runs.size);
  for (let k = 0; k < runs.starts.length; k++) {
    const end = k + 1 < runs.starts.length ? runs.starts[k + 1]! : runs.size;
    table.fill(runs.classes[k]!, runs.starts[k]!, end);
  }
  return table;
}

export interface AddressDimension {
  sets: ClassSets;
  v4: Runs;
  v6: Runs;
}

/** The rules with include[rule] = 1 whose set in the column is not empty (nor a wildcard). */
function picked(column: Column, include: Uint8Array): { picks: Uint32Array; count: number } {
  const picks = new Uint32Array(include.length);
  let count = 0;
  for (let rule = 0; rule < include.length; rule++)
    if (include[rule] === 1 && column.wild[rule] === 0 && column.size(rule) > 0)
      picks[count++] = rule;
  return { picks, count };
}

/** The classes of an address dimension (both families share class numbers) and their runs. */
export function addressDimension(
  v4: Column,
  v6: Column,
  include: Uint8Array,
  size6: number,
  store: ClassStore,
  z: Zobrist,
  buffers = new SweepBuffers(),
): AddressDimension {
  // class 0 is the empty set: the trie's miss
  store.classOf([]);
  const in4 = picked(v4, include);
  const in6 = picked(v6, include);
  return {
    v4: sweepColumn(SIZE4, v4, in4.picks, null, in4.count, store, z, buffers),
    v6: sweepColumn(size6, v6, in6.picks, null, in6.count, store, z, buffers),
    sets: store.finish(),
  };
}

/** The classes of a port dimension and its dense value -> class table. */
export function valueDimension(
  column: Column,
  include: Uint8Array,
  size: number,
  store: ClassStore,
  z: Zobrist,
  buffers = new SweepBuffers(),
): { sets: ClassSets; table: Uint32Array } {
  const { picks, count } = picked(column, include);
  const table = denseTable(sweepColumn(size, column, picks, null, count, store, z, buffers));
  return { sets: store.finish(), table };
}
