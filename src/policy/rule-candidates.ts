// The rules a connection can match, found by what every connection has: its direction, its
// protocol and its server port. The evaluator walks these instead of every rule; each rule left
// out answers "no" at its gate or its layer4 section (match-rule.ts, match-layer4.ts), so the
// first match and the "maybe"s before it are the same. Built once per rule list and per
// direction and protocol, when first asked.

import { PROTOCOL_NUMBERS, type Direction, type PolicyModel, type Rule } from "../config/model.ts";
import type { TransportFacts } from "./match-layer4.ts";

/** Policies with fewer rules are walked whole. */
const INDEXED_FROM = 64;
/** A rule whose server ports span more than this is kept with the rules without ports. */
const PORTS_INDEXED = 16;

const PORTED = new Set<number>([PROTOCOL_NUMBERS.tcp, PROTOCOL_NUMBERS.udp]);

/** Positions of the rules open to one direction and protocol, in policy order. */
interface Bucket {
  /** Rules with a few server ports, by port. */
  byPort: Map<number, number[]>;
  /** The rest: no server ports, or many. */
  rest: number[];
}

/** Each rule list's buckets by direction and protocol, with the list's length when built. */
const built = new WeakMap<readonly Rule[], { length: number; buckets: Map<string, Bucket> }>();

export function candidateRules(
  policy: PolicyModel,
  direction: Direction,
  transport: TransportFacts,
): readonly Rule[] {
  const rules = policy.rules;
  if (rules.length < INDEXED_FROM) return rules;
  let index = built.get(rules);
  if (index?.length !== rules.length)
    built.set(rules, (index = { length: rules.length, buckets: new Map() }));
  const buckets = index.buckets;
  const key = `${direction} ${transport.protocol}`;
  let bucket = buckets.get(key);
  if (!bucket) buckets.set(key, (bucket = bucketOf(rules, direction, transport.protocol)));
  const ported =
    transport.serverPort === undefined ? undefined : bucket.byPort.get(transport.serverPort);
  return merged(ported ?? [], bucket.rest).map((at) => rules[at]!);
}

/** Whether the rule's gate and protocol let a connection of this direction and protocol in. */
function open(rule: Rule, direction: Direction, protocol: number): boolean {
  if (rule.direction !== "any" && rule.direction !== direction) return false;
  if ((rule.process || rule.interface) && !PORTED.has(protocol)) return false;
  const l4 = rule.layer4;
  if (!l4) return true;
  if (l4.protocol !== null && l4.protocol !== protocol) return false;
  return !((l4.ports || l4.sourcePorts) && !PORTED.has(protocol));
}

function bucketOf(rules: readonly Rule[], direction: Direction, protocol: number): Bucket {
  const bucket: Bucket = { byPort: new Map(), rest: [] };
  rules.forEach((rule, at) => {
    if (!open(rule, direction, protocol)) return;
    const ports = rule.layer4?.ports;
    const span = ports?.reduce((n, r) => n + r.hi - r.lo + 1, 0) ?? Infinity;
    if (!ports || span > PORTS_INDEXED) return void bucket.rest.push(at);
    for (const r of ports)
      for (let port = r.lo; port <= r.hi; port++) {
        const list = bucket.byPort.get(port);
        // a rule whose ranges overlap is listed once under a port
        if (!list) bucket.byPort.set(port, [at]);
        else if (list[list.length - 1] !== at) list.push(at);
      }
  });
  return bucket;
}

/** Two ascending lists of positions as one. */
function merged(a: number[], b: number[]): number[] {
  if (a.length === 0) return b;
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length)
    out.push(j >= b.length || (i < a.length && a[i]! < b[j]!) ? a[i++]! : b[j++]!);
  return out;
}
