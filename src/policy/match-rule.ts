// Does one rule (or redirect) match a connection? Every section it names must match.

import type { IpAddress } from "../config/ip.ts";
import { PROTOCOL_NUMBERS, type Direction, type Match } from "../config/model.ts";
import type { ConnectionFacts } from "./facts.ts";
import { matchAddressList } from "./match-address.ts";
import { matchInterface, matchProcess } from "./match-context.ts";
import { matchLayer4, type TransportFacts } from "./match-layer4.ts";
import { matchLayer7 } from "./match-layer7.ts";
import { all, no, type Outcome } from "./tri.ts";

/** Facts with the text parsed once per evaluation. */
export interface PreparedFacts {
  direction: Direction;
  local: { address: IpAddress; text: string; names?: string[] };
  remote: { address: IpAddress; text: string; names?: string[] };
  transport: TransportFacts;
  raw: ConnectionFacts;
}

const PROCESS_PROTOCOLS = new Set<number>([PROTOCOL_NUMBERS.tcp, PROTOCOL_NUMBERS.udp]);

export function matchRule(rule: Match, facts: PreparedFacts): Outcome {
  if (rule.direction !== "any" && rule.direction !== facts.direction) return no();
  // the kernel knows the process and interface of TCP and UDP connections only
  // (docs/socket-hooks.md, "Every protocol, raw sockets and packet sockets")
  if ((rule.process || rule.interface) && !PROCESS_PROTOCOLS.has(facts.transport.protocol))
    return no();
  const parts: Outcome[] = [];
  // names are bound to addresses only for the TCP and UDP connections this host opens
  // (docs/policy.md, "Names"): for any other, an address has no names
  const named = facts.direction === "egress" && PROCESS_PROTOCOLS.has(facts.transport.protocol);
  const remote = named ? facts.remote : { ...facts.remote, names: [] };
  if (rule.layer3?.remote) parts.push(matchAddressList(rule.layer3.remote, "remote", remote));
  if (rule.layer3?.local) parts.push(matchAddressList(rule.layer3.local, "local", facts.local));
  if (rule.layer4) parts.push(matchLayer4(rule.layer4, facts.transport));
  // cheap, known sections first: a "no" there settles it without the unknown ones
  if (parts.some((p) => p.result === "no")) return no();
  if (rule.process) parts.push(matchProcess(rule.process, facts.raw.process));
  if (rule.interface) parts.push(matchInterface(rule.interface, facts.raw.interface));
  if (rule.layer7)
    parts.push(matchLayer7(rule.layer7, facts.raw.layer7, facts.transport, remote.names));
  return all(parts);
}
