// The connection table's times through BPF_PROG_TEST_RUN. A tracked connection's quiet packet
// (one that only counts and passes) takes the last tick's time instead of reading the clock: its
// entry's last-seen time never goes back, never falls behind the entry's creation, still follows
// the packets tick by tick; the packets that report something (a close), and the idle timeout
// itself, keep the clock's time to the nanosecond.
import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { KernelLab } from "../helpers/kernel-lab.ts";
import type { PacketSpec } from "../helpers/packets.ts";
import { writeConntrack, type ConntrackEntry } from "../../src/datapath/conntrack.ts";

const POLICY = `
version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules:
  - name: web
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [443] }
  - name: dns
    direction: ingress
    action: allow
    layer4: { protocol: udp, port: [53] }
`;

const H = "10.0.0.1";
const P = "198.51.100.1";
const tcpIn = (sport: number, flags: string): PacketSpec => ({
  src: P,
  dst: H,
  proto: "tcp",
  sport,
  dport: 443,
  flags,
});
const tcpOut = (dport: number, flags: string): PacketSpec => ({
  src: H,
  dst: P,
  proto: "tcp",
  sport: 443,
  dport,
  flags,
});

/** CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns */
const clock = () => process.hrtime.bigint();
/** a tick is at most 10 ms (CONFIG_HZ 100); a late one on a loaded VM, some more */
const TICK = 50_000_000n;
const SECOND = 1_000_000_000n;

function entryOf(lab: KernelLab, remotePort: number): ConntrackEntry {
  const found = [...lab.dp.conntrack()].find((e) => e.remote.port === remotePort);
  assert.ok(found, "conntrack entry");
  return found;
}

describe("conntrack times", () => {
  let lab: KernelLab;
  before(() => (lab = KernelLab.withPolicy(POLICY)));
  beforeEach(() => lab.forget());
  after(() => lab.close());

  test("quiet packets right after the first: last-seen never behind creation, never back", () => {
    const t0 = clock();
    assert.equal(lab.run("xdp", tcpIn(42000, "S")).verdict, "pass");
    const first = entryOf(lab, 42000);
    assert.ok(first.createdNs >= t0, "the first packet's time is the clock's");
    assert.equal(first.lastNs, first.createdNs);
    let last = first.lastNs;
    for (let i = 0; i < 50; i++) {
      assert.equal(
        lab.run(i % 2 ? "xdp" : "tc", i % 2 ? tcpIn(42000, "A") : tcpOut(42000, "A")).verdict,
        "pass",
      );
      const e = entryOf(lab, 42000);
      assert.ok(e.lastNs >= last, `packet ${i}: last-seen ${e.lastNs} went back from ${last}`);
      assert.ok(e.lastNs >= e.createdNs, `packet ${i}: last-seen behind creation`);
      last = e.lastNs;
    }
    const e = entryOf(lab, 42000);
    assert.equal(e.packets.initiator, 26n);
    assert.equal(e.packets.responder, 25n);
  });

  test("a quiet packet a while later moves last-seen to within a tick of its time", async () => {
    assert.equal(lab.run("xdp", tcpIn(42001, "S")).verdict, "pass");
    const created = entryOf(lab, 42001).createdNs;
    await sleep(100);
    const t0 = clock();
    assert.equal(lab.run("xdp", tcpIn(42001, "A")).verdict, "pass");
    const t1 = clock();
    const e = entryOf(lab, 42001);
    assert.ok(e.lastNs > created, "moved on");
    assert.ok(e.lastNs <= t1, "not ahead of the clock");
    assert.ok(e.lastNs + TICK >= t0, `${t0 - e.lastNs} ns behind the packet`);
  });

  test("a closing packet takes the clock's time, and its event the connection's duration", () => {
    assert.equal(lab.run("xdp", tcpIn(42002, "S")).verdict, "pass");
    assert.equal(lab.run("xdp", tcpIn(42002, "A")).verdict, "pass");
    const t0 = clock();
    assert.equal(lab.run("xdp", tcpIn(42002, "R")).verdict, "pass");
    const t1 = clock();
    const e = entryOf(lab, 42002);
    assert.equal(e.tcpState, "closed");
    assert.ok(e.lastNs >= t0 && e.lastNs <= t1, "the reset's time, read from the clock");
    const [closed] = lab.events();
    assert.equal(closed?.reason, "rst");
  });

  test("an entry times out by the clock, not a tick late: 1 ms past the timeout", () => {
    const q: PacketSpec = { src: P, dst: H, proto: "udp", sport: 5300, dport: 53 };
    const back: PacketSpec = { src: H, dst: P, proto: "udp", sport: 53, dport: 5300 };
    assert.equal(lab.run("xdp", q).verdict, "pass");
    const e = entryOf(lab, 5300);
    // the udp timeout is 60 s: last seen 60 s + 1 ms ago
    e.value.last_ns = clock() - 60n * SECOND - 1_000_000n;
    writeConntrack(lab.dp.conntrackMap, e);
    const before = lab.counters();
    // the answer on the expired tuple: a new egress connection (allowed), not the old one
    assert.equal(lab.run("tc", back).verdict, "pass");
    assert.deepEqual(KernelLab.delta(before, lab.counters(), ["ctExpired", "new", "established"]), {
      ctExpired: 1,
      new: 1,
      established: 0,
    });
  });

  test("an entry 50 ms short of its timeout is still the connection's", () => {
    const q: PacketSpec = { src: P, dst: H, proto: "udp", sport: 5301, dport: 53 };
    const back: PacketSpec = { src: H, dst: P, proto: "udp", sport: 53, dport: 5301 };
    assert.equal(lab.run("xdp", q).verdict, "pass");
    const e = entryOf(lab, 5301);
    // 60 s - 50 ms: within the tick time's slack of the timeout, where the clock decides
    e.value.last_ns = clock() - 60n * SECOND + 50_000_000n;
    writeConntrack(lab.dp.conntrackMap, e);
    const before = lab.counters();
    assert.equal(lab.run("tc", back).verdict, "pass");
    assert.deepEqual(KernelLab.delta(before, lab.counters(), ["ctExpired", "new", "established"]), {
      ctExpired: 0,
      new: 0,
      established: 1,
    });
  });
});
