// layer4: protocol, server port, client port, ICMP type/code.
// `port` is the server side: the local port for ingress, the remote port for egress.

import { PROTOCOL_NUMBERS, type Layer4, type PortRange } from "../config/model.ts";
import { maybe, no, yes, type Outcome } from "./tri.ts";

export interface TransportFacts {
  protocol: number;
  serverPort?: number;
  clientPort?: number;
  icmp?: { type: number; code: number };
}

const NAMES = new Map<number, string>(
  Object.entries(PROTOCOL_NUMBERS).map(([name, n]) => [n, name]),
);

export const protocolName = (protocol: number): string =>
  NAMES.get(protocol) ?? `protocol ${protocol}`;

const PORTED = new Set<number>([PROTOCOL_NUMBERS.tcp, PROTOCOL_NUMBERS.udp]);

export function matchLayer4(l4: Layer4, facts: TransportFacts): Outcome {
  const name = protocolName(facts.protocol);
  if (l4.protocol !== null && l4.protocol !== facts.protocol) return no();
  const hasPorts = l4.ports !== undefined || l4.sourcePorts !== undefined;
  // a rule with ports (protocol any) matches only connections that have ports
  if (hasPorts && !PORTED.has(facts.protocol)) return no();
  const because: string[] = [];
  if (l4.ports) {
    const hit = findPort(l4.ports, facts.serverPort);
    if (!hit) return no();
    because.push(`${name} port ${facts.serverPort}${via(hit)}`);
  }
  if (l4.sourcePorts) {
    const hit = findPort(l4.sourcePorts, facts.clientPort);
    if (!hit) return no();
    because.push(`${l4.ports ? "" : `${name} `}source port ${facts.clientPort}${via(hit)}`);
  }
  if (l4.icmp) {
    if (!facts.icmp) return maybe("ICMP type and code");
    if (facts.icmp.type !== l4.icmp.type) return no();
    if (l4.icmp.code !== undefined && facts.icmp.code !== l4.icmp.code) return no();
    because.push(`${name} type ${facts.icmp.type} code ${facts.icmp.code}`);
  }
  if (because.length === 0 && l4.protocol !== null) because.push(`protocol ${name}`);
  return yes(...because);
}

function findPort(ranges: PortRange[], port: number | undefined): PortRange | undefined {
  if (port === undefined) return undefined;
  return ranges.find((r) => r.lo <= port && port <= r.hi);
}

/** "" for an exact single port, " in 8000-8999" or " in set:web-ports" otherwise. */
function via(range: PortRange): string {
  return range.lo === range.hi && !range.set ? "" : ` in ${range.text}`;
}
