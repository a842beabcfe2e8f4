// Finds rules that can never match because an earlier rule matches everything they match.
// Sound, not complete: a warning means the rule is truly unreachable; some unreachable rules
// (covered only by several earlier rules together) are not found.

import { diagnostic, type Diagnostic } from "./diagnostics.ts";
import { covers, normalize, subtract, type Interval, type IntervalSet } from "./intervals.ts";
import { familyMax } from "./ip.ts";
import type { AddressEntry, AddressList, Layer4, PolicyModel, PortRange, Rule } from "./model.ts";

/**
 * Pairwise comparison is quadratic: above this many rules (generated block lists, say) the
 * check is skipped rather than making `moat check` and reloads slow (docs/policy.md).
 */
export const SHADOW_CHECK_MAX_RULES = 2000;

export function findShadowedRules(model: PolicyModel): Diagnostic[] {
  const found: Diagnostic[] = [];
  if (model.rules.length > SHADOW_CHECK_MAX_RULES) return found;
  const runTime = runTimeSets(model);
  model.rules.forEach((later, i) => {
    const earlier = model.rules.slice(0, i).find((rule) => coversRule(rule, later, runTime));
    if (earlier)
      found.push(
        diagnostic(
          later.pos,
          `rule '${later.name}' can never match: rule '${earlier.name}' (earlier, line ${earlier.pos.line}) matches everything it matches`,
          "warning",
        ),
      );
  });
  return found;
}

/**
 * Whether set `name` takes its entries at run time: a dynamic set (`moat set`, a CrowdSec
 * bouncer, a quarantine) or a URL feed. What it holds when the policy is checked says nothing of
 * what it will hold: empty now, it may fill; full now, it may empty.
 */
type RunTimeSet = (name: string) => boolean;

function runTimeSets(model: PolicyModel): RunTimeSet {
  return (name) => {
    const origin = model.sets.get(name)?.origin;
    return origin?.kind === "dynamic" || origin?.url !== undefined;
  };
}

/** Whether every connection `b` matches is matched by `a`. */
export function coversRule(a: Rule, b: Rule, runTime: RunTimeSet): boolean {
  if (a.direction !== "any" && a.direction !== b.direction) return false;
  for (const section of ["process", "interface", "layer7"] as const)
    if (a[section] && !sameSection(a[section], b[section])) return false;
  for (const side of ["remote", "local"] as const) {
    const outer = a.layer3?.[side];
    if (!outer) continue;
    const inner = b.layer3?.[side];
    const surely = addresses(outer, "lower", runTime);
    const atMost = inner ? addresses(inner, "upper", runTime) : UNIVERSE;
    if (!covers(surely.v4, atMost.v4) || !covers(surely.v6, atMost.v6)) return false;
  }
  return coversLayer4(a.layer4, b.layer4);
}

function sameSection(a: unknown, b: unknown): boolean {
  const strip = (key: string, value: unknown) => (key === "pos" ? undefined : value);
  return b !== undefined && JSON.stringify(a, strip) === JSON.stringify(b, strip);
}

interface AddressSpace {
  v4: IntervalSet;
  v6: IntervalSet;
}

const UNIVERSE: AddressSpace = { v4: [[0n, familyMax(4)]], v6: [[0n, familyMax(6)]] };
const NOTHING: AddressSpace = { v4: [], v6: [] };

const minus = (a: AddressSpace, b: AddressSpace): AddressSpace => ({
  v4: subtract(a.v4, b.v4),
  v6: subtract(a.v6, b.v6),
});

type Bound = "lower" | "upper";
const flip = (bound: Bound): Bound => (bound === "lower" ? "upper" : "lower");

/**
 * The addresses a list surely matches ("lower") or may match ("upper"): hostname entries match
 * addresses learned at run time, and a run-time set holds what it is given then, so they count
 * as nothing for "lower" and everything for "upper".
 */
function addresses(list: AddressList, bound: Bound, runTime: RunTimeSet): AddressSpace {
  if (list.entries.length === 0) return UNIVERSE;
  const memo = bound === "lower" ? lowerMemo : upperMemo;
  let space = memo.get(list);
  if (!space) {
    space = entriesSpace(list.entries, bound, UNIVERSE, runTime);
    memo.set(list, space);
  }
  return space;
}

// a list is compared with every later rule: compute its address space once
const lowerMemo = new WeakMap<AddressList, AddressSpace>();
const upperMemo = new WeakMap<AddressList, AddressSpace>();

/** List semantics; `noPositives` is what a list of only "!" entries starts from. */
function entriesSpace(
  entries: AddressEntry[],
  bound: Bound,
  noPositives: AddressSpace,
  runTime: RunTimeSet,
): AddressSpace {
  // collect every interval first and normalize once: adding one by one is quadratic in big sets
  const positive = { v4: [] as Interval[], v6: [] as Interval[] };
  const negative = { v4: [] as Interval[], v6: [] as Interval[] };
  let anyPositive = false;
  for (const entry of entries) {
    // an excluded entry removes as much as it may match from "lower", as much as it surely matches from "upper"
    const space = entrySpace(entry, entry.negate ? flip(bound) : bound, runTime);
    const into = entry.negate ? negative : positive;
    for (const i of space.v4) into.v4.push(i);
    for (const i of space.v6) into.v6.push(i);
    if (!entry.negate) anyPositive = true;
  }
  const pos = { v4: normalize(positive.v4), v6: normalize(positive.v6) };
  const neg = { v4: normalize(negative.v4), v6: normalize(negative.v6) };
  return minus(anyPositive ? pos : noPositives, neg);
}

function entrySpace(entry: AddressEntry, bound: Bound, runTime: RunTimeSet): AddressSpace {
  switch (entry.kind) {
    case "interval": {
      const range: IntervalSet = [[entry.start, entry.end]];
      return entry.family === 4 ? { v4: range, v6: [] } : { v4: [], v6: range };
    }
    case "hostname":
      return bound === "lower" ? NOTHING : UNIVERSE;
    case "set":
      if (runTime(entry.set)) return bound === "lower" ? NOTHING : UNIVERSE;
      // an empty set contains nothing (unlike an empty list in a rule)
      return entry.entries.length === 0
        ? NOTHING
        : entriesSpace(entry.entries, bound, UNIVERSE, runTime);
  }
}

const ALL_PORTS: IntervalSet = [[0n, 65535n]];
const PORT_PROTOCOLS = new Set([6, 17]);

function ports(ranges: PortRange[] | undefined): IntervalSet {
  return ranges ? normalize(ranges.map((r) => [BigInt(r.lo), BigInt(r.hi)] as const)) : ALL_PORTS;
}

/** The protocols a layer4 section can match; null = every protocol. */
function protocols(l4: Layer4 | undefined): Set<number> | null {
  if (!l4) return null;
  if (l4.protocol !== null) return new Set([l4.protocol]);
  return l4.ports || l4.sourcePorts ? PORT_PROTOCOLS : null;
}

function coversLayer4(a: Layer4 | undefined, b: Layer4 | undefined): boolean {
  if (!a) return true;
  const pa = protocols(a);
  const pb = protocols(b);
  if (pa !== null && (pb === null || [...pb].some((p) => !pa.has(p)))) return false;
  if (a.ports && !covers(ports(a.ports), ports(b?.ports))) return false;
  if (a.sourcePorts && !covers(ports(a.sourcePorts), ports(b?.sourcePorts))) return false;
  if (a.icmp) {
    const bi = b?.icmp;
    if (!bi || bi.type !== a.icmp.type) return false;
    if (a.icmp.code !== undefined && bi.code !== a.icmp.code) return false;
  }
  return true;
}
