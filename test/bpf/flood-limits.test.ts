// flood.icmp and flood.udp_amplification through BPF_PROG_TEST_RUN, before any rule: an ICMP
// packet one byte over max_size is dropped and one at it passes (v4 and v6, XDP and TC ingress);
// datagrams from an amplification port pass up to the burst and are dropped after it, per source
// and source port, while another source port or source is untouched; detect mode passes all and
// counts; each is reported as an aggregated event with rule "flood".
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { KernelLab, type HookName } from "../helpers/kernel-lab.ts";
import type { PacketSpec } from "../helpers/packets.ts";
import type { FloodCounters } from "../../src/datapath/flood-maps.ts";

const policy = (mode: "detect" | "prevent") => `
version: 1
mode: ${mode}
defaults: { ingress: allow, egress: allow }
flood:
  icmp: { max_size: 100 }
  udp_amplification: { ports: [53, 123], rate_limit: { rate: 1/h, burst: 3 } }
`;

const delta = (a: FloodCounters, b: FloodCounters) =>
  Object.fromEntries(
    (Object.keys(b) as (keyof FloodCounters)[]).flatMap((k) =>
      b[k] !== a[k] ? [[k, Number(b[k] - a[k])]] : [],
    ),
  );

/** An echo request whose IP packet is `size` bytes. */
function ping(v6: boolean, size: number): PacketSpec {
  const headers = v6 ? 40 + 8 : 20 + 8;
  return {
    src: v6 ? "2001:db8::7" : "198.51.100.7",
    dst: v6 ? "fd00:2::1" : "10.0.0.1",
    proto: v6 ? "icmpv6" : "icmp",
    icmp: { type: v6 ? 128 : 8, id: 1, seq: 1 },
    payload: size - headers,
  };
}

describe("flood limits before the rules", () => {
  let lab: KernelLab;
  before(() => {
    lab = new KernelLab({ globals: { limit_test_clock: 1 } });
    // the limits' clock stands still: buckets never refill during a test
    setClock(1000);
  });
  const setClock = (seconds: number) => {
    const at = Buffer.alloc(8);
    at.writeBigUInt64LE(BigInt(seconds) * 1_000_000_000n);
    lab.dp.object.map("limit_clock").update(Buffer.alloc(4), at);
  };
  after(() => lab.close());

  for (const hook of ["xdp", "tc-ingress"] as HookName[]) {
    for (const v6 of [false, true]) {
      test(`icmp max_size at ${hook}, ${v6 ? "IPv6" : "IPv4"}: 100 bytes pass, 101 are dropped`, () => {
        lab.policy(policy("prevent"));
        const before = lab.dp.floodCounters();
        assert.equal(lab.run(hook, ping(v6, 100)).verdict, "pass");
        assert.equal(lab.run(hook, ping(v6, 101)).verdict, "drop");
        assert.deepEqual(delta(before, lab.dp.floodCounters()), { icmpDropped: 1 });
      });
    }
  }

  test("an oversized ping is reported with rule flood", () => {
    lab.policy(policy("prevent"));
    setClock(1010); // the reports of the tests before are more than a second old
    lab.run("xdp", ping(false, 1000));
    const ev = lab.events().find((e) => e.reason === "icmp_size");
    assert.ok(ev, "a report");
    assert.equal(ev.type, "blocked");
    assert.equal(ev.rule, "flood");
    assert.ok((ev.aggregated?.packets ?? 0) >= 1);
  });

  test("udp from port 53: the burst passes, then each source and source port is cut", () => {
    lab.policy(policy("prevent"));
    const from = (src: string, sport: number): PacketSpec => ({
      src,
      dst: "10.0.0.1",
      proto: "udp",
      sport,
      dport: 40000,
      payload: 400,
    });
    const verdicts = (spec: PacketSpec, n: number) =>
      Array.from({ length: n }, () => lab.run("xdp", spec).verdict);
    const before = lab.dp.floodCounters();
    assert.deepEqual(verdicts(from("198.51.100.53", 53), 5), [
      "pass",
      "pass",
      "pass",
      "drop",
      "drop",
    ]);
    assert.deepEqual(
      verdicts(from("198.51.100.53", 123), 3),
      ["pass", "pass", "pass"],
      "its own port",
    );
    assert.deepEqual(
      verdicts(from("198.51.100.54", 53), 3),
      ["pass", "pass", "pass"],
      "its own source",
    );
    assert.deepEqual(verdicts(from("198.51.100.53", 5353), 5), Array(5).fill("pass"), "not listed");
    assert.deepEqual(delta(before, lab.dp.floodCounters()), { udpDropped: 2 });
    const reports = lab.events().filter((e) => e.reason === "udp_amplification");
    assert.equal(reports.length, 1, "one report per source per report_every");
    assert.equal(reports[0]?.rule, "flood");
    assert.equal(reports[0]?.remote.port, 53);
  });

  test("detect: everything passes, counted", () => {
    lab.policy(policy("detect"));
    const before = lab.dp.floodCounters();
    assert.equal(lab.run("xdp", ping(true, 500)).verdict, "pass");
    for (let i = 0; i < 5; i++)
      assert.equal(
        lab.run("xdp", {
          src: "198.51.100.99",
          dst: "10.0.0.1",
          proto: "udp",
          sport: 123,
          dport: 1,
        }).verdict,
        "pass",
      );
    assert.deepEqual(delta(before, lab.dp.floodCounters()), { icmpDetected: 1, udpDetected: 2 });
  });

  test("the sweep forgets sources idle past what their limit remembers, and no other", () => {
    // a limit that forgets a source after 3 s idle; the kernel's clock for it at 1 s
    lab.policy(policy("prevent").replace("rate: 1/h", "rate: 1/s"));
    setClock(1);
    const state = lab.dp.object.map("flood_udp_state");
    const count = () => {
      let n = 0;
      for (let k = state.nextKey(null); k; k = state.nextKey(k)) n++;
      return n;
    };
    try {
      lab.dp.sweepLimits();
      const kept = count(); // overflow buckets: never swept
      for (let i = 0; i < 20; i++)
        lab.run("xdp", {
          src: `198.51.100.${100 + i}`,
          dst: "10.0.0.1",
          proto: "udp",
          sport: 53,
          dport: 40000,
        });
      assert.equal(count(), kept + 20, "a state for each source");
      // the kernel's clock moves to now: every source was last seen now, none is idle
      setClock(Number(process.hrtime.bigint() / 1_000_000_000n));
      lab.run("xdp", { src: "198.51.100.100", dst: "10.0.0.1", proto: "udp", sport: 53, dport: 1 });
      lab.dp.sweepLimits();
      assert.equal(count(), kept + 1, "the source seen now stays; the 19 idle since 1 s go");
    } finally {
      setClock(1000);
    }
  });

  test("the sweep keeps a source until its report_every is over: one report per source per report_every", () => {
    // the bucket fills in 3 s; a source's report is good for an hour
    lab.policy(
      policy("prevent").replace("rate: 1/h, burst: 3", "rate: 1/s, burst: 3, report_every: 1h"),
    );
    const datagram = {
      src: "198.51.100.77",
      dst: "10.0.0.1",
      proto: "udp",
      sport: 53,
      dport: 40000,
    } as const;
    const reports = () => lab.events().filter((e) => e.reason === "udp_amplification").length;
    const monotonicSeconds = Number(process.hrtime.bigint() / 1_000_000_000n);
    try {
      lab.events();
      // 10 s ago (the sweep reads CLOCK_MONOTONIC, as the kernel does without the test clock)
      setClock(monotonicSeconds - 10);
      for (let i = 0; i < 5; i++) lab.run("xdp", datagram);
      assert.equal(reports(), 1, "over the limit: reported");
      // idle 10 s: past the bucket's fill, within its report_every
      lab.dp.sweepLimits();
      setClock(monotonicSeconds);
      for (let i = 0; i < 5; i++) lab.run("xdp", datagram);
      assert.equal(reports(), 0, "over the limit again within report_every: counted, not reported");
    } finally {
      setClock(1000);
    }
  });
  test("a swept source's datagrams over the limit since its report are reported by the sweep", () => {
    lab.policy(policy("prevent").replace("rate: 1/h, burst: 3", "rate: 1/s, burst: 3"));
    const datagram = {
      src: "198.51.100.78",
      dst: "10.0.0.1",
      proto: "udp",
      sport: 53,
      dport: 40000,
    } as const;
    const packets = () =>
      lab
        .events()
        .filter((e) => e.reason === "udp_amplification" && e.remote.ip === datagram.src)
        .reduce((n, e) => n + (e.aggregated?.packets ?? 0), 0);
    try {
      lab.events();
      const before = lab.dp.floodCounters();
      // an hour before the sweep: idle since (times of the test's own: the machine's clock is
      // short of an hour just after a boot)
      setClock(100_000);
      for (let i = 0; i < 10; i++) lab.run("xdp", datagram);
      const kernel = packets();
      lab.dp.sweepLimits(103_600n * 1_000_000_000n);
      const swept = packets();
      const { udpDropped } = delta(before, lab.dp.floodCounters());
      assert.equal(udpDropped, 7);
      assert.equal(kernel + swept, udpDropped, `kernel ${kernel} + swept ${swept}`);
    } finally {
      setClock(1000);
    }
  });
});
