// Basic networking (docs/datapath.md): what a host needs to stay on its network passes every hook
// unjudged, in both directions, like ARP, so that a policy blocking by default never cuts the host
// off its link. A class that a rule names explicitly is judged like any other traffic. The kernel's
// copy is bpf/include/basics.h; the bit of each class is enum moat_basics there.

import { PROTOCOL_NUMBERS, type PolicyModel, type PortRange, type Rule } from "../config/model.ts";

export interface BasicsClass {
  /** Bit in the kernel's meta.basics_judged (enum moat_basics). */
  bit: number;
  /** In words, for explanations. */
  name: string;
  family: 4 | 6;
  protocol: number;
  /** ICMPv6 classes: the message type. */
  icmpType?: number;
  /** Only with this hop limit (neighbour and router discovery: 255, which no router forwards). */
  hopLimit?: number;
  /** UDP classes: the client's port on this host and the server's on the peer. */
  localPort?: number;
  remotePort?: number;
}

const ICMPV6 = PROTOCOL_NUMBERS.icmpv6;
const UDP = PROTOCOL_NUMBERS.udp;
const IGMP = 2;

const icmpv6 = (type: number, name: string, hopLimit?: number): BasicsClass => ({
  bit: type === 143 ? 8 : type - 130,
  name: `${name} (icmpv6 type ${type})`,
  family: 6,
  protocol: ICMPV6,
  icmpType: type,
  ...(hopLimit === undefined ? {} : { hopLimit }),
});

/** Every class, by bit. */
export const BASICS: readonly BasicsClass[] = [
  icmpv6(130, "MLD query"),
  icmpv6(131, "MLD report"),
  icmpv6(132, "MLD done"),
  icmpv6(133, "router solicitation", 255),
  icmpv6(134, "router advertisement", 255),
  icmpv6(135, "neighbour solicitation", 255),
  icmpv6(136, "neighbour advertisement", 255),
  icmpv6(137, "redirect", 255),
  icmpv6(143, "MLDv2 report"),
  { bit: 9, name: "DHCPv4 client", family: 4, protocol: UDP, localPort: 68, remotePort: 67 },
  { bit: 10, name: "DHCPv6 client", family: 6, protocol: UDP, localPort: 546, remotePort: 547 },
  { bit: 11, name: "IGMP", family: 4, protocol: IGMP },
];

/** What decides whether traffic is basic networking. */
export interface BasicsFacts {
  family: 4 | 6;
  protocol: number;
  localPort?: number | undefined;
  remotePort?: number | undefined;
  icmpType?: number | undefined;
  /** IPv6 hop limit or IPv4 TTL; unknown = not 255. */
  hopLimit?: number | undefined;
}

/** The basic-networking class of traffic with these facts, if any. */
export function basicsClassOf(f: BasicsFacts): BasicsClass | undefined {
  return BASICS.find(
    (c) =>
      c.family === f.family &&
      c.protocol === f.protocol &&
      (c.icmpType === undefined || c.icmpType === f.icmpType) &&
      (c.hopLimit === undefined || c.hopLimit === f.hopLimit) &&
      (c.localPort === undefined || c.localPort === f.localPort) &&
      (c.remotePort === undefined || c.remotePort === f.remotePort),
  );
}

/** A port list names a class when one of its entries lies within the class's two ports. */
function namesPorts(ranges: PortRange[] | undefined, c: BasicsClass): boolean {
  if (c.localPort === undefined || c.remotePort === undefined) return false;
  const lo = Math.min(c.localPort, c.remotePort);
  const hi = Math.max(c.localPort, c.remotePort);
  return (ranges ?? []).some((r) => r.lo >= lo && r.hi <= hi);
}

/**
 * Whether a rule names a class explicitly: its protocol (never `any`) and, for ICMPv6, its type;
 * for UDP, one of its ports (server or source, a single port or a range within the two).
 */
export function ruleNamesBasics(rule: Rule, c: BasicsClass): boolean {
  const l4 = rule.layer4;
  if (!l4 || l4.protocol !== c.protocol) return false;
  if (c.icmpType !== undefined) return l4.icmp?.type === c.icmpType;
  if (c.localPort !== undefined) return namesPorts(l4.ports, c) || namesPorts(l4.sourcePorts, c);
  return true;
}

/** The classes by protocol: a policy's rules are read once, each against its protocol's classes. */
const BASICS_BY_PROTOCOL = new Map<number, BasicsClass[]>();
for (const c of BASICS)
  BASICS_BY_PROTOCOL.set(c.protocol, [...(BASICS_BY_PROTOCOL.get(c.protocol) ?? []), c]);

/** The classes some rule names (bit per class): the compiler writes them for the kernel. */
export function judgedBasics(policy: PolicyModel): number {
  let bits = 0;
  for (const r of policy.rules) {
    const classes =
      r.layer4?.protocol == null ? undefined : BASICS_BY_PROTOCOL.get(r.layer4.protocol);
    for (const c of classes ?? []) if (ruleNamesBasics(r, c)) bits |= 1 << c.bit;
  }
  return bits;
}

/** judgedBasics of each rule list the evaluator has asked about (a walk of every rule), and its length. */
const judgedOf = new WeakMap<readonly Rule[], { length: number; bits: number }>();

/** The class of unjudged basic networking these facts belong to under `policy`, if any. */
export function unjudgedBasics(policy: PolicyModel, f: BasicsFacts): BasicsClass | undefined {
  const c = basicsClassOf(f);
  if (!c) return undefined;
  let judged = judgedOf.get(policy.rules);
  if (judged?.length !== policy.rules.length) {
    judged = { length: policy.rules.length, bits: judgedBasics(policy) };
    judgedOf.set(policy.rules, judged);
  }
  return (judged.bits >> c.bit) & 1 ? undefined : c;
}
