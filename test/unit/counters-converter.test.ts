// The conntrack group's 1 -> 2 converter: each CPU's counters of the older layout (32) land at the
// start of the wider value (38), the new counters at 0; the connections and fragments are kept.
import { test } from "node:test";
import assert from "node:assert/strict";
import "../../src/datapath/map-converters.ts";
import { converterFor } from "../../src/datapath/map-migration.ts";
import { Counter } from "../../src/datapath/abi.ts";

test("counters of layout 1 are carried into layout 2, every CPU's", () => {
  const c = converterFor("conntrack", 1, 2);
  assert.ok(c);
  assert.deepEqual(c.maps.conntrack, { keep: true });
  assert.deepEqual(c.maps.frags, { keep: true });
  const plan = c.maps.counters;
  assert.ok(plan && "convert" in plan);
  const cpus = 3;
  const old = Buffer.alloc(cpus * 32 * 16);
  for (let cpu = 0; cpu < cpus; cpu++)
    for (let i = 0; i < 32; i++) old.writeBigUInt64LE(BigInt(cpu * 1000 + i), (cpu * 32 + i) * 16);
  const key = Buffer.alloc(4);
  const out = plan.convert(key, old);
  assert.ok(out);
  assert.equal(out.value.length, cpus * Counter.max * 16);
  for (let cpu = 0; cpu < cpus; cpu++) {
    const at = (i: number): bigint => out.value.readBigUInt64LE((cpu * Counter.max + i) * 16);
    assert.equal(at(Counter.closed), BigInt(cpu * 1000 + Counter.closed));
    assert.equal(at(Counter.splicedConnections), BigInt(cpu * 1000 + 31));
    assert.equal(at(Counter.limitDropped), 0n);
    assert.equal(at(Counter.mssClamped), 0n);
  }
});
