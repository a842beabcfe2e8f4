// One dimension's classes: sweep the sorted interval bounds of every rule that constrains the
// dimension, keep the set of rules covering the current segment (hashed incrementally), and give
// each distinct set a class. Rules that do not constrain the dimension (wildcards) are left out:
// they are in every class implicitly, so a catch-all rule does not split or inflate anything.

import { SIZE4 } from "./address-regions.ts";
import type { RuleDimensions } from "./dimensions.ts";
import type { Flat } from "./intervals.ts";
import { KeyMap, type ClassSets, type ClassStore, type Zobrist } from "./set-index.ts";

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

function lowerBound(points: Float64Array, length: number, value: number): number {
  let lo = 0;
  let hi = length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (points[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Compressed row storage of rule events per bound index. */
function events(count: number, at: Uint32Array, rules: Uint32Array): [Uint32Array, Uint32Array] {
  const off = new Uint32Array(count + 1);
  for (const p of at) off[p + 1] = off[p + 1]! + 1;
  for (let i = 0; i < count; i++) off[i + 1] = off[i + 1]! + off[i]!;
  const fill = off.slice(0, count);
  const out = new Uint32Array(at.length);
  for (let k = 0; k < at.length; k++) out[fill[at[k]!]!++] = rules[k]!;
  return [off, out];
}

export function sweep(size: number, items: SweepItem[], store: ClassStore, z: Zobrist): Runs {
  let total = 0;
  for (const item of items) total += item.region.length / 2;
  // every bound, sorted and unique
  const points = new Float64Array(2 * total + 2);
  points[0] = 0;
  points[1] = size;
  let n = 2;
  for (const { region } of items) {
    points.set(region, n);
    n += region.length;
  }
  points.sort();
  let unique = 0;
  for (let i = 0; i < n; i++)
    if (i === 0 || points[i] !== points[unique - 1]) points[unique++] = points[i]!;
  // each interval becomes an "add" at its start's index and a "remove" at its end's index
  const addAt = new Uint32Array(total);
  const removeAt = new Uint32Array(total);
  const ruleOf = new Uint32Array(total);
  let k = 0;
  for (const { rule, region } of items)
    for (let i = 0; i < region.length; i += 2) {
      addAt[k] = lowerBound(points, unique, region[i]!);
      removeAt[k] = lowerBound(points, unique, region[i + 1]!);
      ruleOf[k++] = rule;
    }
  const [addOff, adds] = events(unique, addAt, ruleOf);
  const [removeOff, removes] = events(unique, removeAt, ruleOf);

  const { z1, z2 } = z;
  const active = new Uint32Array(z1.length);
  const position = new Int32Array(z1.length).fill(-1);
  let length = 0;
  let h1 = 0;
  let h2 = 0;
  const seen = new KeyMap();
  const scratch = new Uint32Array(z1.length);
  const runStarts: number[] = [];
  const runClasses: number[] = [];
  for (let p = 0; p + 1 < unique; p++) {
    for (let e = removeOff[p]!; e < removeOff[p + 1]!; e++) {
      const rule = removes[e]!;
      h1 ^= z1[rule]!;
      h2 ^= z2[rule]!;
      const at = position[rule]!;
      const last = active[--length]!;
      active[at] = last;
      position[last] = at;
      position[rule] = -1;
    }
    for (let e = addOff[p]!; e < addOff[p + 1]!; e++) {
      const rule = adds[e]!;
      h1 ^= z1[rule]!;
      h2 ^= z2[rule]!;
      position[rule] = length;
      active[length++] = rule;
    }
    let cls = seen.get(h1, h2, length);
    if (cls < 0) {
      const members = scratch.subarray(0, length);
      members.set(active.subarray(0, length));
      members.sort();
      cls = store.classOf(members);
      seen.set(h1, h2, length, cls);
    }
    if (runClasses.length === 0 || runClasses[runClasses.length - 1] !== cls) {
      runStarts.push(points[p]!);
      runClasses.push(cls);
    }
  }
  return { size, starts: Float64Array.from(runStarts), classes: Uint32Array.from(runClasses) };
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

/** The classes of an address dimension (both families share class numbers) and their runs. */
export function addressDimension(
  dims: RuleDimensions[],
  pick: (d: RuleDimensions) => RuleDimensions["remote"],
  include: Uint8Array,
  size6: number,
  store: ClassStore,
  z: Zobrist,
): AddressDimension {
  // class 0 is the empty set: the trie's miss
  store.classOf([]);
  const items4: SweepItem[] = [];
  const items6: SweepItem[] = [];
  dims.forEach((d, rule) => {
    const region = pick(d);
    if (include[rule] !== 1 || !region) return;
    if (region.v4.length > 0) items4.push({ rule, region: region.v4 });
    if (region.v6.length > 0) items6.push({ rule, region: region.v6 });
  });
  const v4 = sweep(SIZE4, items4, store, z);
  const v6 = sweep(size6, items6, store, z);
  return { sets: store.finish(), v4, v6 };
}

/** The classes of a port dimension and its dense value -> class table. */
export function valueDimension(
  dims: RuleDimensions[],
  pick: (d: RuleDimensions) => Float64Array | undefined,
  include: Uint8Array,
  size: number,
  store: ClassStore,
  z: Zobrist,
): { sets: ClassSets; table: Uint32Array } {
  const items: SweepItem[] = [];
  dims.forEach((d, rule) => {
    const region = pick(d);
    if (include[rule] === 1 && region) items.push({ rule, region });
  });
  const table = denseTable(sweep(size, items, store, z));
  return { sets: store.finish(), table };
}
