// A rule's direction and layer4 -> the values it matches in the port dimension
// (portIndex(dir, slot, value), see image.ts) and in the client-port dimension (sportIndex), with
// the semantics of src/policy/match-layer4.ts: ports (or source ports) restrict a rule to tcp and
// udp; icmp {type} without code covers the 256 codes; a protocol number outside tcp, udp, icmp,
// icmpv6 is its own value in the "other" slot.

import { PROTOCOL_NUMBERS, type Layer4, type PortRange, type Rule } from "../../config/model.ts";
import { DIRECTION_INDEX, PORT_CLASS_SIZE, PROTO_SLOTS, SPORT_CLASS_SIZE } from "./image.ts";
import { EMPTY, interval, shift, unionAll, unionOf, whole, type Flat } from "./intervals.ts";

const SLOT = 65536;
/** The values of one direction: every protocol slot. */
export const DIRECTION_SPACE = PROTO_SLOTS * SLOT;
export const PORT_SPACE = PORT_CLASS_SIZE;
export const SPORT_SPACE = SPORT_CLASS_SIZE;

export const SLOT_TCP = 0;
export const SLOT_UDP = 1;
export const SLOT_ICMP = 2;
export const SLOT_ICMPV6 = 3;
export const SLOT_OTHER = 4;

export function protocolSlot(protocol: number): number {
  switch (protocol) {
    case PROTOCOL_NUMBERS.tcp:
      return SLOT_TCP;
    case PROTOCOL_NUMBERS.udp:
      return SLOT_UDP;
    case PROTOCOL_NUMBERS.icmp:
      return SLOT_ICMP;
    case PROTOCOL_NUMBERS.icmpv6:
      return SLOT_ICMPV6;
    default:
      return SLOT_OTHER;
  }
}

/** Whether the protocol carries ports (tcp, udp). */
export const isPorted = (protocol: number): boolean =>
  protocol === PROTOCOL_NUMBERS.tcp || protocol === PROTOCOL_NUMBERS.udp;

const slotRange = (slot: number): Flat => Float64Array.of(slot * SLOT, (slot + 1) * SLOT);

function portRanges(ranges: PortRange[], offset: number): Flat {
  const only = ranges.length === 1 ? ranges[0] : undefined;
  if (only) return interval(offset + only.lo, offset + only.hi + 1);
  const starts = new Float64Array(ranges.length);
  const ends = new Float64Array(ranges.length);
  ranges.forEach((r, i) => {
    starts[i] = offset + r.lo;
    ends[i] = offset + r.hi + 1;
  });
  return unionOf(starts, ends);
}

/** The layer4 values a rule matches within one direction, in [0, DIRECTION_SPACE). */
export function layer4Region(l4: Layer4 | undefined): Flat {
  if (!l4) return whole(DIRECTION_SPACE);
  const hasPorts = l4.ports !== undefined || l4.sourcePorts !== undefined;
  const { protocol } = l4;
  if (protocol === null) {
    if (!hasPorts) return whole(DIRECTION_SPACE);
    const slots = [SLOT_TCP, SLOT_UDP];
    return unionAll(slots.map((s) => (l4.ports ? portRanges(l4.ports, s * SLOT) : slotRange(s))));
  }
  const slot = protocolSlot(protocol);
  if (hasPorts) {
    // ports exist only for tcp and udp (the loader refuses them elsewhere)
    if (!isPorted(protocol)) return EMPTY;
    return l4.ports ? portRanges(l4.ports, slot * SLOT) : slotRange(slot);
  }
  if (slot === SLOT_OTHER)
    return Float64Array.of(slot * SLOT + protocol, slot * SLOT + protocol + 1);
  if ((slot === SLOT_ICMP || slot === SLOT_ICMPV6) && l4.icmp) {
    const base = slot * SLOT + (l4.icmp.type << 8);
    return l4.icmp.code === undefined
      ? Float64Array.of(base, base + 256)
      : Float64Array.of(base + l4.icmp.code, base + l4.icmp.code + 1);
  }
  return slotRange(slot);
}

/** The directions a rule applies to, as DIRECTION_INDEX values. */
export function ruleDirections(rule: Rule): number[] {
  return rule.direction === "any"
    ? [DIRECTION_INDEX.ingress, DIRECTION_INDEX.egress]
    : [DIRECTION_INDEX[rule.direction]];
}

/** The directions a rule applies to as bits: 1 << DIRECTION_INDEX (ruleDirections'). */
export function ruleDirectionBits(rule: Rule): number {
  return rule.direction === "any"
    ? (1 << DIRECTION_INDEX.ingress) | (1 << DIRECTION_INDEX.egress)
    : 1 << DIRECTION_INDEX[rule.direction];
}

/** The port-dimension values of a rule, in [0, PORT_SPACE). */
export function portRegion(rule: Rule, layer4: Flat): Flat {
  if (rule.direction !== "any") {
    const offset = DIRECTION_INDEX[rule.direction] * DIRECTION_SPACE;
    // ingress (offset 0): the values themselves (no set is ever changed in place)
    return offset === 0 ? layer4 : shift(layer4, offset);
  }
  return unionAll(ruleDirections(rule).map((d) => shift(layer4, d * DIRECTION_SPACE)));
}

/**
 * Where the port-dimension values of a rule of one direction, tcp or udp, one port range and no
 * client port (most rules of a big file) start: portRegion(rule, layer4Region(rule.layer4)) is
 * then that range alone, from there. -1 for any other rule.
 */
export function onePortStart(rule: Rule): number {
  const l4 = rule.layer4;
  if (!l4 || l4.ports?.length !== 1 || l4.sourcePorts !== undefined) return -1;
  const { protocol } = l4;
  if (protocol === null || !isPorted(protocol) || rule.direction === "any") return -1;
  const base = DIRECTION_INDEX[rule.direction] * DIRECTION_SPACE + protocolSlot(protocol) * SLOT;
  return base + l4.ports[0]!.lo;
}

/** The client-port values of a rule, in [0, SPORT_SPACE); undefined = any (no source_port). */
export function sportRegion(l4: Layer4 | undefined): Flat | undefined {
  if (!l4?.sourcePorts) return undefined;
  return portRanges(l4.sourcePorts, 1);
}
