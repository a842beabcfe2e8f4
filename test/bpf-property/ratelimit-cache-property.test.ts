// The kernel's rate limits agree with the reference model (src/policy/rate-limit.ts) when more
// sources share one set of a CPU's lease cache than it has slots (limit_lease_cache: sets of
// MOAT_LIMIT_CACHE_WAYS, bpf/include/maps.h): seven sources chosen for one set, so some keep
// their leases in the per-CPU hash (limit_leases) and slots change hands as leases run out.
// Random limits x random packet sequences through BPF_PROG_TEST_RUN with the limits' clock set
// for each packet; every verdict and every over-limit report must be the model's. Pinned to one
// CPU, as the model is one CPU's view.
import { after, before, test } from "node:test";
import { spawnSync } from "node:child_process";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parsePolicy } from "../../src/config/index.ts";
import { compile } from "../../src/policy/compile/compile.ts";
import { mappedAddress } from "../../src/datapath/address.ts";
import {
  LimitSourceModel,
  leaseFor,
  limitId,
  limitParams,
  newLimitConnection,
} from "../../src/policy/rate-limit.ts";
import type { RateLimit } from "../../src/config/model.ts";
import { LIMIT_ALGORITHMS } from "../../src/config/schema-rate-limit.ts";
import { KernelLab } from "../helpers/kernel-lab.ts";
import { clearLimitState } from "../helpers/limit-state.ts";
import { limitKey } from "../../src/datapath/abi.ts";
import { native } from "../../src/datapath/addon.ts";

const SCALE = Number(process.env.RATELIMIT_PROPERTY_SCALE ?? 1);
/** bpf/include/maps.h */
const WAYS = 4;
const SET_BITS = 11n;
const SETS = 1 << Number(SET_BITS);
const SLOT = 64;
const SOURCES = 7;
const PORT = 7001;
const M64 = (1n << 64n) - 1n;

let affinity = "";
const tally = { sequences: 0, packets: 0, dropped: 0, reports: 0, inHash: 0 };

before(() => {
  affinity = spawnSync("taskset", ["-p", "-c", String(process.pid)], { encoding: "utf8" })
    .stdout.split(":")
    .pop()!
    .trim();
  const pin = spawnSync("taskset", ["-a", "-p", "-c", "0", String(process.pid)]);
  assert.equal(pin.status, 0, "taskset pins the test to cpu 0");
});
after(() => {
  spawnSync("taskset", ["-a", "-p", "-c", affinity, String(process.pid)]);
  console.log(`rate limit cache property: ${JSON.stringify(tally)}`);
});

/** ratelimit.h's limit_cache_set of an IPv4 source's key under limit `id` (whole address). */
function cacheSet(id: number, address: string): number {
  const key = Buffer.alloc(24);
  key.writeUInt32LE(id, 0);
  mappedAddress(address).copy(key, 8);
  const [w0, w1, w2] = [0, 8, 16].map((o) => key.readBigUInt64LE(o)) as [bigint, bigint, bigint];
  let h = ((w0 ^ ((w1 * 0x9e3779b97f4a7c15n) & M64)) * 0xc2b2ae3d27d4eb4fn) & M64;
  h = ((h ^ w2) * 0x9e3779b97f4a7c15n) & M64;
  return Number(h >> (64n - SET_BITS));
}

/** `SOURCES` addresses of 198.18.0.0/15 in one cache set under limit `id`. */
function oneSet(id: number): string[] {
  const bySet = new Map<number, string[]>();
  for (let i = 1; ; i++) {
    const a = `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
    const set = cacheSet(id, a);
    const found = bySet.get(set) ?? [];
    found.push(a);
    bySet.set(set, found);
    if (found.length === SOURCES) return found;
  }
}

const limits = fc.record({
  algorithm: fc.constantFrom(...LIMIT_ALGORITHMS),
  count: fc.integer({ min: 1, max: 8 }),
  unit: fc.constantFrom("s", "s", "m"),
  burst: fc.option(fc.integer({ min: 1, max: 8 }), { nil: undefined }),
  reportSeconds: fc.constantFrom(1, 5),
  mode: fc.constantFrom("prevent", "detect"),
});
type Limit = typeof limits extends fc.Arbitrary<infer T> ? T : never;

const packets = fc.array(
  fc.record({
    gapMs: fc.oneof(
      { arbitrary: fc.constant(0), weight: 6 },
      { arbitrary: fc.integer({ min: 1, max: 150 }), weight: 6 },
      { arbitrary: fc.integer({ min: 400, max: 1600 }), weight: 2 },
      { arbitrary: fc.integer({ min: 55_000, max: 65_000 }), weight: 1 },
    ),
    source: fc.integer({ min: 0, max: SOURCES - 1 }),
  }),
  { minLength: 20, maxLength: 120 },
);

function policy(l: Limit): string {
  const burst = l.burst === undefined ? "" : `\n      burst: ${l.burst}`;
  return `
version: 1
mode: ${l.mode}
defaults: { ingress: block, egress: allow }
rules:
  - name: limited
    direction: ingress
    action: allow
    layer4: { protocol: udp, port: [${PORT}] }
    rate_limit:
      rate: ${l.count}/${l.unit}
      algorithm: ${l.algorithm}
      report_every: ${l.reportSeconds}s${burst}
`;
}

/** The cache sets (of CPU 0's part) holding a source of limit `id`, and how many it holds. */
function cachedSets(lab: KernelLab, id: number): Map<number, number> {
  const cache = lab.dp.object.map("limit_lease_cache");
  const out = new Map<number, number>();
  const index = Buffer.alloc(4);
  for (let set = 0; set < SETS; set++) {
    index.writeUInt32LE(set);
    const v = cache.lookup(index);
    for (let w = 0; v && w < WAYS; w++)
      if (v.readUInt32LE(w * SLOT) === id) out.set(set, (out.get(set) ?? 0) + 1);
  }
  return out;
}

function agree(lease: number): void {
  const lab = new KernelLab({ globals: { limit_test_clock: 1 }, limitLease: lease });
  const clock = lab.dp.object.map("limit_clock");
  const hash = lab.dp.object.map("limit_leases");
  try {
    fc.assert(
      fc.property(limits, packets, (l, sequence) => {
        clearLimitState(lab.dp.object);
        const text = policy(l);
        const model = parsePolicy(text, "p.yaml");
        const limit: RateLimit | undefined = model.rules[0]?.rateLimit;
        assert.ok(limit);
        lab.apply(compile(model));
        const id = limitId("limited", limit);
        const sources = oneSet(id);
        const params = limitParams(limit);
        const meters = sources.map(() => null as LimitSourceModel | null);
        let now = 5_000_000_000_000n; // ns: a whole minute, well past boot
        sequence.forEach((p, i) => {
          now += BigInt(p.gapMs) * 1_000_000n;
          const t = Buffer.alloc(8);
          t.writeBigUInt64LE(now);
          clock.update(Buffer.alloc(4), t);
          const meter = (meters[p.source] ??= new LimitSourceModel(
            params,
            now,
            leaseFor(params, 1, lease),
          ));
          // a new connection a packet: no connection credit, every packet the source's lease's
          const expected = meter.packet(now, newLimitConnection());
          const frame = {
            src: sources[p.source]!,
            dst: "10.0.0.1",
            proto: "udp" as const,
            sport: 30000 + i,
            dport: PORT,
          };
          const got = lab.run("xdp", frame).verdict;
          const where = `packet ${i} ${JSON.stringify(p)} at ${now}\n${text}`;
          const dropped = !expected.within && l.mode === "prevent";
          assert.equal(got, dropped ? "drop" : "pass", where);
          const reports = lab
            .events()
            .filter((e) => e.reason === "rate_limit")
            .map((e) => `${e.type} ${e.aggregated?.packets}`);
          const type = l.mode === "prevent" ? "blocked" : "detected";
          assert.deepEqual(
            reports,
            expected.report ? [`${type} ${expected.report}`] : [],
            `reports: ${where}`,
          );
          tally.packets++;
          if (dropped) tally.dropped++;
          if (expected.report) tally.reports++;
        });
        // the sources did share one set: at most its slots cached, the rest in the hash
        const sets = cachedSets(lab, id);
        assert.ok(sets.size <= 1, `one set: ${JSON.stringify([...sets])}`);
        for (let k = hash.nextKey(null); k; k = hash.nextKey(k))
          if (limitKey.decode(k).id === id) tally.inHash++;
        lab.dp.clearConntrack();
        tally.sequences++;
      }),
      {
        numRuns: 40 * SCALE,
        endOnFailure: true,
        ...(process.env.FC_SEED
          ? { seed: Number(process.env.FC_SEED), path: process.env.FC_PATH }
          : {}),
      },
    );
  } finally {
    lab.close();
  }
}

test("more sources than a cache set has slots: every packet asking the shared state", () =>
  agree(1));
test("more sources than a cache set has slots: a CPU leasing 3 packets at once", () => {
  const before = tally.inHash;
  agree(3);
  assert.ok(tally.inHash > before, "some sources kept their lease in limit_leases");
});

test("the loader gives every possible CPU its own part of the lease cache", () => {
  const lab = new KernelLab();
  try {
    const cache = lab.dp.object.map("limit_lease_cache");
    assert.equal(cache.maxEntries, SETS * native().numPossibleCpus());
    assert.equal(cache.valueSize, WAYS * SLOT);
  } finally {
    lab.close();
  }
});
