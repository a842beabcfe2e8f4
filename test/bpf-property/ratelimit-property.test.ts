// The kernel's rate limits agree with the reference model (src/policy/rate-limit.ts): random
// limits (algorithm, rate, period, burst, source prefixes, per port) x random packet sequences
// (sources, families, ports, flows, gaps that straddle windows) through BPF_PROG_TEST_RUN, with
// the time the limits read set for each packet. Every verdict, and every over-limit report with
// the packets it stands for, must be the model's: with a lease of one packet (every packet asks
// the shared state) and of three (the CPU admits on its own). The test process is pinned to one
// CPU for it, as the model is one CPU's view; the bound across CPUs is checked on its own.
import { after, before, test } from "node:test";
import { spawnSync } from "node:child_process";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parsePolicy } from "../../src/config/index.ts";
import { compile } from "../../src/policy/compile/compile.ts";
import { parseAddress } from "../../src/datapath/address.ts";
import {
  LimitSourceModel,
  newLimitConnection,
  type LimitConnection,
  leaseFor,
  limitParams,
  limitSource,
} from "../../src/policy/rate-limit.ts";
import { LIMIT_ALGORITHMS } from "../../src/config/schema-rate-limit.ts";
import { KernelLab } from "../helpers/kernel-lab.ts";
import { clearLimitState } from "../helpers/limit-state.ts";
import type { BpfMap } from "../../src/datapath/native.d.ts";

const SCALE = Number(process.env.RATELIMIT_PROPERTY_SCALE ?? 1);
const SOURCES = {
  4: ["198.51.100.1", "198.51.100.2", "198.51.101.1", "203.0.113.9"],
  6: ["2001:db8::1", "2001:db8::2", "2001:db8:0:1::1", "2001:db8:9::9"],
} as const;
const PORTS = [7001, 7002];

const tally = { sequences: 0, packets: 0, dropped: 0, reports: 0, onCredit: 0 };
let affinity = "";

before(() => {
  // the model is one CPU's: the test runs (BPF_PROG_TEST_RUN runs on the caller's CPU) stay on one
  affinity = spawnSync("taskset", ["-p", "-c", String(process.pid)], { encoding: "utf8" })
    .stdout.split(":")
    .pop()!
    .trim();
  const pin = spawnSync("taskset", ["-a", "-p", "-c", "0", String(process.pid)]);
  assert.equal(pin.status, 0, "taskset pins the test to cpu 0");
});
after(() => {
  spawnSync("taskset", ["-a", "-p", "-c", affinity, String(process.pid)]);
  console.log(`rate limit property: ${JSON.stringify(tally)}`);
});

const limitsOf = (most: number) =>
  fc.record({
    algorithm: fc.constantFrom(...LIMIT_ALGORITHMS),
    count: fc.integer({ min: 1, max: most }),
    unit: fc.constantFrom("s", "s", "m"),
    burst: fc.option(fc.integer({ min: 1, max: most }), { nil: undefined }),
    prefix4: fc.constantFrom(32, 24, 16),
    prefix6: fc.constantFrom(128, 64, 48),
    perPort: fc.boolean(),
    reportSeconds: fc.constantFrom(1, 5),
    mode: fc.constantFrom("prevent", "detect"),
  });

/** Packet sequences: short flows of many sources, or long flows of few (a connection's credit). */
const packetsOf = (sources: number, flows: number, shortest: number, longest: number) =>
  fc.array(packetOf(sources, flows), { minLength: shortest, maxLength: longest });

const packetOf = (sources: number, flows: number) =>
  fc.record({
    // mostly small steps, some on the spot, some across windows
    gapMs: fc.oneof(
      { arbitrary: fc.constant(0), weight: 6 },
      { arbitrary: fc.integer({ min: 1, max: 150 }), weight: 6 },
      { arbitrary: fc.integer({ min: 400, max: 1600 }), weight: 2 },
      { arbitrary: fc.integer({ min: 55_000, max: 65_000 }), weight: 1 },
    ),
    family: fc.constantFrom(4 as const, 6 as const),
    source: fc.integer({ min: 0, max: sources - 1 }),
    port: fc.integer({ min: 0, max: 1 }),
    flow: fc.integer({ min: 0, max: flows - 1 }),
  });

type Limit = ReturnType<typeof limitsOf> extends fc.Arbitrary<infer T> ? T : never;

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
    layer4: { protocol: udp, port: [${PORTS.join(", ")}] }
    rate_limit:
      rate: ${l.count}/${l.unit}
      algorithm: ${l.algorithm}
      source: { ipv4: ${l.prefix4}, ipv6: ${l.prefix6} }
      per_port: ${l.perPort}
      report_every: ${l.reportSeconds}s${burst}
`;
}

type Sequences = { limits: fc.Arbitrary<Limit>; packets: ReturnType<typeof packetsOf> };
const SHORT_FLOWS: Sequences = { limits: limitsOf(8), packets: packetsOf(4, 3, 10, 80) };
// a flow's 32nd packet on gets credit from its lease (LIMIT_CONNECTION_CHUNK): few flows, long
const LONG_FLOWS: Sequences = { limits: limitsOf(60), packets: packetsOf(1, 1, 100, 200) };

function agree(lease: number, sequences: Sequences): void {
  const lab = new KernelLab({ globals: { limit_test_clock: 1 }, limitLease: lease });
  const clock = lab.dp.object.map("limit_clock");
  try {
    check(lab, clock, lease, sequences);
  } finally {
    lab.close();
  }
}

test("kernel rate limits = the reference model, every packet asking the shared state", () =>
  agree(1, SHORT_FLOWS));
test("kernel rate limits = the reference model, a CPU leasing 3 packets at once", () =>
  agree(3, SHORT_FLOWS));
test("kernel rate limits = the reference model, long flows passing on credit their lease hands over", () => {
  const before = tally.onCredit;
  agree(8, LONG_FLOWS);
  assert.ok(tally.onCredit - before > 0, "some packets passed on their connection's credit");
});

function check(lab: KernelLab, clock: BpfMap, lease: number, sequences: Sequences): void {
  fc.assert(
    fc.property(sequences.limits, sequences.packets, (l, packets) => {
      clearLimitState(lab.dp.object);
      const text = policy(l);
      const model = parsePolicy(text, "p.yaml");
      const limit = model.rules[0]?.rateLimit;
      assert.ok(limit);
      lab.apply(compile(model));
      const params = limitParams(limit);
      const sources = new Map<string, LimitSourceModel>();
      const connections = new Map<string, LimitConnection>();
      let now = 5_000_000_000_000n; // ns: a whole minute, well past boot
      packets.forEach((p, i) => {
        now += BigInt(p.gapMs) * 1_000_000n;
        const v = Buffer.alloc(8);
        v.writeBigUInt64LE(now);
        clock.update(Buffer.alloc(4), v);
        const src = SOURCES[p.family][p.source]!;
        const dport = PORTS[p.port]!;
        const bytes = parseAddress(src);
        const key = `${Buffer.from(limitSource(limit, bytes, p.family)).toString("hex")}/${limit.perPort ? dport : 0}`;
        let source = sources.get(key);
        if (!source)
          sources.set(
            key,
            (source = new LimitSourceModel(params, now, leaseFor(params, 1, lease))),
          );
        const flowKey = `${src}/${p.flow}/${dport}`;
        let conn = connections.get(flowKey);
        if (!conn) connections.set(flowKey, (conn = newLimitConnection()));
        const credit = conn.credit;
        const expected = source.packet(now, conn);
        if (conn.credit < credit) tally.onCredit++;
        const frame = {
          src,
          dst: p.family === 4 ? "10.0.0.1" : "fd00:2::1",
          proto: "udp" as const,
          sport: 30000 + p.flow,
          dport,
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
      lab.dp.clearConntrack();
      tally.sequences++;
    }),
    // no shrinking (a long shrink looks like a hang); FC_SEED and FC_PATH replay a failure
    {
      numRuns: 50 * SCALE,
      endOnFailure: true,
      ...(process.env.FC_SEED
        ? { seed: Number(process.env.FC_SEED), path: process.env.FC_PATH }
        : {}),
    },
  );
}
