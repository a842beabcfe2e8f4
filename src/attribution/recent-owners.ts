// Owners seen a moment ago: a connection-heavy client (a script making a request a
// millisecond) makes the same owner's facts be asked for again and again, and each answer reads
// /proc. An answer is reused for the same kernel owner (pid, comm, uid, cgroup, executable) for
// `ttlMs`: a process that execs another program changes its comm or executable, so a reused
// answer is one /proc would still give, or one at most `ttlMs` old.
import type { KernelOwner } from "./attributor.ts";
import type { ProcessFacts } from "./types.ts";

export function recentOwners(
  attribute: (owner: KernelOwner) => ProcessFacts,
  ttlMs = 1000,
  max = 1024,
): (owner: KernelOwner) => ProcessFacts {
  const seen = new Map<string, { facts: ProcessFacts; until: number }>();
  return (owner) => {
    const key = `${owner.pid}|${owner.comm}|${owner.uid}|${owner.cgroupId}|${owner.exeIno ?? ""}|${owner.exeDev ?? ""}`;
    const now = performance.now();
    const hit = seen.get(key);
    if (hit && hit.until > now) return { ...hit.facts };
    seen.delete(key);
    if (seen.size >= max) {
      const oldest = seen.keys().next().value;
      if (oldest !== undefined) seen.delete(oldest);
    }
    const facts = attribute(owner);
    seen.set(key, { facts, until: now + ttlMs });
    return { ...facts };
  };
}
