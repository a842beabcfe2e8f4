// The conntrack group's converters: each CPU's counters of an older layout (1: 32, 2: 38, 3: 41)
// land at the start of the wider value (4 to 7: 43), the new counters at 0; the fragments are
// kept, the connections too until layout 5, whose wider entries get them with no rate-limit
// credit and the ids signatures done; layout 6's get layout 5's with no sequence end known;
// layout 7's are layout 6's as they are (in a table of one entry more).
import { test } from "node:test";
import assert from "node:assert/strict";
import "../../src/datapath/map-converters.ts";
import { converterFor } from "../../src/datapath/map-migration.ts";
import { ct, Counter, CtFlag } from "../../src/datapath/abi.ts";

for (const to of [4, 6, 7])
  for (const [from, width] of [
    [1, 32],
    [2, 38],
    [3, 41],
  ] as const)
    test(`counters of layout ${from} are carried into layout ${to}, every CPU's`, () => {
      carried(from, to, width);
    });

test("counters of layouts 4 and 5 are kept as they are in layouts 6 and 7", () => {
  for (const to of [6, 7]) {
    assert.deepEqual(converterFor("conntrack", 4, to)?.maps.counters, { keep: true });
    assert.deepEqual(converterFor("conntrack", 5, to)?.maps.counters, { keep: true });
  }
});

test("layout 6 is carried into layout 7 as it is: connections, fragments and counters kept", () => {
  assert.deepEqual(converterFor("conntrack", 6, 7)?.maps, {
    conntrack: { keep: true },
    frags: { keep: true },
    counters: { keep: true },
  });
});

const facts = {
  id: 77n,
  created_ns: 1_000n,
  last_ns: 2_000n,
  deadline_ns: 0n,
  packets: Buffer.from([3, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]),
  bytes: Buffer.alloc(16, 1),
  rule: 4,
  generation: 9,
  ifindex: 2,
  flags: CtFlag.replied | CtFlag.limited,
  initiator: 1,
  direction: 1,
  verdict: 1,
  mode: 1,
  tcp_state: 3,
  icmp_type: 0,
  icmp_code: 0,
  owner: Buffer.alloc(48, 5),
};

for (const to of [6, 7])
  for (const from of [1, 2, 3, 4])
    test(`connections of layout ${from} are carried into layout ${to}: facts kept, no credit, ids done`, () => {
      const plan = converterFor("conntrack", from, to)?.maps.conntrack;
      assert.ok(plan && "convert" in plan);
      // an entry of layouts 1-4: the same facts, the owner right after them (at 88)
      const now = ct.encode({ ...facts, limit_until: 0n, limit_credit: 0, ids: Buffer.alloc(24) });
      const old = Buffer.concat([now.subarray(0, 87), Buffer.alloc(1), facts.owner]);
      const key = Buffer.alloc(40, 1);
      const out = plan.convert(key, old);
      assert.ok(out);
      assert.equal(out.value.length, ct.size);
      assert.deepEqual(out.key, key);
      assert.deepEqual(ct.decode(out.value), {
        ...facts,
        flags: CtFlag.replied | CtFlag.limited | CtFlag.idsDone,
        limit_until: 0n,
        limit_credit: 0,
        seq_end: Buffer.alloc(8),
        ids: Buffer.alloc(24),
      });
    });

for (const to of [6, 7])
  test(`connections of layout 5 are carried into layout ${to}: all kept, no sequence end known`, () => {
    const plan = converterFor("conntrack", 5, to)?.maps.conntrack;
    assert.ok(plan && "convert" in plan);
    const rest = { limit_until: 123n, limit_credit: 7, ids: Buffer.alloc(16, 9) };
    // an entry of layout 5: the same facts, the owner at 96 and the ids state at 144 (160 bytes)
    const now = ct.encode({ ...facts, ...rest });
    const old = Buffer.concat([now.subarray(0, 96), facts.owner, rest.ids]);
    assert.equal(old.length, 160);
    const key = Buffer.alloc(40, 1);
    const out = plan.convert(key, old);
    assert.ok(out);
    assert.equal(out.value.length, ct.size);
    assert.deepEqual(ct.decode(out.value), {
      ...facts,
      ...rest,
      // the sum of the last repeated ids copy: none yet
      ids: Buffer.concat([rest.ids, Buffer.alloc(8)]),
      seq_end: Buffer.alloc(8),
    });
  });

function carried(from: number, to: number, width: number): void {
  const c = converterFor("conntrack", from, to);
  assert.ok(c);
  if (to === 4) assert.deepEqual(c.maps.conntrack, { keep: true });
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
