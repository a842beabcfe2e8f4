import { test } from "node:test";
import assert from "node:assert/strict";
import { normalize, type Interval } from "../../src/config/intervals.ts";

/** The merge of `intervals` worked out the plain way: each number in at most one, in order. */
function merged(intervals: Interval[]): [bigint, bigint][] {
  const sorted = [...intervals].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: [bigint, bigint][] = [];
  for (const [lo, hi] of sorted) {
    const last = out.at(-1);
    if (last && lo <= last[1] + 1n) last[1] = hi > last[1] ? hi : last[1];
    else out.push([lo, hi]);
  }
  return out;
}

function random(seed: number): () => number {
  let x = seed;
  return () => ((x = (x * 1103515245 + 12345) % 2 ** 31), x / 2 ** 31);
}

test("a long list of address intervals merges into the same sorted, disjoint intervals", () => {
  const rand = random(3);
  for (const [count, width] of [
    [300, 2 ** 32],
    [5000, 2 ** 20],
    [100_000, 2 ** 32],
  ] as const) {
    const list: Interval[] = Array.from({ length: count }, () => {
      const lo = BigInt(Math.floor(rand() * width));
      return [lo, lo + BigInt(Math.floor(rand() * 4096))] as const;
    });
    list.push([0n, 0n], [BigInt(width), BigInt(width)], [5n, 3n + 2n]);
    assert.deepEqual(normalize(list), merged(list), `${count} intervals`);
  }
});

test("IPv6 intervals and starts past 2^53 merge the same", () => {
  const rand = random(5);
  const base = 0x20010db8n << 96n;
  const list: Interval[] = Array.from({ length: 2000 }, () => {
    const lo = base + (BigInt(Math.floor(rand() * 2 ** 30)) << 64n);
    return [lo, lo + (1n << 64n) - 1n] as const;
  });
  list.push([2n ** 53n, 2n ** 53n + 9n], [1n, 2n]);
  assert.deepEqual(normalize(list), merged(list));
  assert.deepEqual(normalize([]), []);
});
