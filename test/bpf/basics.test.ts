// Basic networking through BPF_PROG_TEST_RUN: neighbour and router discovery (with hop limit
// 255), MLD, IGMP and DHCP client traffic pass unjudged at both packet hooks under a policy that
// blocks everything, unless a rule names them; then they are judged like any packet.
import { after, before, describe, test } from "node:test";
import { KernelLab } from "../helpers/kernel-lab.ts";
import { runFixture, type Fixture } from "../helpers/fixtures.ts";
import type { PacketSpec } from "../helpers/packets.ts";

const BLOCK_ALL = `
version: 1
mode: prevent
defaults: { ingress: block, egress: block }
rules:
  - name: ssh6
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [22] }
`;

const H6 = "fe80::1";
const PEER6 = "fe80::2";
const icmp6 = (src: string, dst: string, type: number, ttl = 255): PacketSpec => ({
  src,
  dst,
  proto: "icmpv6",
  icmp: { type },
  ttl,
});
const udp = (src: string, dst: string, sport: number, dport: number): PacketSpec => ({
  src,
  dst,
  proto: "udp",
  sport,
  dport,
});
const unjudged = { basics: 1, new: 0 };

const passing: Fixture[] = [
  ...[133, 134, 135, 136, 137].flatMap((type): Fixture[] => [
    {
      description: `icmpv6 type ${type} with hop limit 255 in`,
      hook: "xdp",
      packet: icmp6(PEER6, H6, type),
      verdict: "pass",
      event: null,
      counters: unjudged,
    },
    {
      description: `icmpv6 type ${type} with hop limit 255 out`,
      hook: "tc",
      packet: icmp6(H6, PEER6, type),
      verdict: "pass",
      event: null,
      counters: unjudged,
    },
  ]),
  {
    description: "duplicate address detection: a solicitation from ::",
    hook: "tc",
    packet: icmp6("::", "ff02::1:ff00:1", 135),
    verdict: "pass",
    counters: unjudged,
  },
  ...[130, 131, 132, 143].map((type): Fixture => ({
    description: `MLD type ${type} (hop limit 1)`,
    hook: type === 130 ? "xdp" : "tc",
    packet: type === 130 ? icmp6(PEER6, "ff02::1", type, 1) : icmp6(H6, "ff02::16", type, 1),
    verdict: "pass",
    event: null,
    counters: unjudged,
  })),
  {
    description: "IGMP membership report out",
    hook: "tc",
    packet: { src: "10.0.0.1", dst: "224.0.0.22", proto: 2, payload: 8, ttl: 1 },
    verdict: "pass",
    counters: unjudged,
  },
  {
    description: "DHCPv4 discover out (68 -> 67)",
    hook: "tc",
    packet: udp("0.0.0.0", "255.255.255.255", 68, 67),
    verdict: "pass",
    event: null,
    counters: unjudged,
  },
  {
    description: "DHCPv4 offer in (67 -> 68)",
    hook: "xdp",
    packet: udp("10.0.0.254", "10.0.0.9", 67, 68),
    verdict: "pass",
    counters: unjudged,
  },
  {
    description: "DHCPv6 solicit out (546 -> 547)",
    hook: "tc",
    packet: udp(H6, "ff02::1:2", 546, 547),
    verdict: "pass",
    counters: unjudged,
  },
  {
    description: "DHCPv6 advertise in (547 -> 546)",
    hook: "xdp",
    packet: udp(PEER6, H6, 547, 546),
    verdict: "pass",
    counters: unjudged,
  },
];

const judged: Fixture[] = [
  {
    description: "a neighbour solicitation with hop limit 64 is judged (it crossed a router)",
    hook: "xdp",
    packet: icmp6(PEER6, H6, 135, 64),
    verdict: "drop",
    event: "blocked ingress icmpv6 type 135 code 0 [fe80::2]:0 -> [fe80::1]:0 by default (prevent)",
  },
  {
    description: "a router advertisement with hop limit 254 is judged",
    hook: "xdp",
    packet: icmp6(PEER6, H6, 134, 254),
    verdict: "drop",
  },
  {
    description: "a DHCP server's traffic is not a client's (67 in, 68 out)",
    hook: "xdp",
    packet: udp("10.0.0.9", "10.0.0.1", 68, 67),
    verdict: "drop",
  },
  {
    description: "DHCPv4 ports on IPv6 are judged",
    hook: "tc",
    packet: udp(H6, PEER6, 68, 67),
    verdict: "drop",
  },
  {
    description: "echo requests are judged",
    hook: "xdp",
    packet: icmp6(PEER6, H6, 128),
    verdict: "drop",
  },
];

describe("basic networking under a block-everything policy", () => {
  let lab: KernelLab;
  before(() => {
    lab = new KernelLab();
    lab.policy(BLOCK_ALL);
  });
  after(() => lab.close());

  describe("passes unjudged", () => {
    for (const f of passing) test(f.description, () => runFixture(lab, f));
  });
  describe("the rest is judged", () => {
    for (const f of judged) test(f.description, () => runFixture(lab, f));
  });
});

describe("a rule that names basic traffic makes it judged", () => {
  let lab: KernelLab;
  before(() => {
    lab = new KernelLab();
    lab.policy(`
version: 1
mode: prevent
defaults: { ingress: block, egress: block }
rules:
  - name: ns-from-router
    direction: ingress
    action: allow
    layer3: { remote: [fe80::fe] }
    layer4: { protocol: icmpv6, icmp: { type: 135 } }
  - name: no-dhcp6
    direction: egress
    action: block
    layer4: { protocol: udp, port: [547] }
  - name: any-udp
    direction: egress
    action: block
    layer4: { protocol: udp }
  - name: anything
    direction: any
    action: block
    layer4: { protocol: any, port: ["1-1000"] }
`);
  });
  after(() => lab.close());

  const fixtures: Fixture[] = [
    {
      description: "a solicitation from another neighbour: named (type 135), judged, blocked",
      hook: "xdp",
      packet: icmp6(PEER6, H6, 135),
      verdict: "drop",
      event:
        "blocked ingress icmpv6 type 135 code 0 [fe80::2]:0 -> [fe80::1]:0 by default (prevent)",
    },
    {
      description: "a solicitation from the named neighbour: allowed by its rule",
      hook: "xdp",
      packet: icmp6("fe80::fe", H6, 135),
      verdict: "pass",
      counters: { new: 1, basics: 0 },
    },
    {
      description: "an advertisement: no rule names type 136, unjudged",
      hook: "xdp",
      packet: icmp6(PEER6, H6, 136),
      verdict: "pass",
      counters: unjudged,
    },
    {
      description: "DHCPv6 named by port 547: judged, blocked",
      hook: "tc",
      packet: udp(H6, "ff02::1:2", 546, 547),
      verdict: "drop",
      event: "blocked egress udp [fe80::1]:546 -> [ff02::1:2]:547 by no-dhcp6 (prevent)",
    },
    {
      description: "DHCPv4: a rule for all udp, or a port range, does not name it",
      hook: "tc",
      packet: udp("0.0.0.0", "255.255.255.255", 68, 67),
      verdict: "pass",
      counters: unjudged,
    },
  ];
  for (const f of fixtures) test(f.description, () => runFixture(lab, f));
});
