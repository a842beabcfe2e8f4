// What the proxy works out about a DNS client's owner (its process facts, its identity), kept for a
// moment: a program asking thousands of queries a second would otherwise cost the work per query.
// An entry is found by pid and matched on everything else the kernel recorded about the owner
// (cgroup, executable, user, name), field by field: no key text is built per query.
import type { DnsOwner } from "./ports.ts";

/** Owners kept at most; past it the cache starts over. */
const MAX_ENTRIES = 4096;

export interface OwnerCacheOptions {
  now?: () => number;
  maxAgeMs: number;
}

interface Slot<V> {
  owner: DnsOwner;
  value: V;
  at: number;
}

const sameOwner = (a: DnsOwner, b: DnsOwner): boolean =>
  a.cgroupId === b.cgroupId &&
  a.exeIno === b.exeIno &&
  a.exeDev === b.exeDev &&
  a.uid === b.uid &&
  a.comm === b.comm;

export function ownerCache<V>(
  compute: (owner: DnsOwner) => V,
  options: OwnerCacheOptions,
): (owner: DnsOwner) => V {
  const now = options.now ?? (() => performance.now());
  const maxAge = options.maxAgeMs;
  const byPid = new Map<number, Slot<V>[]>();
  let size = 0;
  return (owner) => {
    const t = now();
    let slots = byPid.get(owner.pid);
    let slot: Slot<V> | undefined;
    for (const s of slots ?? []) if (sameOwner(s.owner, owner)) slot = s;
    if (slot && t - slot.at <= maxAge) return slot.value;
    const value = compute(owner);
    if (slot) {
      slot.value = value;
      slot.at = t;
      return value;
    }
    if (size >= MAX_ENTRIES) {
      byPid.clear();
      size = 0;
      slots = undefined;
    }
    if (slots) slots.push({ owner, value, at: t });
    else byPid.set(owner.pid, [{ owner, value, at: t }]);
    size++;
    return value;
  };
}
