// Cutting tracked connections by the rule that let them through: a local decision that expires
// takes its open connections with it. Each TCP or UDP connection whose conntrack entry names the
// rule has its local socket destroyed (SOCK_DESTROY, as the post-route check's blocked sockets
// are): a TCP peer gets a reset, the local application ECONNABORTED. A connection whose socket is
// not in this network namespace (routed through the host) is left to the kernel, which judges
// its next packet by the new policy (docs/datapath.md, "Reload").
import { native } from "./addon.ts";
import { mappedAddress } from "./address.ts";
import type { ConntrackEntry } from "./conntrack.ts";
import type { NativeAddon } from "./native.d.ts";

export interface CutReport {
  /** Connections the rule decided. */
  matched: number;
  /** Their sockets destroyed. */
  destroyed: number;
  errors: string[];
}

/** TCP states of a connection that is over or closing: nothing left to cut. */
const ENDING = new Set(["timeWait", "closed"]);

/** The open TCP and UDP connections among `entries` that `decided(entry)` names, to cut later. */
export function connectionsOf(
  entries: Iterable<ConntrackEntry>,
  decided: (entry: ConntrackEntry) => boolean,
): ConntrackEntry[] {
  const out: ConntrackEntry[] = [];
  for (const e of entries) {
    if (e.protocol !== 6 && e.protocol !== 17) continue;
    if (e.protocol === 6 && ENDING.has(e.tcpState)) continue;
    if (decided(e)) out.push(e);
  }
  return out;
}

/** Destroys the local sockets of `connections` (connectionsOf's). */
export function cutConnections(
  connections: ConntrackEntry[],
  addon: () => Pick<NativeAddon, "sockDestroy"> = native,
): CutReport {
  const report: CutReport = { matched: connections.length, destroyed: 0, errors: [] };
  for (const e of connections) {
    const tuple = {
      family: e.family,
      protocol: e.protocol,
      local: mappedAddress(e.local.ip),
      localPort: e.local.port,
      remote: mappedAddress(e.remote.ip),
      remotePort: e.remote.port,
    };
    try {
      // a socket bound to a device is found only with it
      if (addon().sockDestroy(tuple) || addon().sockDestroy({ ...tuple, ifindex: e.ifindex }))
        report.destroyed++;
    } catch (err) {
      report.errors.push((err as Error).message);
    }
  }
  return report;
}
