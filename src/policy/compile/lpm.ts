// Runs of address classes -> LPM trie entries: each maximal run of one class becomes the fewest
// aligned CIDR blocks covering it. Runs of class 0 are not written: a trie miss is class 0.
// The entries' `addr` are views into one buffer per trie (a million own 4-byte arrays would
// cost ~120 MB more heap); each view has the right byteOffset and length.

import type { LpmEntry } from "./image.ts";
import type { Runs } from "./classes.ts";

const runEnd = (runs: Runs, k: number): number =>
  k + 1 < runs.starts.length ? runs.starts[k + 1]! : runs.size;

/** The largest aligned power-of-two block starting at lo and ending at or before hi (v4). */
function block4(lo: number, hi: number): number {
  let size = lo === 0 ? 2 ** 32 : (lo & -lo) >>> 0;
  while (size > hi - lo) size /= 2;
  return size;
}

export function countLpm4(runs: Runs): number {
  let count = 0;
  for (let k = 0; k < runs.starts.length; k++) {
    if (runs.classes[k] === 0) continue;
    const hi = runEnd(runs, k);
    for (let lo = runs.starts[k]!; lo < hi; lo += block4(lo, hi)) count++;
  }
  return count;
}

/** `count` is countLpm4(runs). */
export function lpmEntries4(runs: Runs, count: number): LpmEntry[] {
  const out: LpmEntry[] = [];
  const bytes = new Uint8Array(4 * count);
  for (let k = 0; k < runs.starts.length; k++) {
    const cls = runs.classes[k]!;
    if (cls === 0) continue;
    const hi = runEnd(runs, k);
    for (let lo = runs.starts[k]!; lo < hi;) {
      const size = block4(lo, hi);
      const prefixlen = size === 2 ** 32 ? 0 : Math.clz32(size) + 1;
      const addr = bytes.subarray(4 * out.length, 4 * out.length + 4);
      addr[0] = lo >>> 24;
      addr[1] = (lo >>> 16) & 0xff;
      addr[2] = (lo >>> 8) & 0xff;
      addr[3] = lo & 0xff;
      out.push({ prefixlen, addr, cls });
      lo += size;
    }
  }
  return out;
}

const END6 = 1n << 128n;

function block6(lo: bigint, hi: bigint): bigint {
  let size = lo === 0n ? END6 : lo & -lo;
  while (size > hi - lo) size >>= 1n;
  return size;
}

function* blocks6(runs: Runs, points: bigint[]): Generator<[bigint, bigint, number]> {
  for (let k = 0; k < runs.starts.length; k++) {
    const cls = runs.classes[k]!;
    if (cls === 0) continue;
    const hi = points[runEnd(runs, k)]!;
    for (let lo = points[runs.starts[k]!]!; lo < hi;) {
      const size = block6(lo, hi);
      yield [lo, size, cls];
      lo += size;
    }
  }
}

/** IPv6 runs are over address ranks (address-regions.ts); `points` maps ranks to addresses. */
export function countLpm6(runs: Runs, points: bigint[]): number {
  return [...blocks6(runs, points)].length;
}

/** `count` is countLpm6(runs, points). */
export function lpmEntries6(runs: Runs, points: bigint[], count: number): LpmEntry[] {
  const out: LpmEntry[] = [];
  const bytes = new Uint8Array(16 * count);
  for (const [lo, size, cls] of blocks6(runs, points)) {
    const addr = bytes.subarray(16 * out.length, 16 * out.length + 16);
    for (let i = 0; i < 16; i++) addr[i] = Number((lo >> BigInt(8 * (15 - i))) & 0xffn);
    out.push({ prefixlen: 129 - size.toString(2).length, addr, cls });
  }
  return out;
}
