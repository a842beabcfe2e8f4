// The process facts of DNS clients, kept for a moment: a program asking thousands of queries a
// second would otherwise cost a few /proc reads per query (most of the proxy's time). The key is
// everything the kernel recorded about the socket's owner, so another process (or the same pid
// running another executable, in another cgroup, as another user) is looked up on its own.
import type { ProcessFacts } from "../attribution/index.ts";
import type { DnsOwner } from "./ports.ts";

/** How long looked-up facts are used (the proxy's events may show a name this old). */
const MAX_AGE_MS = 1000;
/** Processes kept at most; past it the cache starts over. */
const MAX_ENTRIES = 4096;

export interface ProcessCacheOptions {
  now?: () => number;
  maxAgeMs?: number;
}

export function processFactsCache(
  lookup: (owner: DnsOwner) => ProcessFacts,
  options: ProcessCacheOptions = {},
): (owner: DnsOwner) => ProcessFacts {
  const now = options.now ?? (() => performance.now());
  const maxAge = options.maxAgeMs ?? MAX_AGE_MS;
  const cache = new Map<string, { facts: ProcessFacts; at: number }>();
  return (owner) => {
    const key = `${owner.pid}/${owner.cgroupId}/${owner.exeIno ?? ""}/${owner.exeDev ?? ""}/${owner.uid}/${owner.comm}`;
    const t = now();
    const hit = cache.get(key);
    if (hit && t - hit.at <= maxAge) return hit.facts;
    if (cache.size >= MAX_ENTRIES) cache.clear();
    const facts = lookup(owner);
    cache.set(key, { facts, at: t });
    return facts;
  };
}
