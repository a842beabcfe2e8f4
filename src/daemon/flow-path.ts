// The flow path: every judged connection leaves flow records (docs/observability.md, "Flow
// records"). Close records come from the event path; every `intervalMs` the connection table is
// scanned (what long connections did since their last record, and the ends of entries that
// expired or went away), and the window's records, added up, go to the history as "flow"
// summaries and its roll-ups.
import type { KernelOwner, ProcessFacts } from "../attribution/index.ts";
import {
  conntrackExpired,
  CtFlag,
  decodeOwner,
  protocolName,
  type ConntrackEntry,
  type MoatEvent,
} from "../datapath/index.ts";
import {
  FlowAggregator,
  FlowLedger,
  type FlowConnection,
  type FlowCounters,
  type FlowSummary,
  type LiveConnection,
} from "../observe/index.ts";

export const DEFAULT_FLOW_INTERVAL_MS = 60_000;

export interface FlowPathOptions {
  /** The connection table, read once a window. */
  conntrack: () => Iterable<ConntrackEntry>;
  /** A rule's name by index and generation. */
  rule: (index: number, generation: number) => string | undefined;
  interfaceName: (ifindex: number) => string | null;
  process: (owner: KernelOwner) => ProcessFacts;
  names?: (owner: KernelOwner, ip: string) => string[];
  /** Where a window's summaries go (the history); null: nowhere (they are still counted). */
  store: ((summaries: FlowSummary[]) => Promise<void>) | null;
  intervalMs?: number;
  log: (line: string) => void;
}

export interface FlowPath {
  /** A close record from the event path. */
  closed(event: MoatEvent): void;
  /** Scans the table and stores the window now (the timer does it every interval). */
  flush(): Promise<void>;
  /** Flow records and bytes by verdict since start (metrics). */
  counters(): FlowCounters;
  /** Stops the timer and stores the last window. */
  close(): Promise<void>;
}

export function startFlowPath(options: FlowPathOptions): FlowPath {
  const aggregator = new FlowAggregator();
  const ledger = new FlowLedger((r) => aggregator.add(r));
  let warned = false;
  const flush = async () => {
    try {
      ledger.scan(liveConnections(options.conntrack(), options));
    } catch (err) {
      if (!warned)
        options.log(
          `warning: flow records: the connection table could not be read: ${(err as Error).message}`,
        );
      warned = true;
    }
    const summaries = aggregator.flush();
    if (!summaries.length || !options.store) return;
    await options
      .store(summaries)
      .catch((err: Error) => options.log(`warning: flow records were not kept: ${err.message}`));
  };
  const timer = setInterval(() => void flush(), options.intervalMs ?? DEFAULT_FLOW_INTERVAL_MS);
  timer.unref();
  return {
    closed: (event) => ledger.closed(event),
    flush,
    counters: () => aggregator.counters,
    async close() {
      clearInterval(timer);
      await flush();
    },
  };
}

const HOOK_OF = { ingress: "xdp", egress: "tc" } as const;

/** The table's entries as the ledger reads them; an entry's facts are read only when asked. */
function* liveConnections(
  entries: Iterable<ConntrackEntry>,
  o: Pick<FlowPathOptions, "rule" | "interfaceName" | "process" | "names">,
): Generator<LiveConnection> {
  const now = process.hrtime.bigint();
  // a process's connections read /proc once a scan
  const owners = new Map<string, ProcessFacts>();
  const facts = {
    ...o,
    process: (owner: KernelOwner) => {
      const key = `${owner.pid}/${owner.cgroupId}/${owner.comm}`;
      let p = owners.get(key);
      if (!p) owners.set(key, (p = o.process(owner)));
      return p;
    },
  };
  for (const e of entries) {
    if (e.id === 0n) continue;
    yield {
      id: e.id.toString(16),
      closeSent: (e.flags & CtFlag.closeSent) !== 0,
      expired: conntrackExpired(e, now),
      packets: Number(e.packets.initiator + e.packets.responder),
      bytes: Number(e.bytes.initiator + e.bytes.responder),
      durationMs: Number((e.lastNs - e.createdNs) / 1000n) / 1000,
      connection: () => connectionOf(e, facts),
    };
  }
}

function connectionOf(
  e: ConntrackEntry,
  o: Pick<FlowPathOptions, "rule" | "interfaceName" | "process" | "names">,
): FlowConnection {
  const owner = decodeOwner(e.value.owner);
  const remote: FlowConnection["remote"] = { ...e.remote };
  const names = owner && o.names?.(owner, remote.ip);
  if (names?.length) remote.names = names;
  return {
    mode: e.mode,
    rule: o.rule(e.rule, e.generation) ?? `#${e.rule}`,
    direction: e.direction,
    protocol: protocolName(e.protocol),
    local: { ...e.local },
    remote,
    interface: e.ifindex ? o.interfaceName(e.ifindex) : null,
    process: owner ? o.process(owner) : null,
    verdict: e.verdict,
    hook: HOOK_OF[e.direction],
    generation: e.generation,
  };
}
