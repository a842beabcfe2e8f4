// Cutting a connection an ids signature matched under ids.mode prevent (docs/policy.md, "ids"):
// its local socket (if it is on this host) is destroyed, so a TCP peer gets a reset and the
// application ECONNABORTED, then its conntrack entry is turned to blocked, so the packet hooks
// drop what follows (a forwarded connection, a peer that keeps sending). The bytes that matched were already delivered: this is after the fact.
import { ct as ctCodec, ctKey, CtFlag, EventType, Mode, TcpState } from "./abi.ts";
import { mappedAddress } from "./address.ts";
import { conntrackTimeoutS } from "./conntrack.ts";
import type { IdsCopy } from "./ids-record.ts";
import type { BpfMap, NativeAddon } from "./native.d.ts";

export interface IdsCut {
  /** The conntrack entry now blocks the connection's packets. */
  blocked: boolean;
  /** The local socket was destroyed. */
  destroyed: boolean;
}

/** The normalized conntrack key of a connection (bpf/include/conntrack.h, ct_key). */
export function conntrackKey(
  copy: Pick<IdsCopy, "local" | "remote" | "family" | "protocol">,
): Buffer {
  const a = mappedAddress(copy.local.ip);
  const b = mappedAddress(copy.remote.ip);
  const after = (() => {
    for (const at of [0, 8]) {
      const x = a.readBigUInt64LE(at);
      const y = b.readBigUInt64LE(at);
      if (x !== y) return x > y;
    }
    return copy.local.port > copy.remote.port;
  })();
  const [addr0, port0, addr1, port1] = after
    ? [b, copy.remote.port, a, copy.local.port]
    : [a, copy.local.port, b, copy.remote.port];
  return ctKey.encode({
    addr0,
    addr1,
    port0,
    port1,
    family: copy.family,
    protocol: copy.protocol === "udp" ? 17 : 6,
  });
}

export function cutIdsConnection(
  conntrack: Pick<BpfMap, "lookup" | "update">,
  copy: IdsCopy,
  addon: Pick<NativeAddon, "sockDestroy">,
): IdsCut {
  // the socket first: its reset must leave before the entry blocks the connection's packets
  const tuple = {
    family: copy.family,
    protocol: copy.protocol === "udp" ? 17 : 6,
    local: mappedAddress(copy.local.ip),
    localPort: copy.local.port,
    remote: mappedAddress(copy.remote.ip),
    remotePort: copy.remote.port,
  };
  let destroyed = false;
  try {
    destroyed = addon.sockDestroy(tuple) || addon.sockDestroy({ ...tuple, ifindex: copy.ifindex });
  } catch {
    destroyed = false;
  }
  const key = conntrackKey(copy);
  let blocked = false;
  const value = conntrack.lookup(key);
  if (value) {
    const entry = ctCodec.decode(value);
    // the same entry (not a later connection on the same tuple)
    if (entry.id === copy.connId) {
      // flagged, so a re-judging after a reload keeps it blocked
      const flags = entry.flags | CtFlag.idsCut;
      ctCodec.encode({ ...entry, verdict: EventType.blocked, mode: Mode.prevent, flags }, value);
      conntrack.update(key, value);
      blocked = true;
    }
  }
  return { blocked, destroyed };
}

/** What the connection table says now of the connection of an ids copy. */
export interface IdsConnection {
  /** CLOCK_MONOTONIC ns of its first packet. */
  createdNs: bigint;
  /**
   * The kernel may still copy bytes of it: its entry is in use (not closed, not idle past its
   * timeout) and not past its copies (MOAT_CT_IDS_DONE).
   */
  copying: boolean;
}

const CLOSED = new Set<number>([TcpState.timeWait, TcpState.closed]);
const stateName = (value: number): keyof typeof TcpState =>
  (Object.entries(TcpState).find(([, v]) => v === value)?.[0] ?? "none") as keyof typeof TcpState;

/**
 * The connection of `copy` in the table at `nowNs` (CLOCK_MONOTONIC), or null when its entry is
 * gone (or belongs to a later connection on the same addresses and ports).
 */
export function idsConnection(
  conntrack: Pick<BpfMap, "lookup">,
  copy: Pick<IdsCopy, "local" | "remote" | "family" | "protocol" | "connId">,
  nowNs: bigint,
): IdsConnection | null {
  const value = conntrack.lookup(conntrackKey(copy));
  if (!value) return null;
  const e = ctCodec.decode(value);
  if (e.id !== copy.connId) return null;
  const tcp = copy.protocol === "tcp";
  const timeout = conntrackTimeoutS({
    protocol: tcp ? 6 : 17,
    tcpState: stateName(e.tcp_state),
    flags: e.flags,
  });
  const idle = nowNs > e.last_ns && nowNs - e.last_ns > BigInt(timeout) * 1_000_000_000n;
  const closed = tcp && CLOSED.has(e.tcp_state);
  return {
    createdNs: e.created_ns,
    // a cut connection stays established in the table (its tuple blocked) but copies nothing
    copying: !idle && !closed && (e.flags & (CtFlag.idsDone | CtFlag.idsCut)) === 0,
  };
}
