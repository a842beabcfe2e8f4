// The process facts of DNS clients, kept for a moment: a program asking thousands of queries a
// second would otherwise cost a few /proc reads per query (most of the proxy's time). Everything
// the kernel recorded about the socket's owner must match, so another process (or the same pid
// running another executable, in another cgroup, as another user) is looked up on its own.
import type { ProcessFacts } from "../attribution/index.ts";
import { ownerCache } from "./owner-cache.ts";
import type { DnsOwner } from "./ports.ts";

/** How long looked-up facts are used (the proxy's events may show a name this old). */
const MAX_AGE_MS = 1000;

export interface ProcessCacheOptions {
  now?: () => number;
  maxAgeMs?: number;
}

export function processFactsCache(
  lookup: (owner: DnsOwner) => ProcessFacts,
  options: ProcessCacheOptions = {},
): (owner: DnsOwner) => ProcessFacts {
  return ownerCache(lookup, {
    ...(options.now ? { now: options.now } : {}),
    maxAgeMs: options.maxAgeMs ?? MAX_AGE_MS,
  });
}
