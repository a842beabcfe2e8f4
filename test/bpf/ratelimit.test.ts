// Rate limits and invalid TCP flags through BPF_PROG_TEST_RUN: each algorithm over IPv4 and
// IPv6, at the edges of its windows and buckets, grouped sources, per-port limits, detect mode,
// aggregated reports, state kept over a reload, and a full state table. The limits read the time
// from the limit_clock map (load-time knob limit_test_clock), so windows are exact here.
import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { availableParallelism, cpus } from "node:os";
import { KernelLab, type Verdict } from "../helpers/kernel-lab.ts";
import { eventLine } from "../helpers/fixtures.ts";
import { clearLimitState, limitClock } from "../helpers/limit-state.ts";
import type { PacketSpec } from "../helpers/packets.ts";
import { ct as ctCodec } from "../../src/datapath/abi.ts";

const POLICY = `
version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules:
  - name: token
    direction: ingress
    action: allow
    layer4: { protocol: udp, port: [5001] }
    rate_limit: { rate: 10/s, burst: 3 }
  - name: fixed
    direction: ingress
    action: allow
    layer4: { protocol: udp, port: [5002] }
    rate_limit: { rate: 3/s, algorithm: fixed_window }
  - name: sliding
    direction: ingress
    action: allow
    layer4: { protocol: udp, port: [5003] }
    rate_limit: { rate: 4/s, algorithm: sliding_window }
  - name: leaky
    direction: ingress
    action: allow
    layer4: { protocol: udp, port: [5004] }
    rate_limit: { rate: 2/s, burst: 2, algorithm: leaky_bucket }
  - name: grouped
    direction: ingress
    action: allow
    layer4: { protocol: udp, port: [5005] }
    rate_limit: { rate: 2/s, algorithm: fixed_window, source: { ipv4: 24, ipv6: 64 } }
  - name: per-port
    direction: ingress
    action: allow
    layer4: { protocol: udp, port: ["5006-5007"] }
    rate_limit: { rate: 2/s, algorithm: fixed_window, per_port: true }
  - name: watched
    direction: ingress
    action: allow
    mode: detect
    layer4: { protocol: udp, port: [5008] }
    rate_limit: { rate: 2/s, algorithm: fixed_window }
  - name: reports
    direction: ingress
    action: allow
    layer4: { protocol: udp, port: [5009] }
    rate_limit: { rate: 2/m, algorithm: fixed_window, report_every: 10s }
  - name: ping
    direction: ingress
    action: allow
    layer4: { protocol: icmp, icmp: { type: 8 } }
    rate_limit: { rate: 5/s, burst: 2 }
  - name: web
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [80] }
`;

const H = "10.0.0.1";
const H6 = "fd00:2::1";
const S = 1000; // ms in a second
/** A time well past boot, on a whole minute: window 1000000 of a one-second limit. */
const T0 = 1_000_020 * S;

let sport = 20000;
const udp = (src: string, dport: number, fixedSport?: number): PacketSpec => ({
  src,
  dst: src.includes(":") ? H6 : H,
  proto: "udp",
  sport: fixedSport ?? sport++,
  dport,
});

describe("rate limits", () => {
  let lab: KernelLab;
  let at: (ms: number) => void;
  const send = (packets: PacketSpec[]): Verdict[] => packets.map((p) => lab.run("xdp", p).verdict);
  const times = <T>(n: number, f: () => T): T[] => Array.from({ length: n }, f);

  before(() => {
    lab = new KernelLab({ globals: { limit_test_clock: 1 } });
    at = limitClock(lab.dp.object).at;
  });
  after(() => lab.close());
  beforeEach(() => {
    // every test from no state: the policy's apply makes the overflow buckets again
    clearLimitState(lab.dp.object);
    lab.policy(POLICY);
  });

  for (const src of ["198.51.100.7", "2001:db8:7::7"]) {
    test(`token bucket, ${src}: a full bucket's burst, then one packet per 1/rate`, () => {
      at(T0);
      assert.deepEqual(send(times(4, () => udp(src, 5001))), ["pass", "pass", "pass", "drop"]);
      at(T0 + 99);
      assert.deepEqual(send([udp(src, 5001)]), ["drop"], "not yet a token");
      at(T0 + 100);
      assert.deepEqual(send(times(2, () => udp(src, 5001))), ["pass", "drop"]);
      at(T0 + 100 + 10 * S);
      assert.deepEqual(
        send(times(4, () => udp(src, 5001))),
        ["pass", "pass", "pass", "drop"],
        "an idle bucket holds no more than its burst",
      );
    });

    test(`fixed window, ${src}: the count per window, a new count at the boundary`, () => {
      at(T0 + 999);
      assert.deepEqual(send(times(4, () => udp(src, 5002))), ["pass", "pass", "pass", "drop"]);
      at(T0 + S);
      assert.deepEqual(send(times(4, () => udp(src, 5002))), ["pass", "pass", "pass", "drop"]);
    });

    test(`sliding window, ${src}: the previous window weighs by its overlap`, () => {
      at(T0);
      assert.deepEqual(send(times(5, () => udp(src, 5003))), [
        "pass",
        "pass",
        "pass",
        "pass",
        "drop",
      ]);
      at(T0 + S + 500);
      // half of the previous window's 4 still counts: 2 more
      assert.deepEqual(send(times(3, () => udp(src, 5003))), ["pass", "pass", "drop"]);
      at(T0 + 3 * S);
      // a whole window with nothing: the count starts over
      assert.deepEqual(send(times(5, () => udp(src, 5003))), [
        "pass",
        "pass",
        "pass",
        "pass",
        "drop",
      ]);
    });

    test(`leaky bucket, ${src}: a burst fills it, it drains at the rate`, () => {
      at(T0);
      assert.deepEqual(send(times(3, () => udp(src, 5004))), ["pass", "pass", "drop"]);
      at(T0 + 499);
      assert.deepEqual(send([udp(src, 5004)]), ["drop"]);
      at(T0 + 500);
      assert.deepEqual(send(times(2, () => udp(src, 5004))), ["pass", "drop"]);
    });
  }

  test("sources grouped by prefix share one limit; another prefix has its own", () => {
    at(T0);
    assert.deepEqual(send([udp("10.9.9.1", 5005), udp("10.9.9.2", 5005), udp("10.9.9.3", 5005)]), [
      "pass",
      "pass",
      "drop",
    ]);
    assert.deepEqual(send([udp("10.9.8.1", 5005)]), ["pass"]);
    assert.deepEqual(
      send([udp("fd00:9::1", 5005), udp("fd00:9::2:2", 5005), udp("fd00:9:0:0:1::3", 5005)]),
      ["pass", "pass", "drop"],
    );
    assert.deepEqual(send([udp("fd00:9:0:1::1", 5005)]), ["pass"]);
  });

  test("per_port: each server port has its own limit", () => {
    at(T0);
    const src = "198.51.100.20";
    assert.deepEqual(send([udp(src, 5006), udp(src, 5006), udp(src, 5006)]), [
      "pass",
      "pass",
      "drop",
    ]);
    assert.deepEqual(send([udp(src, 5007), udp(src, 5007)]), ["pass", "pass"]);
  });

  test("the packets of one flow (established) count as well as new flows", () => {
    at(T0);
    const src = "198.51.100.21";
    const flow = udp(src, 5001, 40001);
    const before = lab.counters();
    assert.deepEqual(send(times(4, () => flow)), ["pass", "pass", "pass", "drop"]);
    assert.deepEqual(KernelLab.delta(before, lab.counters(), ["established", "limitDropped"]), {
      established: 3,
      limitDropped: 1,
    });
  });

  test("icmp echo of one ping (one id) is limited too", () => {
    at(T0);
    const ping = (seq: number): PacketSpec => ({
      src: "198.51.100.22",
      dst: H,
      proto: "icmp",
      icmp: { type: 8, id: 7, seq },
    });
    assert.deepEqual(send([ping(1), ping(2), ping(3)]), ["pass", "pass", "drop"]);
  });

  test("prevent: over the limit is dropped, counted, reported once per interval", () => {
    at(T0);
    const src = "198.51.100.30";
    lab.events();
    const before = lab.counters();
    assert.deepEqual(send(times(7, () => udp(src, 5009))), [
      "pass",
      "pass",
      "drop",
      "drop",
      "drop",
      "drop",
      "drop",
    ]);
    const first = lab.events();
    assert.deepEqual(first.map(eventLine), [
      `blocked ingress udp ${src}:${sport - 5} -> 10.0.0.1:5009 by reports (prevent)`,
    ]);
    assert.equal(first[0]?.reason, "rate_limit");
    assert.deepEqual(first[0]?.aggregated, { packets: 1 });
    assert.deepEqual(KernelLab.delta(before, lab.counters(), ["limitDropped", "blocked"]), {
      limitDropped: 5,
      blocked: 0,
    });
    at(T0 + 9 * S);
    send([udp(src, 5009)]);
    assert.deepEqual(lab.events(), [], "within report_every: no event");
    at(T0 + 10 * S);
    send([udp(src, 5009)]);
    const later = lab.events();
    assert.equal(later.length, 1);
    assert.deepEqual(later[0]?.aggregated, { packets: 6 }, "every packet since the first report");
  });

  test("detect: over the limit passes, counted and reported as detected", () => {
    at(T0);
    const src = "2001:db8:7::30";
    lab.events();
    const before = lab.counters();
    assert.deepEqual(send(times(4, () => udp(src, 5008))), ["pass", "pass", "pass", "pass"]);
    const events = lab.events();
    assert.equal(events.length, 1, "one report for the source");
    assert.equal(events[0]?.type, "detected");
    assert.equal(events[0]?.rule, "watched");
    assert.equal(events[0]?.reason, "rate_limit");
    assert.deepEqual(
      KernelLab.delta(before, lab.counters(), ["limitDetected", "limitDropped", "drop"]),
      { limitDetected: 2, limitDropped: 0, drop: 0 },
    );
  });

  test("a rule without a limit is not counted", () => {
    at(T0);
    const before = lab.counters();
    const syns = times(20, () => ({
      src: "198.51.100.40",
      dst: H,
      proto: "tcp" as const,
      sport: sport++,
      dport: 80,
    }));
    assert.ok(send(syns).every((v) => v === "pass"));
    assert.deepEqual(KernelLab.delta(before, lab.counters(), ["limitDropped", "limitFull"]), {
      limitDropped: 0,
      limitFull: 0,
    });
  });

  test("a reload that keeps a limit keeps its state; a changed limit starts anew", () => {
    at(T0);
    const src = "198.51.100.50";
    assert.deepEqual(send(times(4, () => udp(src, 5002))), ["pass", "pass", "pass", "drop"]);
    lab.policy(POLICY);
    assert.deepEqual(send([udp(src, 5002)]), ["drop"], "same limit: still over");
    lab.policy(
      POLICY.replace("rate: 3/s, algorithm: fixed_window", "rate: 5/s, algorithm: fixed_window"),
    );
    assert.deepEqual(send([udp(src, 5002)]), ["pass"], "another limit: new state");
  });
});

describe("the rate limit state sweep", () => {
  let lab: KernelLab;
  before(() => (lab = new KernelLab()));
  after(() => lab.close());

  test("removes the state of limits no policy slot has any more, keeps the live ones'", () => {
    lab.policy(POLICY);
    for (const src of ["198.51.100.80", "2001:db8:80::1"]) lab.run("xdp", udp(src, 5001));
    const live = lab.dp.sweepLimits();
    assert.equal(live.removed, 0, "sources just seen stay");
    const entries = live.entries;
    assert.ok(entries >= 2, `${entries} entries: two sources and the overflow buckets`);
    // two reloads without limits: neither slot has them
    const plain = "version: 1\nmode: prevent\ndefaults: { ingress: allow, egress: allow }\n";
    lab.policy(plain);
    lab.policy(plain);
    assert.deepEqual(lab.dp.sweepLimits(), { entries, removed: entries });
    assert.deepEqual(lab.dp.sweepLimits(), { entries: 0, removed: 0 });
  });
});

describe("the sweep of idle sources", () => {
  let lab: KernelLab;
  before(() => (lab = new KernelLab({ globals: { limit_test_clock: 1 } })));
  after(() => lab.close());

  test("removes a source idle past its limit's memory, keeps the one just seen and the overflow buckets", () => {
    const seenAt = limitClock(lab.dp.object).ns;
    lab.policy(POLICY);
    const buckets = lab.dp.sweepLimits().entries;
    // times of the test's own (the machine's clock is short of them just after a boot): two
    // sources seen 10 minutes before the sweep, two at its time
    const now = 100_000_000_000_000n;
    seenAt(now - 600_000_000_000n);
    lab.run("xdp", udp("198.51.100.90", 5001));
    lab.run("xdp", udp("2001:db8:90::1", 5002));
    seenAt(now);
    lab.run("xdp", udp("198.51.100.91", 5001));
    lab.run("xdp", udp("2001:db8:91::1", 5002));
    assert.deepEqual(lab.dp.sweepLimits(now), { entries: buckets + 4, removed: 2 });
    assert.deepEqual(lab.dp.sweepLimits(now), { entries: buckets + 2, removed: 0 });
    // the sources left are the two just seen (key: id u32, port u16, flags u8, pad, address)
    const state = lab.dp.object.map("limit_state");
    const left: string[] = [];
    for (let k = state.nextKey(null); k; k = state.nextKey(k))
      if (!(k[6]! & 1)) left.push(k.subarray(8).toString("hex"));
    assert.deepEqual(
      left.sort(),
      [
        "00000000000000000000ffffc633645b", // 198.51.100.91
        "20010db8009100000000000000000001", // 2001:db8:91::1
      ].sort(),
    );
  });
});

describe("rate limits with a full state table", () => {
  let lab: KernelLab;
  before(() => {
    // the overflow bucket of each of the policy's limits, and two sources
    lab = new KernelLab({ globals: { limit_test_clock: 1 }, limitEntries: 3 });
    limitClock(lab.dp.object).at(T0);
  });
  after(() => lab.close());

  test("sources that find no room share the limit's overflow bucket, counted", () => {
    lab.policy(`
version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules:
  - name: fixed
    direction: ingress
    action: allow
    layer4: { protocol: udp, port: [5002] }
    rate_limit: { rate: 2/s, algorithm: fixed_window }
`);
    const verdicts = (src: string, n: number) =>
      Array.from({ length: n }, () => lab.run("xdp", udp(src, 5002)).verdict);
    assert.deepEqual(verdicts("198.51.100.1", 1), ["pass"]);
    assert.deepEqual(verdicts("198.51.100.2", 1), ["pass"]);
    const before = lab.counters();
    // no room: the third and fourth sources share the overflow bucket's 2 a second
    assert.deepEqual(verdicts("198.51.100.3", 2), ["pass", "pass"]);
    assert.deepEqual(verdicts("198.51.100.4", 1), ["drop"]);
    assert.deepEqual(KernelLab.delta(before, lab.counters(), ["limitFull", "limitDropped"]), {
      limitFull: 3,
      limitDropped: 1,
    });
    // sources with room keep their own limits
    assert.deepEqual(verdicts("198.51.100.1", 2), ["pass", "drop"]);
  });
});

/** This process's CPUs, as taskset lists them ("0,1" or "0-1"). */
const affinityNow = (): string =>
  spawnSync("taskset", ["-p", "-c", String(process.pid)], { encoding: "utf8" })
    .stdout.split(":")
    .pop()!
    .trim();

/** Every thread of this process on `cpus`: a test run runs on its caller's CPU. */
function pinTo(cpus: string): void {
  const r = spawnSync("taskset", ["-a", "-p", "-c", cpus, String(process.pid)]);
  assert.equal(r.status, 0);
}

describe("invalid tcp flags", () => {
  let lab: KernelLab;
  before(() => {
    lab = new KernelLab({ globals: { limit_test_clock: 1 } });
  });
  after(() => lab.close());

  const PREVENT = `
version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
`;
  const cases: [string, string][] = [
    ["SYN+FIN", "SF"],
    ["SYN+RST", "SR"],
    ["no flag (null scan)", ""],
    ["FIN+PSH+URG (xmas)", "FPU"],
  ];
  for (const src of ["198.51.100.60", "2001:db8:60::1"]) {
    for (const [what, flags] of cases) {
      test(`${what} from ${src}: dropped in prevent, counted`, () => {
        lab.policy(PREVENT);
        const before = lab.counters();
        const p: PacketSpec = {
          src,
          dst: src.includes(":") ? H6 : H,
          proto: "tcp",
          dport: 80,
          flags,
        };
        assert.equal(lab.run("xdp", p).verdict, "drop");
        assert.deepEqual(KernelLab.delta(before, lab.counters(), ["tcpFlagsDropped", "new"]), {
          tcpFlagsDropped: 1,
          new: 0,
        });
      });
    }
    test(`valid flags from ${src} pass`, () => {
      lab.policy(PREVENT);
      const dst = src.includes(":") ? H6 : H;
      for (const flags of ["S", "SA", "A", "FA", "R", "PA", "RA"]) {
        const p: PacketSpec = { src, dst, proto: "tcp", dport: 80, sport: sport++, flags };
        assert.equal(lab.run("xdp", p).verdict, "pass", flags);
      }
    });
  }

  test("detect: passed, counted, reported once a second with the packets since", (t) => {
    // reports are once a second per CPU: every packet on one, as a flow's packets are
    const affinity = affinityNow();
    pinTo("0");
    t.after(() => pinTo(affinity));
    lab.policy(PREVENT.replace("mode: prevent", "mode: detect"));
    const { at } = limitClock(lab.dp.object);
    at(T0);
    lab.events();
    const before = lab.counters();
    const p: PacketSpec = { src: "198.51.100.61", dst: H, proto: "tcp", dport: 22, flags: "SF" };
    for (let i = 0; i < 5; i++) assert.equal(lab.run("xdp", p).verdict, "pass");
    const events = lab.events();
    assert.equal(events.length, 1, "one report for 5 packets within a second");
    assert.equal(events[0]?.type, "detected");
    assert.equal(events[0]?.reason, "tcp_flags");
    assert.equal(events[0]?.rule, "scrub");
    assert.deepEqual(KernelLab.delta(before, lab.counters(), ["tcpFlagsDetected", "drop"]), {
      tcpFlagsDetected: 5,
      drop: 0,
    });
    at(T0 + 1000);
    assert.equal(lab.run("xdp", p).verdict, "pass");
    assert.deepEqual(
      lab.events().map((e) => e.aggregated),
      [{ packets: 5 }],
      "the next second's report: the 4 packets after the first report, and this one",
    );
  });
});

describe("rate limits across CPUs", () => {
  let lab: KernelLab;
  let at: (ms: number) => void;
  let affinity = "";
  const LEASE = 4;
  before(() => {
    lab = new KernelLab({ globals: { limit_test_clock: 1 }, limitLease: LEASE });
    /** the time the limits read, in ms */
    at = limitClock(lab.dp.object).at;
    affinity = affinityNow();
  });
  after(() => {
    pinTo(affinity);
    lab.close();
  });
  /** test runs on cpu `cpu` (BPF_PROG_TEST_RUN runs on the caller's) */
  const onCpu = (cpu: number) => pinTo(String(cpu));

  test("leases taken by each CPU never let a window admit more than its count", () => {
    lab.policy(
      POLICY.replace("rate: 3/s, algorithm: fixed_window", "rate: 20/s, algorithm: fixed_window"),
    );
    at(T0);
    const cpus = Math.min(2, availableParallelism());
    let passed = 0;
    // 60 packets in one window, in turns of 3 on each CPU
    for (let i = 0; i < 20; i++) {
      onCpu(i % cpus);
      for (let j = 0; j < 3; j++)
        if (lab.run("xdp", udp("198.51.100.70", 5002)).verdict === "pass") passed++;
    }
    assert.ok(passed <= 20, `${passed} admitted: at most the window's count`);
    // what a CPU leased and did not use is lost to the others: at most cpus * (lease - 1)
    assert.ok(passed >= 20 - cpus * (LEASE - 1), `${passed} admitted, ${cpus} cpus`);
  });

  test("a report counts the packets over the limit every CPU dropped since the previous one", (t) => {
    // (not availableParallelism: the test before pinned the process to one CPU)
    if (cpus().length < 2) return t.skip("one CPU");
    lab.policy(POLICY);
    const src = "198.51.100.71";
    at(T0);
    lab.events();
    // the source's flood on CPU 0: 2 within the limit, 5 over it, the first reported
    onCpu(0);
    const verdicts = Array.from({ length: 7 }, () => lab.run("xdp", udp(src, 5009)).verdict);
    assert.deepEqual(verdicts, ["pass", "pass", "drop", "drop", "drop", "drop", "drop"]);
    assert.deepEqual(
      lab.events().map((e) => e.aggregated),
      [{ packets: 1 }],
    );
    // its next packet on CPU 1 once a report is due: the 4 CPU 0 dropped since, and this one
    onCpu(1);
    at(T0 + 10 * S);
    assert.equal(lab.run("xdp", udp(src, 5009)).verdict, "drop");
    assert.deepEqual(
      lab.events().map((e) => e.aggregated),
      [{ packets: 5 }],
    );
  });

  test("a connection past its first packets passes on credit its lease hands over; a window still admits its count", () => {
    lab.policy(
      POLICY.replace("rate: 3/s, algorithm: fixed_window", "rate: 40/s, algorithm: fixed_window"),
    );
    at(T0);
    onCpu(0);
    const conntrack = lab.dp.object.map("conntrack");
    const credits = (): number[] => {
      const out: number[] = [];
      for (let k = conntrack.nextKey(null); k; k = conntrack.nextKey(k)) {
        const e = conntrack.lookup(k);
        if (e) out.push(ctCodec.decode(e).limit_credit);
      }
      return out;
    };
    // short flows (a new connection a packet) take none: their CPU's lease keeps it
    for (let i = 0; i < 6; i++) lab.run("xdp", udp("198.51.100.72", 5002));
    assert.deepEqual(
      credits().filter((c) => c > 0),
      [],
    );
    // one flow from another source, on one CPU, leases of 4: packets 1-32 from the leases
    // (taken at 1, 5, ..., 29); the lease taken at 33 goes to the connection (3 of it)
    const flow = (): PacketSpec => udp("198.51.100.73", 5002, 31000);
    const verdicts = Array.from({ length: 34 }, () => lab.run("xdp", flow()).verdict);
    assert.deepEqual(verdicts, Array(34).fill("pass"));
    assert.deepEqual(
      credits().filter((c) => c > 0),
      [2],
      "3 handed over, 1 spent",
    );
    // the window's count of 40 holds with credit in the connection: 6 more pass, then none
    const rest = Array.from({ length: 16 }, () => lab.run("xdp", flow()).verdict);
    assert.deepEqual(rest, [...Array(6).fill("pass"), ...Array(10).fill("drop")]);
  });
});

describe("rate limits by the kernel's clock", () => {
  let lab: KernelLab;
  let affinity = "";
  before(() => {
    lab = new KernelLab({ limitLease: 4 });
    affinity = affinityNow();
    pinTo("0");
  });
  after(() => {
    pinTo(affinity);
    lab.close();
  });

  test("a flow's packets on its credit take the tick's time and admit what the clock would: the burst, then none", () => {
    // a burst of 40 and one packet an hour: within the test, nothing refills
    lab.policy(POLICY.replace("rate: 10/s, burst: 3", "rate: 1/h, burst: 40"));
    const flow = (): PacketSpec => udp("198.51.100.74", 5001, 31001);
    const first = Array.from({ length: 34 }, () => lab.run("xdp", flow()).verdict);
    // packets 1-32 from leases of 4, the lease taken at 33 handed to the connection (3 of it):
    // its next packets pass on that credit, by the tick's time
    const conntrack = lab.dp.object.map("conntrack");
    const credits: number[] = [];
    for (let k = conntrack.nextKey(null); k; k = conntrack.nextKey(k)) {
      const e = conntrack.lookup(k);
      if (e) credits.push(ctCodec.decode(e).limit_credit);
    }
    assert.deepEqual(credits, [2], "3 handed over, 1 spent");
    const rest = Array.from({ length: 16 }, () => lab.run("xdp", flow()).verdict);
    assert.deepEqual([...first, ...rest], [...Array(40).fill("pass"), ...Array(10).fill("drop")]);
  });
});
