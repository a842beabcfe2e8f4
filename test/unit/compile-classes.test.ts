// Compiler steps 2-4: classes per dimension (sweep, dedup by rule set, wildcards implicit, lists
// cut after a rule that wins everywhere), LPM prefixes from runs, and the X/Y combination.

import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePolicy } from "../../src/config/index.ts";
import { denseTable, sweep } from "../../src/policy/compile/classes.ts";
import { combine } from "../../src/policy/compile/combine.ts";
import { compile } from "../../src/policy/compile/compile.ts";
import { lpmEntries6, countLpm6 } from "../../src/policy/compile/lpm.ts";
import {
  countDir4,
  dir4,
  dir4Lookup,
  DIR4_BITMAP,
  DIR4_SEGMENT_MAX,
  DIR4_TOP,
} from "../../src/policy/compile/dir4.ts";
import {
  ClassStore,
  classRules,
  zobrist,
  type ClassSets,
} from "../../src/policy/compile/set-index.ts";

const flat = (...values: number[]) => Float64Array.from(values);
const ip4 = (a: string) => a.split(".").reduce((v, part) => v * 256 + Number(part), 0);
const setsOf = (sets: ClassSets) =>
  Array.from({ length: sets.count }, (_, c) => [...classRules(sets, c)]);

test("sweep: one class per distinct rule set, runs merged, class 0 = no rule", () => {
  const z = zobrist(3);
  const store = new ClassStore(z, null);
  store.classOf([]);
  const runs = sweep(
    100,
    [
      { rule: 0, region: flat(10, 50) },
      { rule: 1, region: flat(20, 30, 60, 70) },
      // same set as rule 1 alone would be {1}; {2} only on [80, 90)
      { rule: 2, region: flat(80, 90) },
    ],
    store,
    z,
  );
  assert.deepEqual(setsOf(store.finish()), [[], [0], [0, 1], [1], [2]]);
  assert.deepEqual([...runs.starts], [0, 10, 20, 30, 50, 60, 70, 80, 90]);
  assert.deepEqual([...runs.classes], [0, 1, 2, 1, 0, 3, 0, 4, 0]);
  const table = denseTable(runs);
  assert.equal(table[25], 2);
  assert.equal(table[99], 0);
});

test("sweep: the same rule set in two places is one class", () => {
  const z = zobrist(2);
  const store = new ClassStore(z, null);
  const runs = sweep(
    10,
    [
      { rule: 0, region: flat(1, 3, 6, 8) },
      { rule: 1, region: flat(1, 3, 6, 8) },
    ],
    store,
    z,
  );
  assert.equal(store.count, 2);
  assert.deepEqual([...runs.classes], [0, 1, 0, 1, 0]);
});

test("a class's rule list stops after a rule that matches every other dimension", () => {
  const z = zobrist(3);
  const terminal = Uint8Array.of(0, 1, 0);
  const store = new ClassStore(z, terminal);
  assert.equal(store.classOf([0, 1, 2]), store.classOf([0, 1]));
  assert.notEqual(store.classOf([0, 2]), store.classOf([0, 1]));
  assert.deepEqual(setsOf(store.finish()), [
    [0, 1],
    [0, 2],
  ]);
});

test("compile: a catch-all rule does not multiply classes; overlapping remotes split them", () => {
  const image = compile(
    parsePolicy(
      `version: 1
mode: prevent
defaults: { ingress: block, egress: block }
rules:
  - { name: a, direction: ingress, action: allow, layer3: { remote: [10.0.0.0/8] }, layer4: { protocol: tcp, port: [22] } }
  - { name: b, direction: ingress, action: allow, layer3: { remote: [10.1.0.0/16] }, layer4: { protocol: tcp, port: [80] } }
  - { name: c, direction: any, action: allow }
  - { name: d, direction: any, action: block, layer3: { remote: [192.0.2.0/24] } }
`,
      "p.yaml",
    ),
  );
  // remote: miss, {a}, {a, b}; d comes after the catch-all c and is dropped
  assert.equal(image.nr, 3);
  // 10.1/16 is {a, b}; the rest of 10/8 is {a}, in aligned blocks
  const cls = (a: string) => dir4Lookup(image.remote4, ip4(a));
  assert.deepEqual(
    [
      "9.255.255.255",
      "10.0.0.0",
      "10.1.0.0",
      "10.1.255.255",
      "10.2.0.0",
      "10.255.255.255",
      "11.0.0.0",
    ].map(cls),
    [0, 1, 2, 2, 1, 1, 0],
  );
  assert.equal(image.remote4.length, DIR4_TOP, "whole /16s only: no segments");
  assert.equal(image.np, 3, "port classes: tcp 22 ingress, tcp 80 ingress, everything else");
  assert.deepEqual([...image.anyRemote].sort(), [2, 2, 2], "c decides wherever a and b do not");
});

test("IPv4 directory: a uniform /16 is one entry, a mixed one a searched segment", () => {
  // [10.0.0.1, 10.0.0.7) has class 5 inside the /16 10.0; everything else is class 0
  const base = 10 * 2 ** 24;
  const runs = {
    size: 2 ** 32,
    starts: flat(0, base + 1, base + 7),
    classes: Uint32Array.of(0, 5, 0),
  };
  const count = countDir4(runs);
  assert.equal(count, DIR4_TOP + 3);
  const dir = dir4(runs, count);
  const cls = (a: string) => dir4Lookup(dir, ip4(a));
  assert.deepEqual(
    ["0.0.0.0", "10.0.0.0", "10.0.0.1", "10.0.0.6", "10.0.0.7", "10.0.255.255", "10.1.0.0"].map(
      cls,
    ),
    [0, 0, 5, 5, 0, 0, 0],
  );
  // a /16 cut into 65536 pieces: every address is found by the 16-step search
  const pieces = Array.from({ length: 65536 }, (_, i) => base + i);
  const many = {
    size: 2 ** 32,
    starts: flat(0, ...pieces, base + 65536),
    classes: Uint32Array.from({ length: 65538 }, (_, i) =>
      i === 0 || i === 65537 ? 0 : 2 - (i % 2),
    ),
  };
  const big = dir4(many, countDir4(many));
  for (const i of [0, 1, 2, 12345, 65534, 65535])
    assert.equal(dir4Lookup(big, base + i), 1 + (i % 2));
  assert.equal(dir4Lookup(big, base + 65536), 0);
  assert.equal(dir4Lookup(big, base - 1), 0);
});

test("IPv4 directory: a /16 of many runs is a /24 block; every address keeps its run's class", () => {
  // 10.0/16: pieces every 1,000 addresses (many /24s cut, the rest of class 0); 10.1/16: whole
  // /24s of class 3 with a /28 of class 4 inside one and a /32 of class 5 at a /24's last
  // address, and more /32s; 10.2/16: a few runs (a plain segment)
  const base = 10 * 2 ** 24;
  const bounds: [number, number][] = [[0, 0]];
  for (let i = 0; i < 60; i++)
    bounds.push([base + i * 1000 + 7, 1 + (i % 3)], [base + i * 1000 + 9, 0]);
  const b1 = base + 65536;
  bounds.push(
    [b1 + 256, 3],
    [b1 + 2 * 256 + 16, 4],
    [b1 + 2 * 256 + 32, 3],
    [b1 + 8 * 256 - 1, 5],
    [b1 + 8 * 256, 0],
    [b1 + 9 * 256, 3],
    // /32s of class 5 at the last address of the /24s 100..109, inside the class-3 /24s
    ...Array.from({ length: 10 }, (_, i): [number, number][] => [
      [b1 + (100 + i) * 256 + 255, 5],
      [b1 + (101 + i) * 256, 3],
    ]).flat(),
    [b1 + 200 * 256, 0],
    [b1 + 65536 + 5, 6],
    [b1 + 65536 + 6, 0],
  );
  const runs = {
    size: 2 ** 32,
    starts: Float64Array.from(bounds.map(([s]) => s)),
    classes: Uint32Array.from(bounds.map(([, c]) => c)),
  };
  const d = dir4(runs, countDir4(runs));
  const high = (top: number) => d.words[2 * top + 1];
  assert.equal(high(base / 65536), DIR4_BITMAP);
  assert.equal(high(base / 65536 + 1), DIR4_BITMAP);
  assert.ok(high(base / 65536 + 2)! <= DIR4_SEGMENT_MAX);
  const classOf = (a: number) => {
    let k = 0;
    while (k + 1 < bounds.length && bounds[k + 1]![0] <= a) k++;
    return bounds[k]![1];
  };
  const probes = new Set<number>();
  for (const [s] of bounds) for (const a of [s - 1, s, s + 1]) probes.add(a);
  for (let a = base; a < base + 3 * 65536; a += 256)
    for (const o of [-1, 0, 255]) probes.add(a + o);
  for (const a of probes) assert.equal(dir4Lookup(d, a), classOf(a), `address ${a - base}`);
});

test("LPM: IPv6 runs are over ranks and map back to addresses", () => {
  const base = 0x20010db8n << 96n;
  const points = [0n, base, base + (1n << 96n), 1n << 128n];
  const runs = { size: 3, starts: flat(0, 1, 2), classes: Uint32Array.of(0, 7, 0) };
  const entries = lpmEntries6(runs, points, countLpm6(runs, points));
  assert.equal(entries.length, 1);
  assert.equal(entries[0]!.prefixlen, 32);
  assert.deepEqual([...entries[0]!.addr.subarray(0, 4)], [0x20, 0x01, 0x0d, 0xb8]);
  assert.equal(entries[0]!.cls, 7);
});

test("combine: pairs keep S_A ∩ S_B's explicit part, wildcards stay implicit", () => {
  // rules: 0 explicit in A only, 1 explicit in B only, 2 explicit in both, 3 wildcard in both
  const z = zobrist(4);
  const wildA = Uint8Array.of(0, 1, 0, 1);
  const wildB = Uint8Array.of(1, 0, 0, 1);
  const sets = (lists: number[][]): ClassSets => {
    const store = new ClassStore(z, null);
    for (const l of lists) store.classOf(l);
    return store.finish();
  };
  const a = sets([[], [0], [0, 2]]);
  const b = sets([[], [1], [1, 2], [2]]);
  const { table, sets: c } = combine(a, b, wildA, wildB, new ClassStore(z, null), z);
  const pair = (ca: number, cb: number) => [...classRules(c, table[ca * b.count + cb]!)];
  assert.deepEqual(pair(0, 0), []);
  assert.deepEqual(pair(1, 0), [0]);
  assert.deepEqual(pair(0, 1), [1]);
  assert.deepEqual(pair(2, 2), [0, 1, 2]);
  assert.deepEqual(pair(2, 1), [0, 1], "2 is explicit in B and not in B's class 1");
  assert.deepEqual(pair(1, 3), [0], "2 is explicit in A and not in A's class 1");
  assert.equal(table[1 * b.count + 3], table[1 * b.count + 0], "equal sets share a class");
});
