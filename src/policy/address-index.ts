// A long address list (a set of thousands of CIDRs) looked up by binary search instead of a walk
// of its entries. For each family and sign (included or excluded), the address line is cut where
// an entry starts or ends; each piece holds the first entry, in list order, that covers it, which
// is the entry a walk would have found first. Built once per entries array, when first asked.

import type { Family } from "../config/ip.ts";
import type { AddressEntry } from "../config/model.ts";

/** Lists shorter than this are walked: the walk is cheaper than building the index. */
export const INDEXED_FROM = 32;

/** Pieces of the line: `starts[i]` up to the next start is covered first by entry `first[i]`. */
interface Pieces<T> {
  starts: ArrayLike<T>;
  /** An entry's position in the list, -1 where none covers. */
  first: Int32Array;
}

interface Line {
  v4: Pieces<number>;
  v6: Pieces<bigint>;
}

export interface AddressIndex {
  /** The entries it was built from, so a list changed in place is indexed again. */
  length: number;
  included: Line;
  excluded: Line;
  /** Whether any entry includes, and any excludes (intervals or others). */
  including: boolean;
  excluding: boolean;
  /** The entries that are not intervals (hostnames, sets), in list order, with their positions. */
  others: { entry: AddressEntry; at: number }[];
}

const built = new WeakMap<AddressEntry[], AddressIndex>();

/** The index of `entries`, built on first use. */
export function addressIndex(entries: AddressEntry[]): AddressIndex {
  const known = built.get(entries);
  if (known && known.length === entries.length) return known;
  const index = buildIndex(entries);
  built.set(entries, index);
  return index;
}

/** The index `entries` has already, if it has one. */
export const knownAddressIndex = (entries: AddressEntry[]): AddressIndex | undefined =>
  built.get(entries);

/**
 * The index of a list of intervals only, as it crosses between threads (typed arrays, bigints,
 * booleans): the accept worker builds it, so the daemon's thread need not.
 */
export type PackedAddressIndex = Omit<AddressIndex, "others">;

export function packAddressIndex(entries: AddressEntry[]): PackedAddressIndex | undefined {
  const { others, ...index } = addressIndex(entries);
  return others.length === 0 ? index : undefined;
}

/** The typed arrays of a packed index, to be moved rather than copied. */
export const addressIndexBuffers = (index: PackedAddressIndex): ArrayBufferLike[] =>
  [index.included, index.excluded].flatMap((line) =>
    [line.v4.starts, line.v4.first, line.v6.first].flatMap((a) =>
      ArrayBuffer.isView(a) ? [a.buffer] : [],
    ),
  );

/** Takes an index packed elsewhere as the index of `entries` (the same intervals, in order). */
export function adoptAddressIndex(entries: AddressEntry[], index: PackedAddressIndex): void {
  if (index.length === entries.length) built.set(entries, { ...index, others: [] });
}

/** The position of the first entry of this sign that holds the address, or -1. */
export function firstHolding(line: Line, family: Family, value: bigint): number {
  return family === 4 ? lookup(line.v4, Number(value)) : lookup(line.v6, value);
}

function lookup<T extends number | bigint>(pieces: Pieces<T>, value: T): number {
  const { starts, first } = pieces;
  let lo = 0;
  let hi = starts.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if ((starts[mid] as T) <= value) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found < 0 ? -1 : (first[found] as number);
}

/** Where each interval entry starts and ends (one past), by its position in the list. */
interface Bounds {
  start4: Float64Array;
  after4: Float64Array;
  start6: bigint[];
  after6: bigint[];
}

function buildIndex(entries: AddressEntry[]): AddressIndex {
  const size = entries.length;
  const bounds: Bounds = {
    start4: new Float64Array(size),
    after4: new Float64Array(size),
    start6: [],
    after6: [],
  };
  const at = {
    included: { v4: [] as number[], v6: [] as number[] },
    excluded: { v4: [] as number[], v6: [] as number[] },
  };
  const others: AddressIndex["others"] = [];
  entries.forEach((entry, i) => {
    if (entry.kind !== "interval") return void others.push({ entry, at: i });
    const side = entry.negate ? at.excluded : at.included;
    if (entry.family === 4) {
      side.v4.push(i);
      bounds.start4[i] = Number(entry.start);
      bounds.after4[i] = Number(entry.end) + 1;
    } else {
      side.v6.push(i);
      bounds.start6[i] = entry.start;
      bounds.after6[i] = entry.end + 1n;
    }
  });
  const line = (side: { v4: number[]; v6: number[] }): Line => ({
    v4: sweep(byStart4(side.v4, bounds.start4), bounds.start4, bounds.after4, size),
    v6: sweep(
      side.v6.sort((a, b) => order(bounds.start6[a]!, bounds.start6[b]!)),
      bounds.start6,
      bounds.after6,
      size,
    ),
  });
  return {
    length: size,
    included: line(at.included),
    excluded: line(at.excluded),
    including: entries.some((e) => !e.negate),
    excluding: entries.some((e) => e.negate),
    others,
  };
}

const order = <T extends number | bigint>(a: T, b: T): number => (a < b ? -1 : a > b ? 1 : 0);

/** Room for a position beside a 32-bit start in one double (exact below 2^53). */
const POSITION_BITS = 2 ** 21;

/** IPv4 positions sorted by start: by a native sort of start and position packed in one number. */
function byStart4(positions: number[], start: Float64Array): ArrayLike<number> {
  if (positions.length > POSITION_BITS || start.length > POSITION_BITS)
    return positions.sort((a, b) => start[a]! - start[b]!);
  const keys = new Float64Array(positions.length);
  positions.forEach((at, i) => (keys[i] = start[at]! * POSITION_BITS + at));
  keys.sort();
  return keys.map((key) => key % POSITION_BITS);
}

/**
 * One pass along the line, over the starts in order: the covering intervals are a min-heap of
 * positions. The first covering changes only where an interval starts or where the first one
 * ends (an interval under it may end unseen: it is dropped when it reaches the top).
 */
function sweep<T extends number | bigint>(
  byStart: ArrayLike<number>,
  start: ArrayLike<T>,
  after: ArrayLike<T>,
  size: number,
): Pieces<T> {
  const heap = new MinHeap(size);
  const starts: T[] = [];
  const first: number[] = [];
  let s = 0;
  while (s < byStart.length || heap.size > 0) {
    const nextStart = s < byStart.length ? start[byStart[s]!]! : undefined;
    const topEnd = heap.size > 0 ? after[heap.top()]! : undefined;
    const point =
      topEnd === undefined || (nextStart !== undefined && nextStart < topEnd) ? nextStart! : topEnd;
    while (heap.size > 0 && after[heap.top()]! <= point) heap.pop();
    for (; s < byStart.length && start[byStart[s]!] === point; s++) heap.push(byStart[s]!);
    const covering = heap.size > 0 ? heap.top() : -1;
    if (first.length === 0 || first[first.length - 1] !== covering) {
      starts.push(point);
      first.push(covering);
    }
  }
  const packed = typeof starts[0] === "number" ? Float64Array.from(starts as number[]) : starts;
  return { starts: packed as ArrayLike<T>, first: Int32Array.from(first) };
}

/** A binary min-heap of list positions. */
class MinHeap {
  private readonly items: Int32Array;
  size = 0;

  constructor(capacity: number) {
    this.items = new Int32Array(capacity);
  }

  top(): number {
    return this.items[0]!;
  }

  push(value: number): void {
    const items = this.items;
    let i = this.size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (items[parent]! <= value) break;
      items[i] = items[parent]!;
      i = parent;
    }
    items[i] = value;
  }

  pop(): void {
    const items = this.items;
    const last = items[--this.size]!;
    if (this.size === 0) return;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= this.size) break;
      const right = left + 1;
      const child = right < this.size && items[right]! < items[left]! ? right : left;
      if (items[child]! >= last) break;
      items[i] = items[child]!;
      i = child;
    }
    items[i] = last;
  }
}
