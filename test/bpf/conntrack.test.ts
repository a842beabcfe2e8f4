// Connection tracking through BPF_PROG_TEST_RUN: replies of allowed connections pass, blocked
// connections stay blocked, the TCP state machine and its close events, timeouts, mid-stream
// packets, ICMP echo and errors, re-judging after a reload, per-rule counters.
import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { KernelLab } from "../helpers/kernel-lab.ts";
import { eventLine } from "../helpers/fixtures.ts";
import { checksumsOk, packet, type PacketSpec } from "../helpers/packets.ts";
import { writeConntrack, type ConntrackEntry } from "../../src/datapath/conntrack.ts";
import { CtFlag } from "../../src/datapath/abi.ts";
import { native } from "../../src/datapath/addon.ts";
import { parsePolicy } from "../../src/config/index.ts";
import { Attribution } from "../../src/attribution/index.ts";
import { readProcessUniverse } from "../../src/host/process-universe.ts";
import { compilePolicy } from "../../src/policy/compile/policy-image.ts";

const POLICY = `
version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules:
  - name: no-evil
    direction: egress
    action: block
    layer3: { remote: [203.0.113.0/24] }
  - name: ssh
    direction: ingress
    action: allow
    log: true
    layer4: { protocol: tcp, port: [22] }
  - name: web
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [443] }
  - name: logged-out
    direction: egress
    action: allow
    log: true
    layer4: { protocol: tcp, port: [8443] }
`;

const H = "10.0.0.1";
const P = "198.51.100.1";
const EVIL = "203.0.113.5";

/** A TCP segment between this host (H:lport) and a peer (peer:rport), in either direction. */
const out = (rport: number, lport: number, flags: string, peer = P): PacketSpec => ({
  src: H,
  dst: peer,
  proto: "tcp",
  sport: lport,
  dport: rport,
  flags,
});
const inn = (rport: number, lport: number, flags: string, peer = P): PacketSpec => ({
  src: peer,
  dst: H,
  proto: "tcp",
  sport: rport,
  dport: lport,
  flags,
});

function entry(lab: KernelLab, pred: (e: ConntrackEntry) => boolean): ConntrackEntry {
  const found = [...lab.dp.conntrack()].find(pred);
  assert.ok(found, "conntrack entry");
  return found;
}

describe("conntrack", () => {
  let lab: KernelLab;
  before(() => (lab = KernelLab.withPolicy(POLICY)));
  beforeEach(() => lab.forget());
  after(() => lab.close());

  test("the reply of an allowed egress connection passes at xdp, by one lookup", () => {
    assert.equal(lab.run("tc", out(443, 41000, "S")).verdict, "pass");
    const before = lab.counters();
    assert.equal(lab.run("xdp", inn(443, 41000, "SA")).verdict, "pass");
    assert.equal(lab.run("tc", out(443, 41000, "A")).verdict, "pass");
    assert.equal(lab.run("xdp", inn(443, 41000, "PA")).verdict, "pass");
    const d = KernelLab.delta(before, lab.counters(), ["established", "new"]);
    assert.deepEqual(d, { established: 3, new: 0 });
    const e = entry(lab, (x) => x.local.port === 41000);
    assert.equal(e.direction, "egress");
    assert.equal(e.tcpState, "established");
    assert.deepEqual(e.remote, { ip: P, port: 443 });
    assert.equal(e.packets.initiator, 2n);
    assert.equal(e.packets.responder, 2n);
    // the same remote port to another local port is another connection: ingress, blocked
    assert.equal(lab.run("xdp", inn(443, 41001, "SA")).verdict, "drop");
  });

  test("a blocked ingress connection stays blocked, both ways, reported once", () => {
    assert.equal(lab.run("xdp", inn(41000, 23, "S")).verdict, "drop");
    assert.equal(lab.run("xdp", inn(41000, 23, "S")).verdict, "drop", "retransmitted syn");
    assert.equal(lab.run("xdp", inn(41000, 23, "A")).verdict, "drop");
    assert.equal(lab.run("tc", out(41000, 23, "SA")).verdict, "drop", "our side of it");
    assert.deepEqual(lab.events().map(eventLine), [
      `blocked ingress tcp ${P}:41000 -> ${H}:23 by default (prevent)`,
    ]);
  });

  test("a blocked egress connection stays blocked: the peer cannot answer into it", () => {
    assert.equal(lab.run("tc", out(443, 41002, "S", EVIL)).verdict, "drop");
    assert.equal(lab.run("xdp", inn(443, 41002, "SA", EVIL)).verdict, "drop");
    assert.equal(lab.run("xdp", inn(443, 41002, "A", EVIL)).verdict, "drop");
  });

  test("udp: the answer to an allowed query passes; another port of the same peer does not", () => {
    const q: PacketSpec = { src: H, dst: P, proto: "udp", sport: 5300, dport: 53 };
    assert.equal(lab.run("tc", q).verdict, "pass");
    assert.equal(lab.run("xdp", { ...q, src: P, dst: H, sport: 53, dport: 5300 }).verdict, "pass");
    assert.equal(lab.run("xdp", { ...q, src: P, dst: H, sport: 54, dport: 5300 }).verdict, "drop");
    const e = entry(lab, (x) => x.protocol === 17 && x.remote.port === 53);
    assert.equal(e.flags & 0x10, 0x10, "replied flag");
  });

  test("icmp echo: the reply with the request's id passes; an unsolicited reply does not", () => {
    const req: PacketSpec = { src: H, dst: P, proto: "icmp", icmp: { type: 8, id: 77 } };
    assert.equal(lab.run("tc", req).verdict, "pass");
    const reply = (id: number): PacketSpec => ({
      src: P,
      dst: H,
      proto: "icmp",
      icmp: { type: 0, id },
    });
    assert.equal(lab.run("xdp", reply(77)).verdict, "pass");
    assert.equal(lab.run("xdp", reply(78)).verdict, "drop");
    assert.equal(lab.run("xdp", reply(78)).verdict, "drop", "judged again, not remembered");
    assert.equal([...lab.dp.conntrack()].length, 1);
    // ipv6
    const req6: PacketSpec = {
      src: "fd00::1",
      dst: "2001:db8::9",
      proto: "icmpv6",
      icmp: { type: 128, id: 5 },
    };
    assert.equal(lab.run("tc", req6).verdict, "pass");
    const reply6 = { ...req6, src: req6.dst, dst: req6.src, icmp: { type: 129, id: 5 } };
    assert.equal(lab.run("xdp", reply6).verdict, "pass");
  });

  test("icmp errors about an allowed connection pass; about nothing, the policy judges them", () => {
    const q: PacketSpec = { src: H, dst: P, proto: "udp", sport: 5301, dport: 53, payload: 8 };
    assert.equal(lab.run("tc", q).verdict, "pass");
    const embedded = packet({ ...q, l3Only: true });
    const unreachable = (inner: Buffer): PacketSpec => ({
      src: P,
      dst: H,
      proto: "icmp",
      icmp: { type: 3, code: 3, id: 0, seq: 0 },
      payload: inner.subarray(0, 28),
    });
    const before = lab.counters();
    assert.equal(lab.run("xdp", unreachable(embedded)).verdict, "pass");
    assert.deepEqual(KernelLab.delta(before, lab.counters(), ["related"]), { related: 1 });
    const other = packet({ ...q, sport: 5999, l3Only: true });
    assert.equal(lab.run("xdp", unreachable(other)).verdict, "drop");
    // ipv6 packet too big about an allowed tcp connection
    const c6: PacketSpec = {
      src: "fd00::1",
      dst: "2001:db8::9",
      proto: "tcp",
      sport: 41010,
      dport: 443,
    };
    assert.equal(lab.run("tc", c6).verdict, "pass");
    const big: PacketSpec = {
      src: "2001:db8::9",
      dst: "fd00::1",
      proto: "icmpv6",
      icmp: { type: 2, id: 0, seq: 1280 },
      payload: packet({ ...c6, l3Only: true }).subarray(0, 48),
    };
    assert.equal(lab.run("xdp", big).verdict, "pass");
  });

  test("tcp state machine: fin both ways closes a logged connection, reported once", () => {
    const steps: ["tc" | "xdp", PacketSpec, string][] = [
      ["tc", out(8443, 41020, "S"), "synSent"],
      ["xdp", inn(8443, 41020, "SA"), "synRecv"],
      ["tc", out(8443, 41020, "A"), "established"],
      ["tc", out(8443, 41020, "FA"), "finWait"],
      ["xdp", inn(8443, 41020, "FA"), "timeWait"],
      ["tc", out(8443, 41020, "A"), "timeWait"],
    ];
    for (const [hook, spec, state] of steps) {
      assert.equal(lab.run(hook, spec).verdict, "pass");
      assert.equal(entry(lab, (x) => x.local.port === 41020).tcpState, state);
    }
    const events = lab.events();
    assert.deepEqual(events.map(eventLine), [
      `allowed egress tcp ${H}:41020 -> ${P}:8443 by logged-out (prevent)`,
      `closed egress tcp ${H}:41020 -> ${P}:8443 by logged-out (prevent)`,
    ]);
    const closed = events[1];
    assert.equal(closed?.reason, "fin");
    assert.equal(closed?.stats?.packets, 5);
    assert.equal(closed?.connection, events[0]?.connection);
    // a new syn on the tuple of a closed connection opens a new one
    assert.equal(lab.run("tc", out(8443, 41020, "S")).verdict, "pass");
    assert.deepEqual(
      lab.events().map((e) => `${e.type} ${e.reason}`),
      ["allowed new"],
    );
  });

  test("a reset closes the connection; an unlogged connection's close is a flow record only", () => {
    assert.equal(lab.run("xdp", inn(41030, 22, "S")).verdict, "pass");
    // refused: the reset acks the syn (its sequence number, 1000, + 1)
    assert.equal(lab.run("tc", { ...out(41030, 22, "RA"), ack: 1001 }).verdict, "pass");
    const ev = lab.events();
    assert.deepEqual(
      ev.map((e) => `${e.type} ${e.reason} ${e.rule}`),
      ["allowed new ssh", "closed rst ssh"],
    );
    assert.equal(entry(lab, (x) => x.local.port === 22).tcpState, "closed");
    const before = lab.counters();
    assert.equal(lab.run("xdp", inn(41031, 443, "S")).verdict, "pass");
    assert.equal(lab.run("xdp", inn(41031, 443, "R")).verdict, "pass");
    assert.deepEqual(
      lab.events().map((e) => `${e.type} ${e.reason} ${e.rule}`),
      ["flow rst web"],
    );
    assert.deepEqual(KernelLab.delta(before, lab.counters(), ["closed"]), { closed: 1 });
  });

  test("a tcp packet with no entry is judged as a new connection (mid-stream)", () => {
    assert.equal(lab.run("xdp", inn(41040, 443, "A")).verdict, "pass", "to an allowed port");
    const e = entry(lab, (x) => x.local.port === 443);
    assert.equal(e.flags & 0x20, 0x20, "midstream flag");
    assert.equal(e.tcpState, "established");
    assert.equal(lab.run("xdp", inn(41041, 5555, "PA")).verdict, "drop", "to a closed port");
  });

  test("a mid-stream guess does not outlive a real syn on the same tuple", () => {
    // a packet that looks like an answer to a connection we never opened: judged ingress, blocked
    assert.equal(lab.run("xdp", inn(443, 41050, "A")).verdict, "drop");
    // then this host really opens that tuple: a syn starts a new connection, judged egress
    assert.equal(lab.run("tc", out(443, 41050, "S")).verdict, "pass");
    assert.equal(lab.run("xdp", inn(443, 41050, "SA")).verdict, "pass");
    assert.equal(entry(lab, (x) => x.local.port === 41050).direction, "egress");
  });

  test("an expired entry is judged again as new", () => {
    const q: PacketSpec = { src: H, dst: P, proto: "udp", sport: 5302, dport: 53 };
    assert.equal(lab.run("tc", q).verdict, "pass");
    const e = entry(lab, (x) => x.local.port === 5302);
    e.value.last_ns -= 61n * 1_000_000_000n; // past the 60 s udp timeout
    writeConntrack(lab.dp.conntrackMap, e);
    const before = lab.counters();
    // the peer's packet now opens an ingress flow of its own, which the default blocks
    assert.equal(lab.run("xdp", { ...q, src: P, dst: H, sport: 53, dport: 5302 }).verdict, "drop");
    assert.deepEqual(KernelLab.delta(before, lab.counters(), ["ctExpired", "new"]), {
      ctExpired: 1,
      new: 1,
    });
  });

  test("per-rule counters: packets and bytes of every packet, connections judged", () => {
    const before = lab.dp.ruleCounters().rules.find((r) => r.name === "web");
    for (let i = 0; i < 3; i++) lab.run("xdp", inn(41060 + i, 443, "S"));
    lab.run("tc", out(41060, 443, "SA"));
    const after = lab.dp.ruleCounters().rules.find((r) => r.name === "web");
    assert.ok(before && after);
    assert.equal(after.connections - before.connections, 3n);
    assert.equal(after.packets - before.packets, 4n);
    assert.equal(after.bytes - before.bytes, 4n * 54n);
  });

  test("per-rule counters past 32 bits are summed exactly", () => {
    const web = lab.dp.ruleCounters().rules.find((r) => r.name === "web");
    assert.ok(web);
    // the live slot's counters map, row 0 (one CPU's): add 2^40 + 3 bytes to the rule's
    const zero = Buffer.alloc(4);
    const active = lab.dp.object.map("state").lookup(zero)!.readUInt32LE(0);
    const slot = Buffer.alloc(4);
    slot.writeUInt32LE(active);
    const inner = lab.dp.object.map("tbl_rule_stats").lookup(slot)!.readUInt32LE(0);
    const stats = native().BpfMap.openById(inner);
    try {
      const key = Buffer.alloc(4);
      key.writeUInt32LE(web.index);
      const value = stats.lookup(key)!;
      value.writeBigUInt64LE(value.readBigUInt64LE(8) + 2n ** 40n + 3n, 8);
      stats.update(key, value);
    } finally {
      stats.close();
    }
    const after = lab.dp.ruleCounters().rules.find((r) => r.name === "web");
    assert.equal(after?.bytes, web.bytes + 2n ** 40n + 3n);
    assert.equal(after?.packets, web.packets);
  });
});

describe("conntrack across a reload", () => {
  let lab: KernelLab;
  before(() => {
    lab = new KernelLab();
  });
  after(() => lab.close());

  test("a new policy re-judges live connections on their next packet", () => {
    lab.policy(POLICY);
    assert.equal(lab.run("tc", out(443, 41100, "S", "198.51.100.7")).verdict, "pass");
    assert.equal(lab.run("xdp", inn(443, 41100, "SA", "198.51.100.7")).verdict, "pass");
    assert.equal(lab.run("xdp", inn(41101, 22, "S")).verdict, "pass");
    lab.events();
    // the peer joins the block list, ssh is no longer allowed
    lab.policy(
      `
version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules:
  - name: no-evil
    direction: egress
    action: block
    layer3: { remote: [203.0.113.0/24, 198.51.100.7] }
`,
      { keepConntrack: true },
    );
    const before = lab.counters();
    assert.equal(lab.run("xdp", inn(443, 41100, "A", "198.51.100.7")).verdict, "drop");
    assert.equal(lab.run("tc", out(443, 41100, "A", "198.51.100.7")).verdict, "drop");
    assert.equal(lab.run("xdp", inn(41101, 22, "A")).verdict, "drop");
    assert.deepEqual(
      lab.events().map((e) => `${eventLine(e)} ${e.reason}`),
      [
        `blocked egress tcp ${H}:41100 -> 198.51.100.7:443 by no-evil (prevent) rejudged`,
        `blocked ingress tcp ${P}:41101 -> ${H}:22 by default (prevent) rejudged`,
      ],
    );
    assert.deepEqual(KernelLab.delta(before, lab.counters(), ["rejudged"]), { rejudged: 2 });
    const e = entry(lab, (x) => x.local.port === 41100);
    assert.equal(e.generation, lab.dp.generation);
    assert.equal(e.verdict, "blocked");

    // and back: the block list is gone, the connection passes again
    lab.policy(POLICY, { keepConntrack: true });
    assert.equal(lab.run("xdp", inn(443, 41100, "A", "198.51.100.7")).verdict, "pass");
    assert.deepEqual(lab.events(), [], "allowed again without log: not reported");
  });

  test("the reload is atomic for a packet: every table of one generation or the other", () => {
    // two policies with opposite verdicts; flips interleaved with packets never mix them
    const a = lab.policy(POLICY);
    const b = lab.policy(
      "version: 1\nmode: prevent\ndefaults: { ingress: allow, egress: block }\n",
    );
    for (let i = 0; i < 6; i++) {
      const image = i % 2 === 0 ? a : b;
      lab.apply(image);
      const inVerdict = lab.run("xdp", inn(42000 + i, 23, "S")).verdict;
      const outVerdict = lab.run("tc", out(443, 42100 + i, "S")).verdict;
      assert.deepEqual([inVerdict, outVerdict], image === a ? ["drop", "pass"] : ["pass", "drop"]);
    }
  });
});

describe("the accept side's entries, at XDP and at tc ingress alike", () => {
  let lab: KernelLab;
  before(() => {
    lab = new KernelLab();
    // the accept hook is attached (attach.cgroup): new ingress entries wait for it
    lab.dp.acceptHooks = true;
    // process rules need the whole kernel image (the socket hooks' tables too)
    const model = parsePolicy(
      `
version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
rules:
  - { name: web, direction: ingress, action: allow, layer4: { protocol: tcp, port: [80] } }
  - { name: app-in, direction: ingress, action: allow, layer4: { protocol: tcp, port: [7001] }, process: { name: [app] } }
`,
      "accept.yaml",
    );
    lab.dp.apply(compilePolicy(model, readProcessUniverse(model, new Attribution())));
    lab.dp.clearConntrack();
  });
  after(() => lab.close());

  for (const hook of ["xdp", "tc-ingress"] as const) {
    test(`${hook}: a syn a process rule may decide passes undecided; one it cannot, awaits its owner`, () => {
      const syn = (dport: number, sport: number): PacketSpec => ({
        src: P,
        dst: H,
        proto: "tcp",
        sport,
        dport,
        flags: "S",
      });
      assert.equal(lab.run(hook, syn(7001, 42600)).verdict, "pass");
      const pending = entry(lab, (x) => x.local.port === 7001 && x.remote.port === 42600);
      assert.equal(pending.flags & (CtFlag.await | CtFlag.pending), CtFlag.await | CtFlag.pending);
      // its retransmission passes undecided again
      assert.equal(lab.run(hook, syn(7001, 42600)).verdict, "pass");
      assert.equal(lab.run(hook, syn(80, 42601)).verdict, "pass");
      const awaiting = entry(lab, (x) => x.local.port === 80 && x.remote.port === 42601);
      assert.equal(awaiting.flags & (CtFlag.await | CtFlag.pending), CtFlag.await);
      lab.dp.clearConntrack();
    });
  }
});

describe("max_duration", () => {
  let lab: KernelLab;
  before(() => {
    lab = new KernelLab();
    lab.policy(`
version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules:
  - name: ssh-8h
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [22], max_duration: 8h }
  - name: out-1h
    direction: egress
    action: allow
    layer4: { protocol: tcp, port: [8443], max_duration: 1h }
`);
  });
  after(() => lab.close());

  /** Puts the connection's deadline in the past. */
  function expire(lport: number): void {
    const e = entry(lab, (x) => x.local.port === lport);
    assert.ok(e.deadlineNs > 0n, "a deadline was set");
    e.value.deadline_ns = 1n;
    writeConntrack(lab.dp.conntrackMap, e);
  }

  for (const [family, peer, host] of [
    ["ipv4", P, H],
    ["ipv6", "2001:db8::9", "fd00::1"],
  ] as const) {
    test(`${family}: a peer's packet past max_duration becomes a payload-less probe (xdp)`, () => {
      const seg = (flags: string, extra: Partial<PacketSpec> = {}): PacketSpec => ({
        src: peer,
        dst: host,
        proto: "tcp",
        sport: 41200,
        dport: 22,
        flags,
        ...extra,
      });
      assert.equal(lab.run("xdp", seg("S")).verdict, "pass");
      const e = entry(lab, (x) => x.local.port === 22 && x.family === (family === "ipv4" ? 4 : 6));
      assert.equal(e.deadlineNs - e.createdNs, 8n * 3600n * 1_000_000_000n);
      assert.equal(
        lab.run("xdp", seg("PA", { seq: 5000, ack: 9000, payload: 10 })).verdict,
        "pass",
      );
      expire(22);
      lab.events();
      const before = lab.counters();
      const r = lab.run("xdp", seg("PA", { seq: 5010, ack: 9000, payload: 100 }));
      // to the local stack: a bare ack left of the window, so the socket answers at once
      // (and the tc program resets both ends), or the stack resets the peer if it is gone
      assert.equal(r.verdict, "pass");
      const probe = r.data;
      const l4 = family === "ipv4" ? 34 : 54;
      assert.equal(probe.length, l4 + 20, "the payload is cut");
      assert.ok(checksumsOk(probe), "probe checksums");
      assert.equal(probe.readUInt16BE(l4), 41200, "same direction");
      assert.equal(probe.readUInt16BE(l4 + 2), 22);
      assert.equal(probe.readUInt32BE(l4 + 4), 5009, "seq - 1");
      assert.equal(probe.readUInt32BE(l4 + 8), 9000, "ack kept");
      assert.equal(probe[l4 + 13], 0x10, "ack only");
      const events = lab.events();
      assert.deepEqual(
        events.map((ev) => `${ev.type} ${ev.reason} ${ev.rule}`),
        ["closed max_duration ssh-8h"],
      );
      assert.deepEqual(KernelLab.delta(before, lab.counters(), ["cut", "reset", "closed"]), {
        cut: 1,
        reset: 1,
        closed: 1,
      });
      assert.equal(lab.run("xdp", seg("A", { seq: 5110, ack: 9000 })).data.length, l4 + 20);
      assert.equal(lab.run("xdp", seg("R", { seq: 5110 })).verdict, "pass", "resets pass");
      assert.deepEqual(lab.events(), [], "reported once");
      // a new syn on the tuple is a new connection
      assert.equal(lab.run("xdp", seg("S", { seq: 1 })).verdict, "pass");
      assert.equal(
        entry(lab, (x) => x.local.port === 22 && x.family === e.family).tcpState,
        "synSent",
      );
      lab.dp.clearConntrack();
    });

    test(`${family}: a peer's packet past max_duration becomes a probe at tc ingress too`, () => {
      const seg = (flags: string, extra: Partial<PacketSpec> = {}): PacketSpec => ({
        src: peer,
        dst: host,
        proto: "tcp",
        sport: 41250,
        dport: 22,
        flags,
        ...extra,
      });
      assert.equal(lab.run("tc-ingress", seg("S")).verdict, "pass");
      assert.equal(
        lab.run("tc-ingress", seg("PA", { seq: 5000, ack: 9000, payload: 10 })).verdict,
        "pass",
      );
      expire(22);
      lab.events();
      const before = lab.counters();
      const r = lab.run("tc-ingress", seg("FPA", { seq: 5010, ack: 9000, payload: 100 }));
      // the payload stays (a GRO packet is not trimmed), moved left of the window with the
      // segment: all old data, discarded; the socket answers the bare ack at once
      assert.equal(r.verdict, "pass");
      const l4 = family === "ipv4" ? 34 : 54;
      assert.equal(r.data.length, l4 + 20 + 100, "the frame keeps its length");
      assert.ok(checksumsOk(r.data), "probe checksums");
      assert.equal(r.data.readUInt16BE(l4), 41250, "same direction");
      assert.equal(r.data.readUInt16BE(l4 + 2), 22);
      assert.equal(r.data.readUInt32BE(l4 + 4), 5010 - 100 - 1, "ends at seq - 1");
      assert.equal(r.data.readUInt32BE(l4 + 8), 9000, "ack kept");
      assert.equal(r.data[l4 + 13], 0x10, "ack only (no fin, no psh)");
      assert.deepEqual(
        lab.events().map((ev) => `${ev.type} ${ev.reason} ${ev.rule}`),
        ["closed max_duration ssh-8h"],
      );
      assert.deepEqual(KernelLab.delta(before, lab.counters(), ["cut", "reset", "closed"]), {
        cut: 1,
        reset: 1,
        closed: 1,
      });
      // a bare ack becomes the same probe as xdp's: seq - 1
      const ack = lab.run("tc-ingress", seg("A", { seq: 5110, ack: 9000 }));
      assert.equal(ack.data.readUInt32BE(l4 + 4), 5109);
      assert.equal(lab.run("tc-ingress", seg("R", { seq: 5110 })).verdict, "pass", "resets pass");
      lab.dp.clearConntrack();
    });

    test(`${family}: this host's packet past max_duration leaves as a reset (tc)`, () => {
      const seg = (flags: string, extra: Partial<PacketSpec> = {}): PacketSpec => ({
        src: host,
        dst: peer,
        proto: "tcp",
        sport: 41300,
        dport: 8443,
        flags,
        ...extra,
      });
      assert.equal(lab.run("tc", seg("S")).verdict, "pass");
      expire(41300);
      const r = lab.run("tc", seg("PA", { seq: 7000, ack: 3000, payload: 20 }));
      assert.equal(r.verdict, "pass", "the packet itself goes out, as a reset");
      const l4 = family === "ipv4" ? 34 : 54;
      assert.ok(checksumsOk(r.data), "reset checksums");
      assert.equal(r.data.readUInt16BE(l4), 41300, "same direction");
      assert.equal(r.data.readUInt32BE(l4 + 4), 7000, "seq in the peer's window");
      assert.equal(r.data[l4 + 13], 0x14, "rst + ack");
      assert.deepEqual(
        lab.events().map((ev) => `${ev.type} ${ev.reason} ${ev.direction}`),
        ["closed max_duration egress"],
      );
      lab.dp.clearConntrack();
    });
  }

  test("packets that cannot be rewritten (ipv4 options) are dropped", () => {
    const seg = (flags: string): PacketSpec => ({
      src: P,
      dst: H,
      proto: "tcp",
      sport: 41400,
      dport: 22,
      flags,
      ipOptions: Buffer.from([1, 1, 1, 0]),
    });
    assert.equal(lab.run("xdp", seg("S")).verdict, "pass");
    expire(22);
    assert.equal(lab.run("xdp", seg("A")).verdict, "drop");
  });
});
