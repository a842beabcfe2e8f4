// Decodes the kernel's copies of a QUIC flow's first datagrams (struct moat_quic_initial,
// bpf/include/quic.h): the flow, the socket record's decision and owner, the UDP payload.
import { EventType, quicInitial, RULE_NONE } from "./abi.ts";
import { formatAddress } from "./address.ts";
import { decodeOwner } from "./events.ts";
import type { KernelOwner } from "../attribution/index.ts";

export interface QuicDatagram {
  /** ns since boot. */
  tsNs: bigint;
  /** The socket's cookie: one flow's datagrams share it. */
  cookie: bigint;
  local: { ip: string; port: number };
  remote: { ip: string; port: number };
  /** The rule index in `generation` that judged the socket at connect()/sendmsg(); null: none. */
  rule: number | null;
  generation: number;
  verdict: "allowed" | "blocked" | "detected";
  owner: KernelOwner | null;
  /** The UDP payload (a copy). */
  data: Buffer;
}

export function decodeQuicInitial(record: Buffer): QuicDatagram {
  const q = quicInitial.decode(record);
  const len = Math.min(q.len, q.data.length);
  return {
    tsNs: q.ts_ns,
    cookie: q.cookie,
    local: { ip: formatAddress(q.local, q.family), port: q.local_port },
    remote: { ip: formatAddress(q.remote, q.family), port: q.remote_port },
    rule: q.rule === RULE_NONE ? null : q.rule,
    generation: q.generation,
    verdict:
      q.verdict === EventType.detected
        ? "detected"
        : q.verdict === EventType.blocked
          ? "blocked"
          : "allowed",
    owner: decodeOwner(q.owner),
    data: Buffer.from(q.data.subarray(0, len)),
  };
}
