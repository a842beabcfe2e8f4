// The packets over a rate limit after a source's last report (the end of its flood): the sweep
// that removes the idle source reports them, so a source's reports add up to the limit's counter,
// whichever CPUs counted them. Through BPF_PROG_TEST_RUN, the limits reading the time from
// limit_clock.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpus } from "node:os";
import { KernelLab } from "../helpers/kernel-lab.ts";
import { eventLine } from "../helpers/fixtures.ts";
import { limitClock } from "../helpers/limit-state.ts";
import type { PacketSpec } from "../helpers/packets.ts";
import { LimitMaps, limitTailRecord, type LimitTail } from "../../src/datapath/limit-maps.ts";
import { decodeEvent } from "../../src/datapath/events.ts";
import { compile } from "../../src/policy/compile/compile.ts";
import { parsePolicy } from "../../src/config/index.ts";
import type { ClassifierImage, ImageLimit } from "../../src/policy/compile/image.ts";
import type { CounterName } from "../../src/datapath/abi.ts";

const POLICY = `
version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules:
  - name: limited
    direction: ingress
    action: allow
    layer4: { protocol: udp, port: [9000] }
    rate_limit: { rate: 10/s, burst: 10, source: { ipv4: 24 }, report_every: 10s }
  - name: watched
    direction: ingress
    action: allow
    mode: detect
    layer4: { protocol: udp, port: [9001] }
    rate_limit: { rate: 10/s, burst: 10, source: { ipv4: 24 }, report_every: 10s }
`;

const S = 1_000_000_000n;
/** Each test's time, later than the one before's (leases remember times), long before the
 * sweep's time: its sources are idle when the sweep runs (fixed, not the machine's clock, which
 * is short of an hour after a boot) */
let t0 = 100_000n * S;
const SWEEP_AT = t0 + 3600n * S;
const nextStart = () => (t0 += 200n * S);
let sport = 30000;
/** `n` datagrams to `dport`, their sources rotating in 198.51.100.0/24 (one limited source). */
const flood = (n: number, dport: number): PacketSpec[] =>
  Array.from({ length: n }, (_, i) => ({
    src: `198.51.100.${1 + (i % 200)}`,
    dst: "10.0.0.1",
    proto: "udp",
    sport: sport++,
    dport,
  }));

/** Every thread of this process on `list` (taskset's form): a test run runs on its caller's CPU. */
function pinTo(list: string): void {
  assert.equal(spawnSync("taskset", ["-a", "-p", "-c", list, String(process.pid)]).status, 0);
}
const affinity = spawnSync("taskset", ["-p", "-c", String(process.pid)], { encoding: "utf8" })
  .stdout.split(":")
  .pop()!
  .trim();
/** The flood's parts run on CPUs 0 and 1 in turn, where there are two. */
const onCpu = (part: number) => pinTo(String(part % Math.min(2, cpus().length)));

let lab: KernelLab;
let limits: LimitMaps;
let image: ClassifierImage;
let generation: number;
let live: Map<number, ImageLimit>;
before(() => {
  lab = new KernelLab({ globals: { limit_test_clock: 1 } });
  image = compile(parsePolicy(POLICY, "test.yaml"));
  generation = lab.apply(image);
  live = new Map(image.rules.flatMap((r) => (r.limit ? [[r.limit.id, r.limit]] : [])));
  limits = new LimitMaps(lab.dp.object);
});
after(() => {
  pinTo(affinity);
  limits.close();
  lab.close();
});

for (const [dport, counter] of [
  [9000, "limitDropped"],
  [9001, "limitDetected"],
] as [number, CounterName][]) {
  test(`${counter}: the kernel's reports and the sweep's add up to the counter`, () => {
    const clock = limitClock(lab.dp.object).ns;
    const counted = lab.counters();
    lab.events();
    const tails: LimitTail[] = [];
    const start = nextStart();
    const parts: [bigint, number][] = [
      [0n, 500],
      [5n * S, 100],
      [12n * S, 100], // past report_every: a report of what came since the first
      [13n * S, 50], // the end of the flood: no report of its own
    ];
    parts.forEach(([at, n], part) => {
      onCpu(part);
      clock(start + at);
      for (const p of flood(n, dport)) lab.run("xdp", p);
    });
    // the source comes back after the sweep removed it: a flood of its own, swept too
    limits.sweep(live, SWEEP_AT, (t) => tails.push(t));
    clock(start + 100n * S);
    for (const p of flood(300, dport)) lab.run("xdp", p);
    limits.sweep(live, SWEEP_AT, (t) => tails.push(t));
    pinTo(affinity);

    const over = KernelLab.delta(counted, lab.counters(), [counter])[counter]!;
    const events = lab.events();
    const kernel = events.reduce((sum, e) => sum + (e.aggregated?.packets ?? 0), 0);
    const swept = tails.reduce((sum, t) => sum + t.packets, 0);
    assert.ok(over > 800, `${over} packets over the limit`);
    assert.equal(
      kernel + swept,
      over,
      `reports of ${kernel} (kernel: ${events.map((e) => e.aggregated?.packets).join(", ")}) + ` +
        `${swept} (sweep) packets for ${over} over the limit`,
    );
  });
}

test("a swept source's report is the rule's rate limit event, its source cut to the prefix", () => {
  const clock = limitClock(lab.dp.object).ns;
  const tails: LimitTail[] = [];
  clock(nextStart());
  for (const p of flood(15, 9000)) lab.run("xdp", p);
  lab.events();
  limits.sweep(live, SWEEP_AT, (t) => tails.push(t));
  assert.equal(tails.length, 1);
  const record = limitTailRecord(tails[0]!, { index: 0, generation, prevent: true }, 0n);
  const ev = decodeEvent(record, {
    bootTimeMs: 0,
    rule: (index) => image.rules[index],
    interfaceName: () => null,
  });
  assert.equal(eventLine(ev), "blocked ingress 0 198.51.100.0:0 -> 0.0.0.0:0 by limited (prevent)");
  assert.equal(ev.reason, "rate_limit");
  assert.deepEqual(ev.aggregated, { packets: 4 }, "5 over the limit, the first reported");
});

test("the datapath's sweep hands a swept source's report to its subscribers, as the kernel's", () => {
  const clock = limitClock(lab.dp.object).ns;
  clock(nextStart());
  const counted = lab.counters();
  lab.events();
  for (const p of flood(15, 9000)) lab.run("xdp", p);
  const sum = (events: ReturnType<KernelLab["events"]>) =>
    events.reduce((n, e) => n + (e.reason === "rate_limit" ? (e.aggregated?.packets ?? 0) : 0), 0);
  const kernel = sum(lab.events());
  lab.dp.sweepLimits(SWEEP_AT);
  const swept = sum(lab.events());
  const over = KernelLab.delta(counted, lab.counters(), ["limitDropped"]).limitDropped!;
  assert.ok(over > 0 && swept > 0, `over ${over}, swept ${swept}`);
  assert.equal(kernel + swept, over);
});
