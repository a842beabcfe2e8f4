// Does one rule (or redirect) match a connection? Every section it names must match.

import type { IpAddress } from "../config/ip.ts";
import {
  PROTOCOL_NUMBERS,
  type Direction,
  type Layer4,
  type Match,
  type PortRange,
} from "../config/model.ts";
import type { ConnectionFacts } from "./facts.ts";
import { matchAddressList } from "./match-address.ts";
import { matchInterface, matchProcess } from "./match-context.ts";
import { matchLayer4, protocolName, type TransportFacts } from "./match-layer4.ts";
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
  if (gated(rule, facts)) return no();
  const parts = knownSections(rule, facts);
  // cheap, known sections first: a "no" there settles it without the unknown ones
  for (const p of parts) if (p.result === "no") return no();
  contextSections(rule, facts, null, parts);
  // one section that matches (a rule on ports alone): its outcome is what all() would make of it
  const only = parts.length === 1 ? parts[0] : undefined;
  if (only && only.result === "yes" && only.needs.length === 0) return only;
  return all(parts);
}

/**
 * What each section a rule names says, in words (for why a rule did not match), in the order of
 * its outcomes: filled only when asked, as a judgement never reads it.
 */
type Says = (() => string)[] | null;

/** Whether a rule cannot apply to the connection at all, before any section is looked at. */
const gated = (rule: Match, facts: PreparedFacts): boolean =>
  (rule.direction !== "any" && rule.direction !== facts.direction) ||
  (Boolean(rule.process || rule.interface) && !PROCESS_PROTOCOLS.has(facts.transport.protocol));

/** Why a rule cannot apply to the connection at all, in words. */
function gateMiss(rule: Match, facts: PreparedFacts): string | undefined {
  if (rule.direction !== "any" && rule.direction !== facts.direction)
    return `it judges ${rule.direction} connections; this one is ${facts.direction}`;
  // the kernel knows the process and interface of TCP and UDP connections only
  // (docs/socket-hooks.md, "Every protocol, raw sockets and packet sockets")
  if ((rule.process || rule.interface) && !PROCESS_PROTOCOLS.has(facts.transport.protocol))
    return `its process and interface sections judge tcp and udp only; this is ${protocolName(facts.transport.protocol)}`;
  return undefined;
}

/**
 * Names are bound to addresses only for the TCP and UDP connections this host opens
 * (docs/policy.md, "Names"): for any other, an address has no names.
 */
function remoteOf(facts: PreparedFacts): PreparedFacts["remote"] {
  const named = facts.direction === "egress" && PROCESS_PROTOCOLS.has(facts.transport.protocol);
  return named ? facts.remote : { ...facts.remote, names: [] };
}

const entries = (list: { entries: { text: string }[] }): string =>
  list.entries.map((e) => e.text).join(", ");

/** The outcomes of the sections known from the addresses and ports; `says` gets their words. */
function knownSections(rule: Match, facts: PreparedFacts, says: Says = null): Outcome[] {
  const out: Outcome[] = [];
  const remoteList = rule.layer3?.remote;
  const localList = rule.layer3?.local;
  if (remoteList) {
    out.push(matchAddressList(remoteList, "remote", remoteOf(facts)));
    says?.push(() => `remote ${facts.remote.text} is not in [${entries(remoteList)}]`);
  }
  if (localList) {
    out.push(matchAddressList(localList, "local", facts.local));
    says?.push(() => `local ${facts.local.text} is not in [${entries(localList)}]`);
  }
  const l4 = rule.layer4;
  if (l4) {
    out.push(matchLayer4(l4, facts.transport));
    says?.push(() => layer4Miss(l4, facts));
  }
  return out;
}

/** The outcomes of the process, interface and layer7 sections, added to `out`. */
function contextSections(
  rule: Match,
  facts: PreparedFacts,
  says: Says = null,
  out: Outcome[] = [],
): Outcome[] {
  if (rule.process) {
    out.push(matchProcess(rule.process, facts.raw.process));
    says?.push(() => "the process does not match its process section");
  }
  if (rule.interface) {
    out.push(matchInterface(rule.interface, facts.raw.interface));
    says?.push(() => "the interface does not match its interface section");
  }
  if (rule.layer7) {
    const l7 = rule.layer7;
    out.push(matchLayer7(l7, facts.raw.layer7, facts.transport, remoteOf(facts).names));
    says?.push(
      () =>
        `the layer7 facts do not match its layer7 (${Object.keys(l7)
          .filter((k) => k !== "pos")
          .join(", ")}) section`,
    );
  }
  return out;
}

function layer4Miss(l4: Layer4, facts: PreparedFacts): string {
  const t = facts.transport;
  const proto = protocolName(t.protocol);
  if (l4.protocol !== null && l4.protocol !== t.protocol)
    return `it judges ${protocolName(l4.protocol)}; this is ${proto}`;
  const ports = (list: PortRange[]) => list.map((p) => p.text).join(", ");
  const within = (list: PortRange[], port: number | undefined) =>
    port !== undefined && list.some((r) => r.lo <= port && port <= r.hi);
  if ((l4.ports || l4.sourcePorts) && !PROCESS_PROTOCOLS.has(t.protocol))
    return `it names ports; ${proto} has none`;
  if (l4.ports && !within(l4.ports, t.serverPort))
    return `${proto} port ${t.serverPort ?? "(none)"} is not in [${ports(l4.ports)}]`;
  if (l4.sourcePorts && !within(l4.sourcePorts, t.clientPort))
    return `${proto} source port ${t.clientPort ?? "(none)"} is not in [${ports(l4.sourcePorts)}]`;
  return `the ${proto} type and code do not match its icmp section`;
}

/**
 * Why a rule (or redirect) does not match, in words: the first section that rules the
 * connection out. Undefined when the rule matches or may match.
 */
export function missedSection(rule: Match, facts: PreparedFacts): string | undefined {
  const gate = gateMiss(rule, facts);
  if (gate) return gate;
  const knownSays: (() => string)[] = [];
  const known = knownSections(rule, facts, knownSays).findIndex((o) => o.result === "no");
  if (known >= 0) return knownSays[known]?.();
  const contextSays: (() => string)[] = [];
  const context = contextSections(rule, facts, contextSays).findIndex((o) => o.result === "no");
  return context >= 0 ? contextSays[context]?.() : undefined;
}
