// Runs of IPv4 address classes -> a directory the kernel reads in one to three dependent reads,
// where an LPM trie of 200k prefixes walks ~18 nodes that miss the cache once the connection
// table churns (docs/classifier.md, "IPv4 address directory").
//
// One array of u64 entries, stored as [low word, high word] pairs, in one of three layouts:
// - "segments" and "blocks": entries 0..65535, one per /16 (the address's top 16 bits):
//     high = UNIFORM, low = class        every address of the /16 has one class;
//     high = count,   low = first        its segment, `count` entries from `first` (with blocks:
//                                        a /16 of at most SEGMENT_MAX runs);
//     high = BITMAP,  low = block        a /16 of more runs: its /24 block at `block`;
// - "wide" (a dense directory, a million CIDRs): entry 0 has high = WIDE, and the /16 t's block
//   is at 8 * (1 + t) for every t, so a lookup reads the /16's block first, without an entry;
// - segment entries, ascending by start: high = first address (low 16 bits), low = class; the
//   first entry of a segment starts at the segment's first address. An address's class is that
//   of the last segment entry whose start is at or below the address's low 16 bits (a binary
//   search of <= 16 steps).
// - a /24 block, 8-aligned (one cache line): entries 0..3 a 256-bit map of the /16's special
//   /24s (bit b of entry b >> 6 for the /24 b), entry 4 low = the class of every other /24, high
//   = 4 bytes, byte j the special /24s of entries 0..j-1; entry 5 low = the first special /24's
//   entry. Special /24 entries, in order: high = UNIFORM, low = class for a whole /24 of another
//   class; high = count, low = first for a /24 cut by /25-/32 runs, its segment (starts still
//   relative to the /16).
// A lookup reads the /16's entry (not in "wide"), then the block's line; a special /24 one entry
// more, a cut one its segment (usually a few entries in one line).

import type { Runs } from "./classes.ts";
import type { Dir4 } from "./image.ts";

export const DIR4_TOP = 65536;
export const DIR4_UNIFORM = 0x80000000;
export const DIR4_BITMAP = 0x40000000;
export const DIR4_WIDE = 0x20000000;
export type Dir4Layout = "segments" | "blocks" | "wide";
/** A /16 of up to this many runs keeps a plain segment (a search of <= 4 reads in 2 lines). */
export const DIR4_SEGMENT_MAX = 16;
/** A /24 block's entries: the bitmap, the common class and ranks, the first special's entry. */
export const DIR4_BLOCK_HEAD = 6;

const runEnd = (runs: Runs, k: number): number =>
  k + 1 < runs.starts.length ? runs.starts[k + 1]! : runs.size;

/**
 * Calls visit(top, k, n) for each /16: its pieces are runs k..k+n-1, the first one clipped to the
 * /16's start (no arrays per /16: a compile walks 65,536 of them for each directory). A stretch of
 * /16s that one run k covers whole goes to whole(from, to, k) at once instead, for the /16s
 * from..to-1: most of the address space is such stretches, and a `moat check` runs this code
 * before it is optimised.
 */
function walk(
  runs: Runs,
  visit: (top: number, k: number, n: number) => void,
  whole: (from: number, to: number, k: number) => void,
): void {
  const { starts } = runs;
  let k = 0;
  let top = 0;
  while (top < DIR4_TOP) {
    const lo = top * 65536;
    const hi = lo + 65536;
    while (runEnd(runs, k) <= lo) k++;
    // run k starts at or before lo: the run before it ends there
    const end = runEnd(runs, k);
    if (end >= hi) {
      const to = Math.min(DIR4_TOP, Math.floor(end / 65536));
      whole(top, to, k);
      top = to;
      continue;
    }
    let j = k + 1;
    while (j < starts.length && starts[j]! < hi) j++;
    visit(top, k, j - k);
    top++;
  }
}

// per /24 of the /16 being laid out: the run covering its first address, its run count, and
// whether it is special (cut, or whole but not of the block's common class)
const first24 = new Int32Array(256);
const count24 = new Int32Array(256);
const special24 = new Uint8Array(256);
// the classes of whole /24s met in the /16, and how many /24s each has (the first 16 met)
const seen = new Uint32Array(16);
const votes = new Uint32Array(16);
const bits = new Uint32Array(8);

/**
 * Fills first24/count24/special24 for the /16 `top` whose runs are k..k+n-1; returns its common
 * class (the most /24s' class among the first 16 classes met) and its special /24 count.
 */
function slice24(runs: Runs, top: number, k: number, n: number): [number, number] {
  const { starts, classes } = runs;
  const lo = top * 65536;
  let kinds = 0;
  let r = k;
  for (let b = 0; b < 256; b++) {
    const s = lo + b * 256;
    while (r + 1 < k + n && starts[r + 1]! <= s) r++;
    let j = r + 1;
    while (j < k + n && starts[j]! < s + 256) j++;
    first24[b] = r;
    count24[b] = j - r;
    if (j - r > 1) continue;
    const c = classes[r]!;
    let v = 0;
    while (v < kinds && seen[v] !== c) v++;
    if (v === kinds && kinds < seen.length) {
      seen[kinds] = c;
      votes[kinds++] = 0;
    }
    if (v < kinds) votes[v]!++;
  }
  let common = classes[k]!;
  let most = 0;
  for (let v = 0; v < kinds; v++) if (votes[v]! > most) [common, most] = [seen[v]!, votes[v]!];
  let m = 0;
  for (let b = 0; b < 256; b++) {
    const special = count24[b]! > 1 || classes[first24[b]!]! !== common;
    special24[b] = special ? 1 : 0;
    if (special) m++;
  }
  return [common, m];
}

/**
 * Lays the directory out into `words` (or only counts its entries when null): one walk for both,
 * so the count the budget checks is the size written.
 */
function layout(runs: Runs, words: Uint32Array | null, mode: Dir4Layout): number {
  const { starts, classes } = runs;
  const put = (i: number, low: number, high: number): void => {
    if (!words) return;
    words[2 * i] = low;
    words[2 * i + 1] = high;
  };
  const wide = mode === "wide";
  let next = wide ? 8 * (1 + DIR4_TOP) : DIR4_TOP;
  if (wide) put(0, 0, DIR4_WIDE);
  const segment = (k: number, n: number, from: number, lo: number): number => {
    const at = next;
    if (words)
      for (let i = k; i < k + n; i++)
        put(next + i - k, classes[i]!, Math.max(starts[i]!, from) - lo);
    next += n;
    return at;
  };
  // the /16 `top`'s block at `block` (its bitmap entries are 0 as allocated), its special /24s'
  // entries and segments at `next`
  const block24 = (top: number, k: number, n: number, block: number): void => {
    const lo = top * 65536;
    if (n === 1) return put(block + 4, classes[k]!, 0);
    const [common, m] = slice24(runs, top, k, n);
    let entry = next;
    next += m;
    if (!words) {
      for (let b = 0; b < 256; b++) if (count24[b]! > 1) next += count24[b]!;
      return;
    }
    bits.fill(0);
    let ranks = 0;
    let seenSpecial = 0;
    for (let b = 0; b < 256; b++) {
      if (b % 64 === 0) ranks |= seenSpecial << (8 * (b / 64));
      if (!special24[b]) continue;
      bits[b >>> 5]! |= 1 << (b & 31);
      seenSpecial++;
    }
    for (let j = 0; j < 4; j++) put(block + j, bits[2 * j]!, bits[2 * j + 1]!);
    put(block + 4, common, ranks >>> 0);
    put(block + 5, entry, 0);
    for (let b = 0; b < 256; b++) {
      if (!special24[b]) continue;
      const r = first24[b]!;
      const c = count24[b]!;
      if (c === 1) put(entry++, classes[r]!, DIR4_UNIFORM);
      else put(entry++, segment(r, c, lo + b * 256, lo), c);
    }
  };
  // a /16 of one class: its entry, or in "wide" its block's common class
  const whole = (from: number, to: number, k: number): void => {
    if (!words) return;
    const c = classes[k]!;
    if (wide) for (let t = from; t < to; t++) put(8 * (1 + t) + 4, c, 0);
    else for (let t = from; t < to; t++) put(t, c, DIR4_UNIFORM);
  };
  walk(
    runs,
    (top, k, n) => {
      const lo = top * 65536;
      if (wide) block24(top, k, n, 8 * (1 + top));
      else if (n === 1) put(top, classes[k]!, DIR4_UNIFORM);
      else if (n <= DIR4_SEGMENT_MAX || mode === "segments") put(top, segment(k, n, lo, lo), n);
      else {
        const block = (next + 7) & ~7;
        next = block + DIR4_BLOCK_HEAD;
        put(top, block, DIR4_BITMAP);
        block24(top, k, n, block);
      }
    },
    whole,
  );
  return next;
}

/** The number of entries dir4(runs, layout) has, for the compiler's size budget. */
export function countDir4(runs: Runs, mode: Dir4Layout = "blocks"): number {
  return layout(runs, null, mode);
}

/**
 * "wide" when at least 3/4 of the /16s have blocks (it then has about as many entries as
 * "blocks": 8 a /16, against 1 + 6 + alignment a block), else "blocks"; with its count. Without
 * blocks ("segments") every mixed /16 is a segment: about half the entries for a million CIDRs,
 * searched in more reads (the compiler's choice when the others exceed the budget).
 */
export function bestDir4(runs: Runs): { mode: Dir4Layout; count: number } {
  let dense = 0;
  walk(
    runs,
    (_top, _k, n) => {
      if (n > DIR4_SEGMENT_MAX) dense++;
    },
    () => {},
  );
  const mode = dense >= (3 * DIR4_TOP) / 4 ? "wide" : "blocks";
  return { mode, count: countDir4(runs, mode) };
}

/** `count` is countDir4(runs, mode). */
export function dir4(runs: Runs, count: number, mode: Dir4Layout = "blocks"): Dir4 {
  const words = new Uint32Array(2 * count);
  layout(runs, words, mode);
  return { words, length: count };
}

const bitCount = (x: number): number => {
  let n = 0;
  for (let v = x >>> 0; v; v &= v - 1) n++;
  return n;
};

/** The class of IPv4 address `a` (a number), as the kernel's dir4_class() finds it. */
export function dir4Lookup(d: Dir4, a: number): number {
  const w = d.words;
  const low = a & 0xffff;
  let at = a >>> 16;
  let block = -1;
  if (w[1] === DIR4_WIDE) block = 8 * (1 + at);
  else if (w[2 * at + 1] === DIR4_BITMAP) block = w[2 * at]!;
  if (block >= 0) {
    const b = (low >>> 8) & 255;
    const j = b >>> 6;
    const half = w[2 * (block + j) + ((b >>> 5) & 1)]!;
    if (!((half >>> (b & 31)) & 1)) return w[2 * (block + 4)]!;
    let rank = (w[2 * (block + 4) + 1]! >>> (8 * j)) & 255;
    if (b & 32) rank += bitCount(w[2 * (block + j)]!);
    rank += bitCount(half & ((1 << (b & 31)) - 1));
    at = w[2 * (block + 5)]! + rank;
  }
  if (w[2 * at + 1] === DIR4_UNIFORM) return w[2 * at]!;
  const first = w[2 * at]!;
  let lo = 0;
  let hi = w[2 * at + 1]!;
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (w[2 * (first + mid) + 1]! <= low) lo = mid;
    else hi = mid;
  }
  return w[2 * (first + lo)]!;
}
