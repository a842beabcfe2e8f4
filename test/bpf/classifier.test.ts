// The kernel classifier through BPF_PROG_TEST_RUN: every rule field, IPv4 and IPv6, both hooks,
// detect and prevent, defaults, and what happens to packets moat cannot or need not judge
// (malformed, fragments, VLAN, non-IP, before the first policy).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { KernelLab } from "../helpers/kernel-lab.ts";
import { runFixture, type Fixture } from "../helpers/fixtures.ts";
import { arpFrame, packet, type PacketSpec } from "../helpers/packets.ts";
import { frag, fragKey } from "../../src/datapath/abi.ts";

const POLICY = `
version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
sets:
  corp: [10.1.0.0/16, "192.168.1.10-192.168.1.20", "fd00:1::/32"]
  web: [80, 443, "8000-8099"]
rules:
  - name: bad-egress
    direction: egress
    action: block
    layer3: { remote: [203.0.113.0/24, "2001:db8:bad::/48"] }
  - name: ssh-corp
    direction: ingress
    action: allow
    log: true
    layer3: { remote: [set:corp, "!10.1.99.0/24"] }
    layer4: { protocol: tcp, port: [22] }
  - name: web
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [set:web] }
  - name: dns-high
    direction: ingress
    action: allow
    layer4: { protocol: udp, port: [53], source_port: ["1024-65535"] }
  - name: ping
    direction: ingress
    action: allow
    layer4: { protocol: icmp, icmp: { type: 8 } }
  - name: ping6
    direction: ingress
    action: allow
    layer4: { protocol: icmpv6, icmp: { type: 128, code: 0 } }
  - name: neighbour
    direction: ingress
    action: allow
    layer4: { protocol: icmpv6, icmp: { type: 135 } }
  - name: to-host5
    direction: ingress
    action: allow
    layer3: { local: [10.0.0.5, "fd00:2::5"] }
    layer4: { protocol: udp, port: [9000] }
  - name: gre
    direction: any
    action: block
    mode: detect
    layer4: { protocol: 47 }
  - name: smtp-out
    direction: egress
    action: block
    mode: detect
    layer4: { protocol: tcp, port: [25] }
  - name: x11-out
    direction: egress
    action: block
    layer4: { port: ["6000-6010"] }
`;

const H = "10.0.0.1";
const H6 = "fd00:2::1";
const tcpIn = (src: string, dport: number, extra: Partial<PacketSpec> = {}): PacketSpec => ({
  src,
  dst: src.includes(":") ? H6 : H,
  proto: "tcp",
  dport,
  ...extra,
});
const tcpOut = (dst: string, dport: number, extra: Partial<PacketSpec> = {}): PacketSpec => ({
  src: dst.includes(":") ? H6 : H,
  dst,
  proto: "tcp",
  dport,
  ...extra,
});

const matching: Fixture[] = [
  {
    description: "tcp from a corp /16 to port 22: allowed, reported (log)",
    hook: "xdp",
    packet: tcpIn("10.1.2.3", 22),
    verdict: "pass",
    event: "allowed ingress tcp 10.1.2.3:40000 -> 10.0.0.1:22 by ssh-corp (prevent)",
    counters: { new: 1, allowed: 1, pass: 1, ctCreated: 1 },
  },
  {
    description: "a negated /24 inside the corp set: falls to the default, blocked",
    hook: "xdp",
    packet: tcpIn("10.1.99.7", 22),
    verdict: "drop",
    event: "blocked ingress tcp 10.1.99.7:40000 -> 10.0.0.1:22 by default (prevent)",
    counters: { new: 1, blocked: 1, drop: 1 },
  },
  {
    description: "inside an a-b range of the set",
    hook: "xdp",
    packet: tcpIn("192.168.1.15", 22),
    verdict: "pass",
    event: "allowed ingress tcp 192.168.1.15:40000 -> 10.0.0.1:22 by ssh-corp (prevent)",
  },
  {
    description: "one past the end of the range",
    hook: "xdp",
    packet: tcpIn("192.168.1.21", 22),
    verdict: "drop",
  },
  {
    description: "ipv6 source in the set's /32",
    hook: "xdp",
    packet: tcpIn("fd00:1::9", 22),
    verdict: "pass",
    event: "allowed ingress tcp [fd00:1::9]:40000 -> [fd00:2::1]:22 by ssh-corp (prevent)",
  },
  {
    description: "ipv6 source outside the set",
    hook: "xdp",
    packet: tcpIn("2001:db8::1", 22),
    verdict: "drop",
    event: "blocked ingress tcp [2001:db8::1]:40000 -> [fd00:2::1]:22 by default (prevent)",
  },
  {
    description: "ipv4-mapped ipv6 addresses are judged as ipv4 (like the evaluator)",
    hook: "xdp",
    packet: { src: "::ffff:a01:203", dst: "::ffff:a00:1", proto: "tcp", dport: 22 },
    verdict: "pass",
  },
  {
    description: "allowed without log: no event",
    hook: "xdp",
    packet: tcpIn("198.51.100.9", 443),
    verdict: "pass",
    event: null,
  },
  {
    description: "a port inside a range of a port set",
    hook: "xdp",
    packet: tcpIn("198.51.100.9", 8050),
    verdict: "pass",
  },
  {
    description: "a port just past the range",
    hook: "xdp",
    packet: tcpIn("198.51.100.9", 8100),
    verdict: "drop",
  },
  {
    description: "the web rule over ipv6",
    hook: "xdp",
    packet: tcpIn("2001:db8::7", 80),
    verdict: "pass",
  },
  {
    description: "udp 53 from a high source port",
    hook: "xdp",
    packet: { src: "198.51.100.9", dst: H, proto: "udp", sport: 5353, dport: 53 },
    verdict: "pass",
  },
  {
    description: "udp 53 from a low source port: outside source_port",
    hook: "xdp",
    packet: { src: "198.51.100.9", dst: H, proto: "udp", sport: 53, dport: 53 },
    verdict: "drop",
    event: "blocked ingress udp 198.51.100.9:53 -> 10.0.0.1:53 by default (prevent)",
  },
  {
    description: "tcp to 53 is not the udp rule",
    hook: "xdp",
    packet: tcpIn("198.51.100.9", 53, { sport: 5353 }),
    verdict: "drop",
  },
  {
    description: "icmp echo request (type 8)",
    hook: "xdp",
    packet: { src: "198.51.100.9", dst: H, proto: "icmp", icmp: { type: 8 } },
    verdict: "pass",
  },
  {
    description: "icmp timestamp request (type 13): not the ping rule",
    hook: "xdp",
    packet: { src: "198.51.100.9", dst: H, proto: "icmp", icmp: { type: 13 } },
    verdict: "drop",
    event: "blocked ingress icmp type 13 code 0 198.51.100.9:0 -> 10.0.0.1:0 by default (prevent)",
  },
  {
    description: "icmp type 8 with any code (the rule names no code)",
    hook: "xdp",
    packet: { src: "198.51.100.9", dst: H, proto: "icmp", icmp: { type: 8, code: 3 } },
    verdict: "pass",
  },
  {
    description: "icmpv6 echo request, code 0",
    hook: "xdp",
    packet: { src: "2001:db8::7", dst: H6, proto: "icmpv6", icmp: { type: 128 } },
    verdict: "pass",
  },
  {
    description: "icmpv6 echo request with code 1: the rule names code 0",
    hook: "xdp",
    packet: { src: "2001:db8::7", dst: H6, proto: "icmpv6", icmp: { type: 128, code: 1 } },
    verdict: "drop",
  },
  {
    description: "icmpv6 neighbour solicitation",
    hook: "xdp",
    packet: { src: "fe80::1", dst: "ff02::1:ff00:1", proto: "icmpv6", icmp: { type: 135 } },
    verdict: "pass",
  },
  {
    description: "icmp (v4 protocol number) is not icmpv6",
    hook: "xdp",
    packet: { src: "198.51.100.9", dst: H, proto: "icmp", icmp: { type: 128 } },
    verdict: "drop",
  },
  {
    description: "local address constraint: to 10.0.0.5",
    hook: "xdp",
    packet: { src: "198.51.100.9", dst: "10.0.0.5", proto: "udp", dport: 9000 },
    verdict: "pass",
  },
  {
    description: "local address constraint: to another local address",
    hook: "xdp",
    packet: { src: "198.51.100.9", dst: "10.0.0.6", proto: "udp", dport: 9000 },
    verdict: "drop",
  },
  {
    description: "local address constraint over ipv6",
    hook: "xdp",
    packet: { src: "2001:db8::7", dst: "fd00:2::5", proto: "udp", dport: 9000 },
    verdict: "pass",
  },
  {
    description: "another protocol (gre, 47), block rule in detect mode: passes, detected",
    hook: "xdp",
    packet: { src: "198.51.100.9", dst: H, proto: 47, payload: 8 },
    verdict: "pass",
    event: "detected ingress 47 198.51.100.9:0 -> 10.0.0.1:0 by gre (detect)",
    counters: { detected: 1, pass: 1, drop: 0 },
  },
  {
    description: "gre outbound: direction any",
    hook: "tc",
    packet: { src: H, dst: "198.51.100.9", proto: 47, payload: 8 },
    verdict: "pass",
    event: "detected egress 47 10.0.0.1:0 -> 198.51.100.9:0 by gre (detect)",
  },
  {
    description: "another protocol no rule names (esp, 50): ingress default",
    hook: "xdp",
    packet: { src: "198.51.100.9", dst: H, proto: 50, payload: 8 },
    verdict: "drop",
  },
  {
    description: "egress to a blocked /24: dropped at tc",
    hook: "tc",
    packet: tcpOut("203.0.113.5", 443),
    verdict: "drop",
    event: "blocked egress tcp 10.0.0.1:40000 -> 203.0.113.5:443 by bad-egress (prevent)",
    counters: { new: 1, blocked: 1, drop: 1 },
  },
  {
    description: "egress to a blocked ipv6 /48",
    hook: "tc",
    packet: tcpOut("2001:db8:bad::1", 443),
    verdict: "drop",
  },
  {
    description: "egress remote-only rule does not apply to ingress",
    hook: "xdp",
    packet: tcpIn("203.0.113.5", 443),
    verdict: "pass",
  },
  {
    description: "egress smtp: block rule in detect mode",
    hook: "tc",
    packet: tcpOut("198.51.100.1", 25),
    verdict: "pass",
    event: "detected egress tcp 10.0.0.1:40000 -> 198.51.100.1:25 by smtp-out (detect)",
  },
  {
    description: "ingress smtp: the egress rule does not apply, ingress default blocks",
    hook: "xdp",
    packet: tcpIn("198.51.100.1", 25),
    verdict: "drop",
  },
  {
    description: "egress to anything else: default allow, not reported",
    hook: "tc",
    packet: tcpOut("198.51.100.1", 443),
    verdict: "pass",
    event: null,
  },
  {
    description: "ports with protocol any: udp in the range",
    hook: "tc",
    packet: { src: H, dst: "198.51.100.1", proto: "udp", dport: 6005 },
    verdict: "drop",
  },
  {
    description: "ports with protocol any: tcp in the range",
    hook: "tc",
    packet: tcpOut("198.51.100.1", 6010),
    verdict: "drop",
  },
  {
    description: "ports with protocol any: icmp has no ports, the rule does not apply",
    hook: "tc",
    packet: { src: H, dst: "198.51.100.1", proto: "icmp", icmp: { type: 8 } },
    verdict: "pass",
  },
  {
    description: "egress ipv6 icmpv6: default allow",
    hook: "tc",
    packet: { src: H6, dst: "2001:db8::7", proto: "icmpv6", icmp: { type: 128 } },
    verdict: "pass",
  },
];

const malformed: Fixture[] = [
  {
    description: "ipv4 header cut short",
    hook: "xdp",
    packet: packet(tcpIn("10.1.2.3", 22)).subarray(0, 14 + 12),
    verdict: "drop",
    event: null,
    counters: { malformed: 1, drop: 1, new: 0 },
  },
  {
    description: "ipv4 IHL < 5",
    hook: "xdp",
    packet: (() => {
      const f = packet(tcpIn("10.1.2.3", 22));
      f[14] = 0x44;
      return f;
    })(),
    verdict: "drop",
    counters: { malformed: 1 },
  },
  {
    description: "ipv4 IHL beyond the frame",
    hook: "xdp",
    packet: (() => {
      const f = packet({ ...tcpIn("10.1.2.3", 22), proto: 47 });
      f[14] = 0x4f;
      return f;
    })(),
    verdict: "drop",
    counters: { malformed: 1 },
  },
  {
    description: "ethertype ipv4, version 6",
    hook: "xdp",
    packet: (() => {
      const f = packet(tcpIn("10.1.2.3", 22));
      f[14] = 0x65;
      return f;
    })(),
    verdict: "drop",
    counters: { malformed: 1 },
  },
  {
    description: "ipv4 total length shorter than its header",
    hook: "xdp",
    packet: (() => {
      const f = packet(tcpIn("10.1.2.3", 22));
      f.writeUInt16BE(12, 16);
      return f;
    })(),
    verdict: "drop",
    counters: { malformed: 1 },
  },
  {
    description: "tcp header cut short",
    hook: "xdp",
    packet: packet(tcpIn("10.1.2.3", 22)).subarray(0, 14 + 20 + 12),
    verdict: "drop",
    counters: { malformed: 1 },
  },
  {
    description: "tcp data offset < 5",
    hook: "xdp",
    packet: (() => {
      const f = packet(tcpIn("10.1.2.3", 22));
      f[14 + 20 + 12] = 0x40;
      return f;
    })(),
    verdict: "drop",
    counters: { malformed: 1 },
  },
  {
    description: "tcp data offset beyond the frame",
    hook: "tc",
    packet: (() => {
      const f = packet(tcpOut("198.51.100.1", 443));
      f[14 + 20 + 12] = 0xf0;
      return f;
    })(),
    verdict: "drop",
    counters: { malformed: 1 },
  },
  {
    description: "udp header cut short (egress)",
    hook: "tc",
    packet: packet({ src: H, dst: "198.51.100.1", proto: "udp" }).subarray(0, 14 + 20 + 4),
    verdict: "drop",
    counters: { malformed: 1 },
  },
  {
    description: "icmp header cut short",
    hook: "xdp",
    packet: packet({ src: "198.51.100.9", dst: H, proto: "icmp" }).subarray(0, 14 + 20 + 4),
    verdict: "drop",
  },
  {
    description: "ipv6 header cut short",
    hook: "xdp",
    packet: packet(tcpIn("fd00:1::9", 22)).subarray(0, 14 + 30),
    verdict: "drop",
    counters: { malformed: 1 },
  },
  {
    description: "ethertype ipv6, version 4",
    hook: "xdp",
    packet: (() => {
      const f = packet(tcpIn("fd00:1::9", 22));
      f[14] = 0x45;
      return f;
    })(),
    verdict: "drop",
    counters: { malformed: 1 },
  },
  {
    description: "ipv6 extension chain (hop-by-hop, routing, destination options) to tcp 22",
    hook: "xdp",
    packet: tcpIn("fd00:1::9", 22, { ext: [{ type: 0 }, { type: 43, length: 24 }, { type: 60 }] }),
    verdict: "pass",
    event: "allowed ingress tcp [fd00:1::9]:40000 -> [fd00:2::1]:22 by ssh-corp (prevent)",
  },
  {
    description: "ipv6 extension chain with an authentication header to a blocked port",
    hook: "xdp",
    packet: tcpIn("fd00:1::9", 23, { ext: [{ type: 0 }, { type: 51, length: 24 }] }),
    verdict: "drop",
    event: "blocked ingress tcp [fd00:1::9]:40000 -> [fd00:2::1]:23 by default (prevent)",
  },
  {
    description: "six extension headers",
    hook: "xdp",
    packet: tcpIn("fd00:1::9", 22, {
      ext: Array.from({ length: 6 }, () => ({ type: 60 as const })),
    }),
    verdict: "pass",
  },
  {
    description: "thirty extension headers: walked as the kernel walks them",
    hook: "xdp",
    packet: tcpIn("fd00:1::9", 22, {
      ext: Array.from({ length: 30 }, () => ({ type: 60 as const })),
    }),
    verdict: "pass",
    counters: { malformed: 0, new: 1 },
  },
  {
    description: "extension header longer than the frame",
    hook: "xdp",
    packet: (() => {
      const f = packet(tcpIn("fd00:1::9", 22, { ext: [{ type: 60 }] }));
      f[14 + 40 + 1] = 200;
      return f;
    })(),
    verdict: "drop",
    counters: { malformed: 1 },
  },
  {
    description: "one vlan tag",
    hook: "xdp",
    packet: tcpIn("198.51.100.9", 443, { vlans: [100] }),
    verdict: "pass",
  },
  {
    description: "two vlan tags (q-in-q), blocked port",
    hook: "xdp",
    packet: tcpIn("198.51.100.9", 23, { vlans: [100, 200] }),
    verdict: "drop",
    event: "blocked ingress tcp 198.51.100.9:40000 -> 10.0.0.1:23 by default (prevent)",
  },
  {
    description: "two vlan tags, ipv6, allowed",
    hook: "xdp",
    packet: tcpIn("fd00:1::9", 22, { vlans: [100, 200] }),
    verdict: "pass",
  },
  {
    description: "three vlan tags: malformed",
    hook: "xdp",
    packet: tcpIn("198.51.100.9", 443, { vlans: [1, 2, 3] }),
    verdict: "drop",
    counters: { malformed: 1 },
  },
  {
    description: "vlan tag cut short",
    hook: "xdp",
    packet: packet(tcpIn("198.51.100.9", 443, { vlans: [100] })).subarray(0, 16),
    verdict: "drop",
    counters: { malformed: 1 },
  },
  {
    description: "ethertype ipv4 and nothing after the ethernet header",
    hook: "xdp",
    packet: packet(tcpIn("10.1.2.3", 22)).subarray(0, 14),
    verdict: "drop",
    counters: { malformed: 1 },
  },
  {
    description: "arp passes, counted as non-ip",
    hook: "xdp",
    packet: arpFrame(),
    verdict: "pass",
    event: null,
    counters: { nonIp: 1, pass: 1, new: 0 },
  },
  {
    description: "arp on egress",
    hook: "tc",
    packet: arpFrame(),
    verdict: "pass",
    counters: { nonIp: 1 },
  },
];

describe("classifier", () => {
  let lab: KernelLab;
  before(() => {
    lab = new KernelLab();
    lab.policy(POLICY);
  });
  after(() => lab.close());

  describe("rule fields", () => {
    for (const f of matching) test(f.description, () => runFixture(lab, f));
  });

  // attach.interfaces entries with `ingress: tc`: the same verdicts, events and counters
  describe("rule fields at tc ingress (judged as XDP judges them)", () => {
    for (const f of matching.filter((f) => f.hook === "xdp"))
      test(f.description, () => runFixture(lab, { ...f, hook: "tc-ingress" }));
  });

  describe("malformed and unusual frames (prevent)", () => {
    for (const f of malformed) test(f.description, () => runFixture(lab, f));
  });

  describe("malformed and unusual frames at tc ingress (judged as XDP judges them)", () => {
    // frames cut inside the ip header: a test run of an skb program refuses them (EINVAL)
    const cut = /header cut short|nothing after the ethernet header/;
    for (const f of malformed.filter((x) => x.hook === "xdp" && !cut.test(x.description)))
      test(f.description, () => runFixture(lab, { ...f, hook: "tc-ingress" }));
  });

  describe("fragments", () => {
    const first = (src: string, dport: number, id: number): PacketSpec =>
      tcpIn(src, dport, { frag: { offset: 0, more: true, id }, payload: 16 });
    const later = (src: string, id: number, offset = 3): PacketSpec => ({
      src,
      dst: src.includes(":") ? H6 : H,
      proto: "tcp",
      frag: { offset, more: false, id },
      payload: 24,
    });

    // tc ingress sees fragments as XDP does: before the stack reassembles them
    for (const [family, src, denied, hook] of [
      ["ipv4", "10.1.2.3", "10.1.99.7", "xdp"],
      ["ipv6", "fd00:1::9", "2001:db8::1", "xdp"],
      ["ipv4", "10.1.2.3", "10.1.99.7", "tc-ingress"],
      ["ipv6", "fd00:1::9", "2001:db8::1", "tc-ingress"],
    ] as const) {
      test(`${family} at ${hook}: later fragments follow an allowed first fragment`, () => {
        lab.dp.clearConntrack();
        assert.equal(lab.run(hook, first(src, 22, 7001)).verdict, "pass");
        const before = lab.counters();
        assert.equal(lab.run(hook, later(src, 7001)).verdict, "pass");
        assert.equal(lab.run(hook, later(src, 7001, 6)).verdict, "pass");
        assert.deepEqual(KernelLab.delta(before, lab.counters(), ["fragment", "new"]), {
          fragment: 2,
          new: 0,
        });
      });

      test(`${family} at ${hook}: later fragments of a blocked first fragment are dropped`, () => {
        lab.dp.clearConntrack();
        assert.equal(lab.run(hook, first(denied, 22, 7002)).verdict, "drop");
        assert.equal(lab.run(hook, later(denied, 7002)).verdict, "drop");
      });

      test(`${family} at ${hook}: an allowed datagram's id does not open another source's fragments`, () => {
        assert.equal(lab.run(hook, first(src, 22, 7003)).verdict, "pass");
        const f = lab.run(hook, later(denied, 7003));
        assert.equal(f.verdict, "drop", "judged as an orphan: ports 0, ingress default");
      });

      test(`${family} at ${hook}: an orphan fragment is judged with ports 0 and not reported`, () => {
        lab.events();
        const before = lab.counters();
        assert.equal(lab.run(hook, later(src, 7999)).verdict, "drop");
        const out = {
          src: src.includes(":") ? H6 : H,
          dst: src,
          proto: "udp" as const,
          frag: { offset: 5, more: false, id: 7998 },
          payload: 16,
        };
        assert.equal(lab.run("tc", out).verdict, "pass", "egress default allows");
        assert.deepEqual(lab.events(), []);
        assert.deepEqual(KernelLab.delta(before, lab.counters(), ["fragmentOrphan"]), {
          fragmentOrphan: 2,
        });
      });
    }
  });
});

describe("fragment records", () => {
  const portBlocked = (mode: "prevent" | "detect") => `
version: 1
mode: ${mode}
defaults: { ingress: allow, egress: allow }
rules:
  - name: no-9999
    direction: ingress
    action: block
    layer4: { protocol: udp, port: [9999] }
`;
  const DNS_ONLY = `
version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules:
  - name: dns
    direction: ingress
    action: allow
    layer4: { protocol: udp, port: [53] }
`;
  const CLOSED = `
version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules: []
`;
  const first = (src: string, dport: number, id: number): PacketSpec => ({
    src,
    dst: src.includes(":") ? H6 : H,
    proto: "udp",
    sport: 40000,
    dport,
    frag: { offset: 0, more: true, id },
    payload: 16,
  });
  const last = (src: string, id: number): PacketSpec => ({
    src,
    dst: src.includes(":") ? H6 : H,
    proto: "udp",
    frag: { offset: 3, more: false, id },
    payload: 24,
  });

  let lab: KernelLab;
  before(() => {
    lab = new KernelLab();
  });
  after(() => lab.close());

  /** Makes the records of datagrams with id `id` as old as `seconds` on the kernel's clock. */
  function ageRecords(id: number, seconds: number): void {
    const map = lab.dp.object.map("frags");
    try {
      let aged = 0;
      for (let k = map.nextKey(null); k; k = map.nextKey(k)) {
        if (fragKey.decode(k).id !== id) continue;
        const record = frag.decode(map.lookup(k)!);
        const ts_ns = lab.dp.monotonicNs() - BigInt(seconds) * 1_000_000_000n;
        map.update(k, frag.encode({ ...record, ts_ns }));
        aged++;
      }
      assert.ok(aged > 0, `no record of a datagram with id ${id}`);
    } finally {
      map.close();
    }
  }

  for (const [family, src] of [
    ["ipv4", "192.0.2.7"],
    ["ipv6", "2001:db8::7"],
  ] as const) {
    test(`${family}: a dropped first fragment leaves no record: a datagram reusing its id is judged alone`, () => {
      lab.policy(portBlocked("prevent"));
      assert.equal(lab.run("xdp", first(src, 9999, 501)).verdict, "drop");
      // the next datagram of that source with id 501, to an allowed port: its last fragment first
      const before = lab.counters();
      assert.equal(lab.run("xdp", last(src, 501)).verdict, "pass");
      assert.deepEqual(KernelLab.delta(before, lab.counters(), ["fragment", "fragmentOrphan"]), {
        fragment: 0,
        fragmentOrphan: 1,
      });
    });

    test(`${family}: a first fragment's record is followed for 60 s, then no more`, () => {
      lab.policy(DNS_ONLY);
      assert.equal(lab.run("xdp", first(src, 53, 502)).verdict, "pass");
      ageRecords(502, 59);
      assert.equal(lab.run("xdp", last(src, 502)).verdict, "pass", "59 s old: followed");
      ageRecords(502, 61);
      const before = lab.counters();
      const r = lab.run("xdp", last(src, 502));
      assert.equal(
        r.verdict,
        "drop",
        "61 s old: judged alone (ports 0, ingress blocked by default)",
      );
      assert.deepEqual(KernelLab.delta(before, lab.counters(), ["fragment", "fragmentOrphan"]), {
        fragment: 0,
        fragmentOrphan: 1,
      });
    });

    test(`${family}: after a reload to detect mode, a datagram whose first fragment was dropped is not dropped`, () => {
      lab.policy(portBlocked("prevent"));
      assert.equal(lab.run("xdp", first(src, 9999, 503)).verdict, "drop");
      lab.policy(portBlocked("detect"));
      assert.equal(lab.run("xdp", last(src, 503)).verdict, "pass");
    });

    test(`${family}: after a reload, the previous policy's record is not followed: the new policy judges`, () => {
      lab.policy(DNS_ONLY);
      assert.equal(lab.run("xdp", first(src, 53, 504)).verdict, "pass");
      lab.policy(CLOSED);
      const before = lab.counters();
      assert.equal(lab.run("xdp", last(src, 504)).verdict, "drop");
      assert.deepEqual(KernelLab.delta(before, lab.counters(), ["fragment", "fragmentOrphan"]), {
        fragment: 0,
        fragmentOrphan: 1,
      });
    });

    test(`${family}: a flood of dropped first fragments does not evict an allowed datagram's record`, () => {
      lab.policy(DNS_ONLY);
      assert.equal(lab.run("xdp", first(src, 53, 505)).verdict, "pass");
      for (let i = 0; i < 5000; i++) {
        const spoofed =
          family === "ipv6" ? `2001:db8::1:${(i + 1).toString(16)}` : `198.51.${i >> 8}.${i & 255}`;
        assert.equal(lab.run("xdp", first(spoofed, 9999, 1)).verdict, "drop");
      }
      assert.equal(lab.run("xdp", last(src, 505)).verdict, "pass");
    });

    test(`${family}: a basic-networking datagram's first fragment is recorded: its later ones pass`, () => {
      lab.policy(CLOSED);
      // DHCP's answer (67 -> 68), DHCPv6's (547 -> 546): let in by the basics, not by a rule
      const [sport, dport] = family === "ipv6" ? [547, 546] : [67, 68];
      const src6 = family === "ipv6" ? "fe80::1" : src;
      assert.equal(lab.run("xdp", { ...first(src6, dport, 506), sport }).verdict, "pass");
      assert.equal(lab.run("xdp", last(src6, 506)).verdict, "pass");
    });
  }
});

describe("defaults and detect mode", () => {
  let lab: KernelLab;
  before(() => {
    lab = new KernelLab();
  });
  after(() => lab.close());

  test("before the first policy every packet passes, counted as noPolicy", () => {
    const before = lab.counters();
    assert.equal(lab.run("xdp", tcpIn("198.51.100.9", 23)).verdict, "pass");
    assert.equal(lab.run("xdp", packet(tcpIn("10.1.2.3", 22)).subarray(0, 20)).verdict, "pass");
    assert.equal(lab.run("tc", tcpOut("203.0.113.5", 25)).verdict, "pass");
    assert.deepEqual(lab.events(), []);
    const d = KernelLab.delta(before, lab.counters(), ["noPolicy", "malformed", "new"]);
    assert.deepEqual(d, { noPolicy: 2, malformed: 1, new: 0 });
    assert.equal(lab.dp.generation, 0);
  });

  test("defaults: block both ways in prevent", () => {
    lab.policy("version: 1\nmode: prevent\ndefaults: { ingress: block, egress: block }\n");
    runFixture(lab, {
      description: "ingress default",
      hook: "xdp",
      packet: tcpIn("198.51.100.9", 443),
      verdict: "drop",
      event: "blocked ingress tcp 198.51.100.9:40000 -> 10.0.0.1:443 by default (prevent)",
    });
    runFixture(lab, {
      description: "egress default",
      hook: "tc",
      packet: { src: H6, dst: "2001:db8::7", proto: "udp", dport: 53 },
      verdict: "drop",
      event: "blocked egress udp [fd00:2::1]:40000 -> [2001:db8::7]:53 by default (prevent)",
    });
  });

  test("detect mode: nothing is dropped but by a rule in prevent; blocks are detected", () => {
    lab.policy(`
version: 1
mode: detect
defaults: { ingress: block, egress: block }
rules:
  - name: no-telnet
    direction: ingress
    action: block
    layer4: { protocol: tcp, port: [23] }
  - name: always
    direction: ingress
    action: block
    mode: prevent
    layer4: { protocol: tcp, port: [24] }
`);
    const fixtures: Fixture[] = [
      {
        description: "block rule, detect mode",
        hook: "xdp",
        packet: tcpIn("198.51.100.9", 23),
        verdict: "pass",
        event: "detected ingress tcp 198.51.100.9:40000 -> 10.0.0.1:23 by no-telnet (detect)",
        counters: { detected: 1, drop: 0 },
      },
      {
        description: "ingress default block, detect mode",
        hook: "xdp",
        packet: tcpIn("198.51.100.9", 443),
        verdict: "pass",
        event: "detected ingress tcp 198.51.100.9:40000 -> 10.0.0.1:443 by default (detect)",
      },
      {
        description: "egress default block, detect mode",
        hook: "tc",
        packet: tcpOut("198.51.100.9", 443),
        verdict: "pass",
        event: "detected egress tcp 10.0.0.1:40000 -> 198.51.100.9:443 by default (detect)",
      },
      {
        description: "a rule's own prevent mode overrides the policy's",
        hook: "xdp",
        packet: tcpIn("198.51.100.9", 24),
        verdict: "drop",
        event: "blocked ingress tcp 198.51.100.9:40000 -> 10.0.0.1:24 by always (prevent)",
      },
      {
        description: "a malformed frame is dropped where a prevent rule could block it (counted)",
        hook: "xdp",
        packet: packet(tcpIn("198.51.100.9", 24)).subarray(0, 30),
        verdict: "drop",
        counters: { malformed: 1 },
      },
      {
        description: "one leaving passes: no prevent rule blocks egress",
        hook: "tc",
        packet: packet(tcpOut("198.51.100.9", 24)).subarray(0, 14 + 20 + 12),
        verdict: "pass",
        counters: { malformed: 1 },
      },
      {
        description: "later packets of a detected connection pass",
        hook: "xdp",
        packet: tcpIn("198.51.100.9", 23, { flags: "A" }),
        verdict: "pass",
      },
    ];
    for (const f of fixtures) runFixture(lab, f);
  });
});
