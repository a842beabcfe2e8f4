// The compiled form of a policy's L3/L4 rules: lookup tables the kernel walks with a fixed
// number of map lookups, whatever the number of rules (docs/classifier.md). Produced by
// compile(), handed to src/datapath inside a PolicyImage (kernel-image.ts), and walked in TS by
// lookupImage() so the compiler can be tested against the reference evaluator without a kernel.

import type { LimitParams } from "../rate-limit.ts";

/** "No rule" in the rule-valued tables. */
export const RULE_NONE = 0xffffffff;

/** Protocol slots of the port-class table: tcp 0, udp 1, icmp 2, icmpv6 3, other 4. */
export const PROTO_SLOTS = 5;
export const PORT_CLASS_SIZE = 2 * PROTO_SLOTS * 65536;
export const SPORT_CLASS_SIZE = 65537;

export const DIRECTION_INDEX = { ingress: 0, egress: 1 } as const;

/**
 * Index into portClass: direction, protocol slot and the "port value":
 * tcp/udp -> server (destination) port; icmp/icmpv6 -> type << 8 | code; other -> protocol number.
 */
export function portIndex(dir: number, slot: number, value: number): number {
  return ((dir * PROTO_SLOTS + slot) << 16) | value;
}

/** Index into sportClass: 0 for protocols without ports, 1 + client port for tcp/udp. */
export function sportIndex(ported: boolean, clientPort: number): number {
  return ported ? 1 + clientPort : 0;
}

/** An IPv4 address directory (dir4.ts builds and describes it). */
export interface Dir4 {
  /** 2 * length words: entry i is words[2i] (low) and words[2i+1] (high). */
  words: Uint32Array;
  length: number;
}

export interface LpmEntry {
  prefixlen: number;
  /** Network order, 4 or 16 bytes. May be a view into a buffer shared by a trie's entries. */
  addr: Uint8Array;
  /** Class id (> 0; a miss is class 0). */
  cls: number;
}

export interface ImageRule {
  /** Rule name, or "default" for the two default pseudo-rules. */
  name: string;
  action: "allow" | "block";
  /** Effective mode (rule's own, else the policy's). */
  mode: "detect" | "prevent";
  /** Report allowed matches too (blocks and detections are always reported). */
  log: boolean;
  /** TCP connections allowed by this rule are reset after this many seconds; 0 = never. */
  maxDurationSeconds: number;
  /**
   * The rule judges DNS queries by name (layer7.dns.name): at connect() its match means "moat's
   * DNS proxy decides" (the connection is let through, to be redirected to the proxy); the packet
   * hooks never find it (MOAT_RULE_LAYER7).
   */
  layer7?: boolean;
  /** The rule's rate limit (bpf/include/ratelimit.h; absent: none). */
  limit?: ImageLimit;
  /** Events of this rule's verdicts say this reason instead of "new" (dns:doh: "doh", l7:quic: "quic"). */
  reason?: "doh" | "quic";
}

/** struct moat_limit: a rule's rate limit as the kernel reads it (src/policy/rate-limit.ts). */
export interface ImageLimit extends LimitParams {
  /** Stable while the rule's name and limit are: its sources' state survives a reload. */
  id: number;
  prefix4: number;
  prefix6: number;
  perPort: boolean;
}

export interface ClassifierImage {
  /** rules[0..ruleCount-1] are the policy's rules in order; then default ingress, default egress. */
  rules: ImageRule[];
  ruleCount: number;
  defaultRule: { ingress: number; egress: number };
  /** Socket hooks: decisions by this rule or later wait for the packet hooks (no local facts). */
  firstLocalRule: number;
  /**
   * The accept side (docs/socket-hooks.md): XDP passes a new ingress TCP connection undecided,
   * for the accept hook to judge with the listener's owner, when its packet-level rule is this one
   * or later (the first rule with a process section that judges ingress); ruleCount + 2 if none.
   */
  firstIngressProcessRule: number;
  /**
   * The accept hook judges by the socket image below this rule (the first rule that judges
   * ingress by client port, which the socket image replaces by process classes), by the packet
   * image from it; ruleCount + 2 if none.
   */
  firstIngressSportRule: number;
  /**
   * Basic networking that rules name (bit per class, network-basics.ts): judged like other
   * traffic; the other classes pass every hook unjudged.
   */
  basicsJudged: number;
  /**
   * failure.daemon: "allow" lets the hooks pass everything once the daemon's heartbeat is late
   * (bpf/include/heartbeat.h); absent or "enforce" keeps judging. The top image only.
   */
  daemonFailure?: "enforce" | "allow";
  /**
   * By direction: whether a prevent-mode block (a rule of that direction or `any`, or the default
   * in prevent) could decide a connection. A frame moat cannot read is dropped where one could,
   * so no such rule is bypassed by it. Absent: the default's mode decides.
   */
  dropUnreadable?: { ingress: boolean; egress: boolean };
  /**
   * scrub.mss: TCP SYN and SYN-ACK MSS options above these are lowered, by family (0: untouched).
   * The top image only.
   */
  mss?: { v4: number; v6: number };
  /** ids: bytes of each flow direction copied for the signatures, 1 in `sample` flows. */
  ids?: { bytes: number; sample: number };
  /** scrub's IP header normalisation (minTtl 0: untouched). The top image only. */
  ipScrub?: { minTtl: number; clearDf: boolean; randomIpId: boolean };
  /**
   * flood.syn: the defended ports (empty: every port as one), the SYN bucket (ns per SYN, SYNs
   * it holds), the hold after the last SYN over the rate, and the mode. The top image only.
   */
  synFlood?: { ports: number[]; periodNs: bigint; burst: number; holdNs: bigint; prevent: boolean };
  /** flood.udp_amplification: the source ports and their per-source limit. The top image only. */
  udpAmplification?: { ports: number[]; limit: ImageLimit; prevent: boolean };
  /** flood.icmp: ICMP longer than maxSize bytes. The top image only. */
  icmpFlood?: { maxSize: number; prevent: boolean };
  /** Remote / local address -> class: IPv4 by directory (dir4.ts), IPv6 by LPM (miss = 0). */
  remote4: Dir4;
  remote6: LpmEntry[];
  local4: Dir4;
  local6: LpmEntry[];
  /** Class counts: remote (nr), local (nl), client port (ns), port (np), X (nx), Y (ny). */
  nr: number;
  nl: number;
  ns: number;
  np: number;
  nx: number;
  ny: number;
  /** PORT_CLASS_SIZE entries: portIndex(...) -> port class. */
  portClass: Uint32Array;
  /** SPORT_CLASS_SIZE entries: sportIndex(...) -> client-port class. */
  sportClass: Uint32Array;
  /** nl * ns entries: lx[lclass * ns + sclass] -> X. */
  lx: Uint32Array;
  /** np * nx entries: px[pclass * nx + x] -> Y. */
  px: Uint32Array;
  /** Sparse (remote class, Y) -> first rule naming remote addresses that matches both. */
  remoteY: { r: Uint32Array; y: Uint32Array; rule: Uint32Array };
  /** ny entries: first rule without a remote constraint matching Y, or RULE_NONE. */
  anyRemote: Uint32Array;
  /**
   * nr * 2 entries, remoteOnly[rclass * 2 + dir]: first rule whose only constraints are the remote
   * address and the direction (so it matches every Y of that direction), or RULE_NONE. Keeps
   * block lists out of the (remote, Y) hash.
   */
  remoteOnly: Uint32Array;
}

/** What an image's packet tables are made from (datapath/table-maps.ts tableMaps). */
export type TableImage = Pick<
  ClassifierImage,
  | "remote4"
  | "remote6"
  | "local4"
  | "local6"
  | "portClass"
  | "sportClass"
  | "lx"
  | "px"
  | "remoteY"
  | "anyRemote"
  | "remoteOnly"
>;

/** `image`'s packet tables alone. */
export const tableImage = (image: ClassifierImage): TableImage => ({
  remote4: image.remote4,
  remote6: image.remote6,
  local4: image.local4,
  local6: image.local6,
  portClass: image.portClass,
  sportClass: image.sportClass,
  lx: image.lx,
  px: image.px,
  remoteY: image.remoteY,
  anyRemote: image.anyRemote,
  remoteOnly: image.remoteOnly,
});

/**
 * Kernel facts of a new connection, as the XDP/TC programs see them. IPv4-mapped IPv6 addresses
 * are IPv4. `portValue`/`ported` follow portIndex/sportIndex.
 */
export interface PacketFacts {
  direction: "ingress" | "egress";
  family: 4 | 6;
  protocol: number;
  remote: Uint8Array;
  local: Uint8Array;
  /** tcp/udp destination port; ignored otherwise. */
  serverPort: number;
  /** tcp/udp source port; ignored otherwise. */
  clientPort: number;
  icmpType: number;
  icmpCode: number;
  /** IPv6 hop limit (IPv4 TTL); absent = not 255 (basic networking, network-basics.ts). */
  hopLimit?: number;
}
