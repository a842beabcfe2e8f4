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
  kernelMonotonicNs,
  protocolName,
  type ConntrackCounts,
  type ConntrackEntry,
  type MoatEvent,
} from "../datapath/index.ts";
import {
  FlowAggregator,
  FlowLedger,
  type FlowConnection,
  type FlowCounters,
  type FlowRecord,
  type FlowSummary,
  type LiveConnection,
} from "../observe/index.ts";

export const DEFAULT_FLOW_INTERVAL_MS = 60_000;

export interface FlowPathOptions {
  /** The connection table's counters, a page at a time, read once a window. */
  conntrack: () => Iterable<ConntrackCounts[]>;
  /** A rule's name by index and generation. */
  rule: (index: number, generation: number) => string | undefined;
  interfaceName: (ifindex: number) => string | null;
  /** The hook judging an interface's incoming packets (attach.interfaces); XDP if not said. */
  ingressHook?: (ifindex: number) => "xdp" | "tc";
  process: (owner: KernelOwner) => ProcessFacts;
  names?: (owner: KernelOwner, ip: string) => string[];
  /** Where a window's summaries go (the history); null: nowhere (they are still counted). */
  store: ((summaries: FlowSummary[]) => Promise<void>) | null;
  /** Every flow record as it is made (the anomaly detectors). */
  record?: (r: FlowRecord) => void;
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
  const record = options.record;
  const ledger = new FlowLedger(
    record
      ? (r) => {
          aggregator.add(r);
          record(r);
        }
      : (r) => aggregator.add(r),
  );
  let warned = false;
  let closing = false;
  const unreadable = (err: unknown) => {
    // a scan the stop cut short (the table is gone) is not worth a warning
    if (!warned && !closing)
      options.log(
        `warning: flow records: the connection table could not be read: ${(err as Error).message}`,
      );
    warned = true;
  };
  let storeFailing = false;
  const store = async () => {
    const summaries = aggregator.flush();
    if (!summaries.length || !options.store) return;
    // said once while the store keeps failing (a history that could not open says why itself)
    await options.store(summaries).then(
      () => (storeFailing = false),
      (err: Error) => {
        if (!storeFailing) options.log(`warning: flow records were not kept: ${err.message}`);
        storeFailing = true;
      },
    );
  };
  const flush = async () => {
    await scanTable(ledger, options.conntrack(), options).catch(unreadable);
    await store();
  };
  // one flush at a time: a scan of a large table spans event-loop turns
  let running: Promise<void> | null = null;
  const once = () =>
    (running ??= flush().finally(() => {
      running = null;
    }));
  const timer = setInterval(() => void once(), options.intervalMs ?? DEFAULT_FLOW_INTERVAL_MS);
  timer.unref();
  return {
    closed: (event) => ledger.closed(event),
    flush: once,
    counters: () => aggregator.counters,
    close() {
      clearInterval(timer);
      closing = true;
      // the last window: the table is read now, in this turn, before the caller stops the
      // datapath (a scan under way finishes with what it read)
      if (!running) {
        try {
          scanTableNow(ledger, options.conntrack(), options);
        } catch (err) {
          unreadable(err);
        }
      }
      return Promise.resolve(running).then(store);
    },
  };
}

/**
 * One pass of the ledger over the table, a page per event-loop turn (a full table of 65,536
 * entries is 256 pages of 256): an entry is decoded, and its process read, only when the ledger meets a
 * connection it has not seen.
 */
async function scanTable(
  ledger: FlowLedger,
  pages: Iterable<ConntrackCounts[]>,
  o: Pick<FlowPathOptions, "rule" | "interfaceName" | "ingressHook" | "process" | "names">,
): Promise<void> {
  const now = Number(kernelMonotonicNs());
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
  const pass = ledger.startScan();
  for (const page of pages) {
    pass.see(live(page, now, facts));
    await new Promise((resolve) => setImmediate(resolve));
  }
  pass.end();
}

/** The same pass in one go (at stop: the table is gone after this turn). */
function scanTableNow(
  ledger: FlowLedger,
  pages: Iterable<ConntrackCounts[]>,
  o: Pick<FlowPathOptions, "rule" | "interfaceName" | "ingressHook" | "process" | "names">,
): void {
  const now = Number(kernelMonotonicNs());
  const pass = ledger.startScan();
  for (const page of pages) pass.see(live(page, now, o));
  pass.end();
}

function* live(
  page: ConntrackCounts[],
  now: number,
  facts: Pick<FlowPathOptions, "rule" | "interfaceName" | "ingressHook" | "process" | "names">,
): Generator<LiveConnection> {
  for (const e of page) {
    if (e.id === "0") continue;
    yield {
      id: e.id,
      closeSent: (e.flags & CtFlag.closeSent) !== 0,
      expired: conntrackExpired(e, now),
      packets: e.packets,
      bytes: e.bytes,
      durationMs: (e.lastNs - e.createdNs) / 1e6,
      connection: () => connectionOf(e.decode(), facts),
    };
  }
}

function connectionOf(
  e: ConntrackEntry,
  o: Pick<FlowPathOptions, "rule" | "interfaceName" | "ingressHook" | "process" | "names">,
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
    hook: e.direction === "egress" ? "tc" : (o.ingressHook?.(e.ifindex) ?? "xdp"),
    generation: e.generation,
  };
}
