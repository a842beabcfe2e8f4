// The daemon's side of moat's L7 relay (docs/l7.md): opened at start, before the first policy is
// compiled (the compiler sends the connections L7 rules may match to its port), judging with the
// running policy, naming remote addresses through the DNS proxy's bindings, and reporting its
// decisions through the event pipeline, as the DNS proxy does.
import type { KernelOwner, ProcessFacts } from "../attribution/index.ts";
import type { PolicyModel } from "../config/index.ts";
import type { MoatEvent, OriginalDestination, SocketAddress } from "../datapath/index.ts";
import { L7Relay, type L7RelayOptions } from "../l7/index.ts";
import type { PolicyCompileOptions } from "../policy/index.ts";
import type { UpstreamConnect } from "./l7-upstream.ts";

export interface L7RelayWiring {
  original: (peer: SocketAddress) => OriginalDestination | null;
  process: (owner: KernelOwner) => ProcessFacts;
  names: (owner: KernelOwner, ip: string) => string[];
  policy: () => PolicyModel | null;
  generation: () => number;
  report: (event: MoatEvent) => void;
  log: (line: string) => void;
  /** Connects upstream through moat's hooks as the relay decided (./l7-upstream.ts). */
  connectUpstream: UpstreamConnect;
  /** Hands a decided connection's two sockets to the kernel (the datapath's splice). */
  splice: NonNullable<L7RelayOptions["splice"]>;
}

export interface DaemonL7Relay {
  relay: L7Relay | null;
  /** `l7Relay` for the compiler when the relay listens. */
  compileOptions: PolicyCompileOptions;
  close(): void;
}

/** Opens the relay; one that cannot listen is logged, and L7 rules then match nothing. */
export async function openL7Relay(w: L7RelayWiring): Promise<DaemonL7Relay> {
  try {
    const relay = await L7Relay.open(w);
    // one target for both families: the kernel sends an IPv6 socket to ::ffff:127.0.0.1, which
    // also serves an IPv6 socket connecting to an IPv4 address; the relay judges each connection
    // in its own family (docs/l7.md)
    const at = relay.addressFor(4);
    if (!at) {
      relay.close();
      throw new Error("no IPv4 loopback");
    }
    w.log(`l7 relay: listening on ${at.ip}:${at.port}`);
    return { relay, compileOptions: { l7Relay: at }, close: () => relay.close() };
  } catch (err) {
    w.log(`warning: moat's L7 relay cannot listen: ${(err as Error).message}`);
    return { relay: null, compileOptions: {}, close: () => {} };
  }
}
