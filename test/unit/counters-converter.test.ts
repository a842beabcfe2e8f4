// The conntrack group's converters: each CPU's counters of an older layout (1: 32, 2: 38, 3: 41)
// land at the start of the wider value (4: 43), the new counters at 0; the connections and
// fragments are kept.
import { test } from "node:test";
import assert from "node:assert/strict";
import "../../src/datapath/map-converters.ts";
import { converterFor } from "../../src/datapath/map-migration.ts";
import { Counter } from "../../src/datapath/abi.ts";

for (const [from, width] of [
  [1, 32],
  [2, 38],
  [3, 41],
] as const)
  test(`counters of layout ${from} are carried into layout 4, every CPU's`, () => {
    carried(from, width);
  });

function carried(from: number, width: number): void {
  const c = converterFor("conntrack", from, 4);
  assert.ok(c);
  assert.deepEqual(c.maps.conntrack, { keep: true });
  assert.deepEqual(c.maps.frags, { keep: true });
  const plan = c.maps.counters;
  assert.ok(plan && "convert" in plan);
  const cpus = 3;
  const old = Buffer.alloc(cpus * width * 16);
  for (let cpu = 0; cpu < cpus; cpu++)
    for (let i = 0; i < width; i++)
      old.writeBigUInt64LE(BigInt(cpu * 1000 + i), (cpu * width + i) * 16);
  const key = Buffer.alloc(4);
  const out = plan.convert(key, old);
  assert.ok(out);
  assert.equal(out.value.length, cpus * Counter.max * 16);
  for (let cpu = 0; cpu < cpus; cpu++) {
    const at = (i: number): bigint => out.value.readBigUInt64LE((cpu * Counter.max + i) * 16);
    assert.equal(at(Counter.closed), BigInt(cpu * 1000 + Counter.closed));
    assert.equal(at(Counter.splicedConnections), BigInt(cpu * 1000 + 31));
    assert.equal(at(Counter.limitDropped), from < 2 ? 0n : BigInt(cpu * 1000 + 32));
    assert.equal(at(Counter.mssClamped), from < 2 ? 0n : BigInt(cpu * 1000 + 37));
    assert.equal(at(Counter.ttlRaised), from < 3 ? 0n : BigInt(cpu * 1000 + 38));
    assert.equal(at(Counter.ipIdRandomised), from < 3 ? 0n : BigInt(cpu * 1000 + 40));
    assert.equal(at(Counter.idsCopied), 0n);
    assert.equal(at(Counter.idsLost), 0n);
  }
}
