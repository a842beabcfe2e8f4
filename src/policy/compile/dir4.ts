// Runs of IPv4 address classes -> a two-level directory the kernel searches in a few dependent
// reads, where an LPM trie of 200k prefixes walks ~18 nodes that miss the cache once the
// connection table churns (docs/classifier.md, "IPv4 address directory").
//
// One array of u64 entries, stored as [low word, high word] pairs:
// - entries 0..65535, one per /16 (the address's top 16 bits):
//     high = UNIFORM, low = class        every address of the /16 has one class;
//     high = count,   low = first        the /16's segment: `count` entries from `first`;
// - segment entries, ascending by start: high = first address (low 16 bits), low = class; the
//   first entry of a segment starts at 0. An address's class is that of the last segment entry
//   whose start is at or below the address's low 16 bits (a binary search of <= 16 steps).

import type { Runs } from "./classes.ts";
import type { Dir4 } from "./image.ts";

export const DIR4_TOP = 65536;
export const DIR4_UNIFORM = 0x80000000;

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

/** The number of entries dir4(runs) has, for the compiler's size budget. */
export function countDir4(runs: Runs): number {
  let count = DIR4_TOP;
  walk(runs, (_top, _k, n) => {
    if (n > 1) count += n;
  });
  return count;
}

/** `count` is countDir4(runs). */
export function dir4(runs: Runs, count: number): Dir4 {
  const words = new Uint32Array(2 * count);
  const { starts, classes } = runs;
  let next = DIR4_TOP;
  walk(runs, (top, k, n) => {
    if (n === 1) {
      words[2 * top] = classes[k]!;
      words[2 * top + 1] = DIR4_UNIFORM;
      return;
    }
    const lo = top * 65536;
    words[2 * top] = next;
    words[2 * top + 1] = n;
    for (let i = k; i < k + n; i++, next++) {
      words[2 * next] = classes[i]!;
      words[2 * next + 1] = Math.max(starts[i]!, lo) - lo;
    }
  });
  return { words, length: count };
}

/** The class of IPv4 address `a` (a number), as the kernel's dir4_class() finds it. */
export function dir4Lookup(d: Dir4, a: number): number {
  const w = d.words;
  const top = a >>> 16;
  const low = a & 0xffff;
  if (w[2 * top + 1] === DIR4_UNIFORM) return w[2 * top]!;
  const first = w[2 * top]!;
  let lo = 0;
  let hi = w[2 * top + 1]!;
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (w[2 * (first + mid) + 1]! <= low) lo = mid;
    else hi = mid;
  }
  return w[2 * (first + lo)]!;
}
