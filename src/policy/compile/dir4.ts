// Runs of IPv4 address classes -> a directory the kernel reads in one to three dependent reads,
// where an LPM trie of 200k prefixes walks ~18 nodes that miss the cache once the connection
// table churns (docs/classifier.md, "IPv4 address directory").
//
// One array of u64 entries, stored as [low word, high word] pairs:
// - entries 0..65535, one per /16 (the address's top 16 bits):
//     high = UNIFORM, low = class        every address of the /16 has one class;
//     high = count,   low = first        a /16 of at most SEGMENT_MAX runs: its segment, `count`
//                                        entries from `first`;
//     high = BITMAP,  low = block        a /16 of more runs: its /24 block at `block`;
// - segment entries, ascending by start: high = first address (low 16 bits), low = class; the
//   first entry of a segment starts at the segment's first address. An address's class is that
//   of the last segment entry whose start is at or below the address's low 16 bits (a binary
//   search of <= 16 steps).
// - a /24 block, 8-aligned (one cache line): entries 0..3 a 256-bit map of the /16's special
//   /24s (bit b of entry b >> 6 for the /24 b), entry 4 low = the class of every other /24, high
//   = 4 bytes, byte j the special /24s of entries 0..j-1; then one entry per special /24, in
//   order: high = UNIFORM, low = class for a whole /24 of another class; high = count, low =
//   first for a /24 cut by /25-/32 runs, its segment (starts still relative to the /16).
// A lookup reads the /16's entry, then the block's line; a special /24 one entry more, a cut
// one its segment (usually a few entries in one line).

import type { Runs } from "./classes.ts";
import type { Dir4 } from "./image.ts";

export const DIR4_TOP = 65536;
export const DIR4_UNIFORM = 0x80000000;
export const DIR4_BITMAP = 0x40000000;
/** A /16 of up to this many runs keeps a plain segment (a search of <= 4 reads in 2 lines). */
export const DIR4_SEGMENT_MAX = 16;
/** The entries of a /24 block before its special /24s: the bitmap and the default/ranks entry. */
export const DIR4_BLOCK_HEAD = 5;

const runEnd = (runs: Runs, k: number): number =>
  k + 1 < runs.starts.length ? runs.starts[k + 1]! : runs.size;

/**
 * Calls visit(top, k, n) for each /16: its pieces are runs k..k+n-1, the first one clipped to the
 * /16's start (no arrays per /16: a compile walks 65,536 of them for each directory).
 */
function walk(runs: Runs, visit: (top: number, k: number, n: number) => void): void {
  const { starts } = runs;
  let k = 0;
  for (let top = 0; top < DIR4_TOP; top++) {
    const lo = top * 65536;
    const hi = lo + 65536;
    while (runEnd(runs, k) <= lo) k++;
    let j = k + 1;
    while (j < starts.length && starts[j]! < hi) j++;
    visit(top, k, j - k);
  }
}

// per /24 of the /16 being laid out: the run covering its first address, and its run count
const first24 = new Int32Array(256);
const count24 = new Int32Array(256);

/** Fills first24/count24 for the /16 `top` whose runs are k..k+n-1; returns the default class. */
function slice24(runs: Runs, top: number, k: number, n: number): number {
  const { starts, classes } = runs;
  const lo = top * 65536;
  const votes = new Map<number, number>();
  let best = classes[k]!;
  let bestVotes = 0;
  let r = k;
  for (let b = 0; b < 256; b++) {
    const s = lo + b * 256;
    while (r + 1 < k + n && starts[r + 1]! <= s) r++;
    let j = r + 1;
    while (j < k + n && starts[j]! < s + 256) j++;
    first24[b] = r;
    count24[b] = j - r;
    if (j - r === 1) {
      const c = classes[r]!;
      const v = (votes.get(c) ?? 0) + 1;
      votes.set(c, v);
      if (v > bestVotes) [best, bestVotes] = [c, v];
    }
  }
  return best;
}

/**
 * Lays the directory out into `words` (or only counts its entries when null): one walk for both,
 * so the count the budget checks is the size written.
 */
function layout(runs: Runs, words: Uint32Array | null): number {
  const { starts, classes } = runs;
  const put = (i: number, low: number, high: number): void => {
    if (!words) return;
    words[2 * i] = low;
    words[2 * i + 1] = high;
  };
  let next = DIR4_TOP;
  walk(runs, (top, k, n) => {
    const lo = top * 65536;
    const segment = (k: number, n: number, from: number): number => {
      const at = next;
      for (let i = k; i < k + n; i++, next++)
        put(next, classes[i]!, Math.max(starts[i]!, from) - lo);
      return at;
    };
    if (n === 1) put(top, classes[k]!, DIR4_UNIFORM);
    else if (n <= DIR4_SEGMENT_MAX) put(top, segment(k, n, lo), n);
    else {
      const fallback = slice24(runs, top, k, n);
      const special = (b: number) => count24[b]! > 1 || classes[first24[b]!]! !== fallback;
      const block = (next + 7) & ~7;
      for (; next < block; next++) put(next, 0, 0);
      put(top, block, DIR4_BITMAP);
      const bits = new Uint32Array(8);
      let ranks = 0;
      let m = 0;
      for (let b = 0; b < 256; b++) {
        if (b % 64 === 0) ranks |= m << (8 * (b / 64));
        if (!special(b)) continue;
        bits[b >>> 5]! |= 1 << (b & 31);
        m++;
      }
      for (let j = 0; j < 4; j++) put(block + j, bits[2 * j]!, bits[2 * j + 1]!);
      put(block + 4, fallback, ranks >>> 0);
      next = block + DIR4_BLOCK_HEAD + m;
      let s = block + DIR4_BLOCK_HEAD;
      for (let b = 0; b < 256; b++) {
        if (!special(b)) continue;
        const r = first24[b]!;
        const c = count24[b]!;
        if (c === 1) put(s++, classes[r]!, DIR4_UNIFORM);
        else put(s++, segment(r, c, lo + b * 256), c);
      }
    }
  });
  return next;
}

/** The number of entries dir4(runs) has, for the compiler's size budget. */
export function countDir4(runs: Runs): number {
  return layout(runs, null);
}

/** `count` is countDir4(runs). */
export function dir4(runs: Runs, count: number): Dir4 {
  const words = new Uint32Array(2 * count);
  layout(runs, words);
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
  if (w[2 * at + 1] === DIR4_BITMAP) {
    const block = w[2 * at]!;
    const b = (low >>> 8) & 255;
    const j = b >>> 6;
    const half = w[2 * (block + j) + ((b >>> 5) & 1)]!;
    if (!((half >>> (b & 31)) & 1)) return w[2 * (block + 4)]!;
    let rank = (w[2 * (block + 4) + 1]! >>> (8 * j)) & 255;
    if (b & 32) rank += bitCount(w[2 * (block + j)]!);
    rank += bitCount(half & ((1 << (b & 31)) - 1));
    at = block + DIR4_BLOCK_HEAD + rank;
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
