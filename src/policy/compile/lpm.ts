// Runs of IPv6 address classes -> LPM trie entries (IPv4 uses dir4.ts): each maximal run of one class becomes the fewest
// aligned CIDR blocks covering it. Runs of class 0 are not written: a trie miss is class 0.
// The entries' `addr` are views into one buffer per trie (a million own 4-byte arrays would
// cost ~120 MB more heap); each view has the right byteOffset and length.

import type { LpmEntry } from "./image.ts";
import type { Runs } from "./classes.ts";

const runEnd = (runs: Runs, k: number): number =>
  k + 1 < runs.starts.length ? runs.starts[k + 1]! : runs.size;

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
