// Decodes the kernel's copies of flows' first bytes for the ids signatures (struct
// moat_ids_record, bpf/include/ids.h): the flow, its decision and owner, where the bytes sit in
// their direction, the bytes.
import { EventType, Hook, IdsConst, idsRecord, RULE_NONE } from "./abi.ts";
import { formatAddress } from "./address.ts";
import { decodeOwner } from "./events.ts";
import type { KernelOwner } from "../attribution/index.ts";

export interface IdsCopy {
  /** ns since boot. */
  tsNs: bigint;
  /** The conntrack entry's id: one flow's copies share it. */
  connId: bigint;
  family: 4 | 6;
  protocol: "tcp" | "udp";
  /** The connection's direction: who opened it. */
  direction: "ingress" | "egress";
  /** Sent by the side that opened the connection. */
  toServer: boolean;
  local: { ip: string; port: number };
  remote: { ip: string; port: number };
  /** The deciding rule's index in `generation` (null: none). */
  rule: number | null;
  generation: number;
  verdict: "allowed" | "blocked" | "detected";
  ifindex: number;
  /** The hook that copied the bytes. */
  hook: "xdp" | "tc";
  owner: KernelOwner | null;
  /** Where data[0] is in the direction's bytes. */
  offset: number;
  data: Buffer;
  /** The direction's first copy. */
  first: boolean;
  /**
   * No bytes: some of the direction went by uncopied (a full ring, a budget spent, an urgent
   * pointer not read, bytes its receiver acknowledged that were not seen); nothing more comes.
   */
  lost: boolean;
  /** TCP URG: the place in the direction's bytes of the byte the receiver takes out (null: none). */
  urgent: number | null;
}

export function decodeIdsCopy(record: Buffer): IdsCopy {
  // a record is the header and its bytes, `len` of them the copy's (a short copy's record has a
  // fixed size, bpf/include/ids.h): the codec reads a whole struct
  const whole = Buffer.alloc(idsRecord.size);
  record.copy(whole, 0, 0, Math.min(record.length, whole.length));
  const r = idsRecord.decode(whole);
  const family = r.family === 4 ? 4 : 6;
  const len = Math.min(r.len, Math.max(0, record.length - IdsConst.header));
  return {
    tsNs: r.ts_ns,
    connId: r.conn_id,
    family,
    protocol: r.protocol === 17 ? "udp" : "tcp",
    direction: r.direction === 0 ? "ingress" : "egress",
    toServer: r.to_server === 1,
    local: { ip: formatAddress(r.local, family), port: r.local_port },
    remote: { ip: formatAddress(r.remote, family), port: r.remote_port },
    rule: r.rule === RULE_NONE ? null : r.rule,
    generation: r.generation,
    verdict:
      r.verdict === EventType.detected
        ? "detected"
        : r.verdict === EventType.blocked
          ? "blocked"
          : "allowed",
    ifindex: r.ifindex,
    hook: r.hook === Hook.xdpIngress ? "xdp" : "tc",
    owner: decodeOwner(r.owner),
    offset: r.offset,
    data: Buffer.from(whole.subarray(IdsConst.header, IdsConst.header + len)),
    first: (r.flags & IdsConst.first) !== 0,
    lost: (r.flags & IdsConst.lost) !== 0,
    urgent: r.flags & IdsConst.urgent && r.urgent > 0 ? r.urgent - 1 : null,
  };
}
