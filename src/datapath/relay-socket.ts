// The socket record of moat's L7 relay's own connections (docs/l7.md): written before connect(),
// so the tc hook judges the connection's first packet by the relay's decision (its rule, in the
// live policy) instead of by the packet rules, for which an L7 rule matches nothing. The record
// says the relay reported the decision already: the tc hook does not report it again.
import type { KernelOwner } from "../attribution/index.ts";
import { EventType, owner as ownerCodec, PostRoute, sock as sockCodec } from "./abi.ts";
import { mappedAddress } from "./address.ts";
import type { GenerationContents } from "./generations.ts";
import { ruleName as nameOf } from "./kept-rules.ts";

export interface RelayedConnection {
  /** The original destination. */
  to: { ip: string; port: number };
  /** The deciding rule's name in the live policy; "default": the egress default. */
  rule: string;
  verdict: "allowed" | "detected";
  /** The process the relay connects for (its client), for the connection table. */
  owner: KernelOwner | null;
}

/** Each generation's rule list by name (the first index of a name), built on first use. */
const byName = new WeakMap<GenerationContents["rules"], Map<string, number>>();

/** The rule's index in `contents` (the egress default for "default"); -1 if it has none. */
export function relayRuleIndex(contents: GenerationContents, name: string): number {
  const { rules } = contents;
  if (name === "default") return rules.length - 1; // the two defaults last: ingress, egress
  let index = byName.get(rules);
  if (!index) {
    index = new Map();
    for (let i = 0; i < rules.length - 2; i++) {
      const ruleName = nameOf(rules, i)!;
      if (!index.has(ruleName)) index.set(ruleName, i);
    }
    byName.set(rules, index);
  }
  return index.get(name) ?? -1;
}

export function relaySocketRecord(c: RelayedConnection, rule: number, generation: number): Buffer {
  const comm = Buffer.alloc(16);
  comm.write(c.owner?.comm ?? "", 0, 15, "utf8");
  const owner = ownerCodec.encode({
    cgroup_id: c.owner?.cgroupId ?? 0n,
    exe_ino: c.owner?.exeIno ?? 0n,
    exe_dev: c.owner?.exeDev ?? 0,
    exe_gen: c.owner?.exeGen ?? 0,
    pid: c.owner?.pid ?? 0,
    uid: c.owner?.uid ?? 0,
    comm,
  });
  return sockCodec.encode({
    owner,
    rule,
    generation,
    verdict: EventType[c.verdict],
    protocol: 6,
    port: c.to.port,
    redirect: 0,
    ifindex: 0,
    post_route: PostRoute.reported | PostRoute.relayed,
    quic: 0,
    target_port: 0,
    addr: mappedAddress(c.to.ip),
    target: Buffer.alloc(16),
  });
}
