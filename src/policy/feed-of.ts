// Which feed or dynamic set of a rule holds a remote address: the metadata events carry (feed
// name, category, confidence) when a rule matched through such a set. A rule whose remote list
// is one such set needs no lookup; one that names several looks the address up in each (a sorted
// index per set, built once per set object: a million-entry feed is not scanned per event).
import { parseIp, unmapIpv4 } from "../config/ip.ts";
import type { AddressEntry, PolicyModel, PolicySet, Rule } from "../config/index.ts";
import { perModel } from "./per-model.ts";

export interface FeedTag {
  /** The set's name (a feed is a set). */
  name: string;
  kind: "feed" | "dynamic";
  category?: string;
  confidence?: number;
}

/** Sorted, merged intervals of one family. */
type Index = { 4: [bigint, bigint][]; 6: [bigint, bigint][] };
const indexes = new WeakMap<PolicySet, Index>();

function indexOf(set: PolicySet): Index {
  const cached = indexes.get(set);
  if (cached) return cached;
  const index: Index = { 4: [], 6: [] };
  for (const e of set.entries as AddressEntry[])
    if (e.kind === "interval" && !e.negate) index[e.family].push([e.start, e.end]);
  for (const family of [4, 6] as const) {
    const list = index[family].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const merged: [bigint, bigint][] = [];
    for (const [start, end] of list) {
      const last = merged[merged.length - 1];
      if (last && start <= last[1] + 1n) last[1] = end > last[1] ? end : last[1];
      else merged.push([start, end]);
    }
    index[family] = merged;
  }
  indexes.set(set, index);
  return index;
}

function holds(set: PolicySet, family: 4 | 6, value: bigint): boolean {
  const list = indexOf(set)[family];
  let lo = 0;
  let hi = list.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const [start, end] = list[mid] ?? [0n, -1n];
    if (value < start) hi = mid - 1;
    else if (value > end) lo = mid + 1;
    else return true;
  }
  return false;
}

/** The feed and dynamic sets a rule's remote list names (not excluded). */
function feedSetsOf(model: PolicyModel, rule: Rule): PolicySet[] {
  const out: PolicySet[] = [];
  for (const e of rule.layer3?.remote?.entries ?? []) {
    if (e.kind !== "set" || e.negate) continue;
    const set = model.sets.get(e.set);
    if (set?.origin) out.push(set);
  }
  return out;
}

/** A rule's feeds, and whether its remote list is that one feed. */
interface FeedRule {
  sets: PolicySet[];
  only: boolean;
}

/**
 * The rules that name feeds, by name (the first rule of a name, as events name it), worked out
 * once per policy: an event reads this, not the rules (a big policy's rules are made again to be
 * read once let go, src/host/kept-rules.ts).
 */
const feedRules = perModel((model: PolicyModel): Map<string, FeedRule> => {
  const out = new Map<string, FeedRule>();
  const seen = new Set<string>();
  for (const rule of model.rules) {
    if (seen.has(rule.name)) continue;
    seen.add(rule.name);
    const sets = feedSetsOf(model, rule);
    const only = sets.length === 1 && rule.layer3?.remote?.entries.length === 1;
    if (sets.length > 0) out.set(rule.name, { sets, only });
  }
  return out;
});

const tagOf = (set: PolicySet): FeedTag => ({
  name: set.name,
  kind: set.origin?.kind ?? "feed",
  ...(set.origin?.category !== undefined ? { category: set.origin.category } : {}),
  ...(set.origin?.confidence !== undefined ? { confidence: set.origin.confidence } : {}),
});

/** The feed a connection of `ruleName` to or from `remoteIp` matched through, if any. */
export function feedOf(model: PolicyModel, ruleName: string, remoteIp: string): FeedTag | null {
  const rule = feedRules(model).get(ruleName);
  if (!rule) return null;
  const { sets, only } = rule;
  // the remote list is that one set: whatever the rule matched came from it
  if (only) return tagOf(sets[0]!);
  const ip = parseIp(remoteIp);
  if (!ip.ok) return null;
  const { family, value } = unmapIpv4(ip.value);
  const found = sets.find((s) => holds(s, family, value));
  return found ? tagOf(found) : null;
}
