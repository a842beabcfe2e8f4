// MoatSnapshot from the live datapath and the daemon's state: what status, /metrics and
// OpenTelemetry metrics all read, so they never disagree.
import type { Counters } from "../datapath/datapath.ts";
import type { Attachment } from "../datapath/datapath.ts";
import type { RuleCounter } from "../datapath/policy-maps.ts";
import type { EventPipeline } from "./pipeline.ts";
import type { MoatSnapshot, SnapshotSource } from "./sink.ts";

/** The parts of Datapath a snapshot reads (tests pass a fake). */
export interface SnapshotDatapath {
  readonly attachments: readonly Attachment[];
  readonly generation: number;
  counters(): Counters;
  ruleCounters(): { generation: number; rules: RuleCounter[] };
  /** Connections the table is sized for. */
  readonly conntrackCapacity: number;
  /** Connections tracked now. */
  conntrackEntries(): number;
  /** The SYN flood defence's counts (absent in fakes). */
  floodCounters?(): Record<string, bigint>;
}

export interface SnapshotState {
  mode(): MoatSnapshot["mode"];
  policyPath: string;
  policyHash(): string;
  reloads: { ok: number; refused: number };
  /** The host's warnings for the running policy (see MoatSnapshot.warnings). */
  warnings?(): string[];
  /** Flow records and bytes by verdict (the daemon's flow path). */
  flows?(): NonNullable<MoatSnapshot["flows"]>;
  /** The ids signatures' matching (the daemon's ids path). */
  ids?(): NonNullable<MoatSnapshot["ids"]>;
  /** The URL feeds' failed fetches (the daemon's feed fetcher). */
  feeds?(): NonNullable<MoatSnapshot["feeds"]>;
}

/** A snapshot taken more often than this reuses the last count (a walk where the kernel keeps none). */
const CONNTRACK_COUNT_MS = 1000;

export function snapshotSource(
  datapath: SnapshotDatapath,
  state: SnapshotState,
  pipeline: EventPipeline,
): SnapshotSource {
  let counted = { at: -Infinity, entries: 0 };
  const conntrackEntries = () => {
    const now = performance.now();
    if (now - counted.at >= CONNTRACK_COUNT_MS)
      counted = { at: now, entries: datapath.conntrackEntries() };
    return counted.entries;
  };
  return () => {
    const counters = datapath.counters();
    return {
      mode: state.mode(),
      policyPath: state.policyPath,
      policyHash: state.policyHash(),
      generation: datapath.generation,
      reloads: { ...state.reloads },
      attached: datapath.attachments.map((a) => ({
        interface: a.interface,
        hook: a.hook,
        mode: a.mode,
        ...(a.why ? { why: a.why } : {}),
      })),
      counters,
      rules: datapath.ruleCounters().rules.map((r, i, all) => ({
        name: ruleName(r.name, all.length - i),
        packets: r.packets,
        bytes: r.bytes,
        connections: r.connections,
      })),
      events: { ...pipeline.events },
      ringLost: counters.eventLost.packets,
      conntrack: { entries: conntrackEntries(), capacity: datapath.conntrackCapacity },
      sinks: pipeline.stats(),
      warnings: state.warnings?.() ?? [],
      ...(state.flows ? { flows: structuredClone(state.flows()) } : {}),
      ...(datapath.floodCounters ? { flood: datapath.floodCounters() } : {}),
      ...(state.ids ? { ids: state.ids() } : {}),
      ...(state.feeds ? { feeds: state.feeds() } : {}),
    };
  };
}

/**
 * The default pseudo-rules are the last two (ingress, then egress), both "default" in events; here
 * each is named for the policy key that decides it, so status and metrics tell them apart.
 */
function ruleName(name: string, fromEnd: number): string {
  if (name !== "default" || fromEnd > 2) return name;
  return fromEnd === 2 ? "defaults.ingress" : "defaults.egress";
}
