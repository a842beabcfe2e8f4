// The contract between the event pipeline and the places events go (audit log, history,
// API subscribers, OpenTelemetry, webhooks, NATS). The pipeline gives every sink its own
// bounded queue, so a slow or dead sink never slows the datapath or another sink.
import type { MoatEvent } from "../datapath/event.ts";
import type { CounterName } from "../datapath/abi.ts";
import type { Notice } from "./notice.ts";

export interface EventSink {
  /** Shown in status, metrics and drop reports ("audit", "history", "otel", "nats", ...). */
  readonly name: string;
  /**
   * Delivers a batch, in order. The pipeline does not call write() again for this sink until
   * the returned promise settles (batchesInFlight: until fewer than that many are unsettled); a
   * rejection is counted as a failed batch and the sink keeps receiving later events.
   */
  write(batch: readonly MoatEvent[]): void | Promise<void>;
  /**
   * Batches the pipeline may hand over before the first of them is written (default 1: the next
   * batch waits for the last one's write() to settle). A sink that passes batches to another
   * thread, which writes them in the order given, takes several, so that thread never waits for
   * the daemon's between two batches. Events in flight count as queued against the capacity.
   */
  readonly batchesInFlight?: number;
  /**
   * For a sink that passes events on to many receivers (the API's live subscribers): the
   * (event, receiver) pairs it sent and skipped. Its stats then show these as `delivered` and
   * add them to `dropped`.
   */
  fanout?(): { delivered: number; dropped: number };
  /**
   * For a sink that also writes outside write() (the audit log's summary lines, written by a
   * timer, and its notes): those writes that failed. Its stats add them to `failed`.
   */
  failures?(): number;
  /**
   * Told at once (not queued behind events) of a notice: events lost in the kernel. Rare (one
   * per loss report at most); a sink without it is not told.
   */
  notice?(notice: Notice): void;
  /** Flushes what it can and releases its resources. */
  close(): void | Promise<void>;
}

/** Per-sink accounting, as the pipeline counts it. */
export interface SinkStats {
  name: string;
  delivered: number;
  /**
   * Events dropped: the sink's queue was full, or the sink was removed (reload, stop) before
   * they were handed to it.
   */
  dropped: number;
  /** Writes that failed: batches whose write() threw or rejected, and those of failures(). */
  failed: number;
  /** Events of the batches whose write() threw or rejected: lost to this sink. */
  lost: number;
  queued: number;
}

export interface RuleStats {
  name: string;
  packets: bigint;
  bytes: bigint;
  connections: bigint;
}

/**
 * What the daemon knows about itself at one moment: read by the API's status, Prometheus
 * /metrics and OpenTelemetry metrics alike, so the three never disagree.
 */
export interface MoatSnapshot {
  mode: "detect" | "prevent";
  policyPath: string;
  /** sha256 of the policy file's bytes, hex. */
  policyHash: string;
  generation: number;
  reloads: { ok: number; refused: number };
  /** why: for an ingress hook, why it judges the interface ("auto: veth -> tc", "ingress: xdp") */
  attached: { interface: string; hook: string; mode: string; why?: string }[];
  /** Kernel packet counters summed over CPUs (Counter in src/datapath/abi.ts). */
  counters: Record<CounterName, { packets: bigint; bytes: bigint }>;
  rules: RuleStats[];
  /** Events by type since start, counted as the pipeline received them. */
  events: Record<Exclude<MoatEvent["type"], "flow">, number>;
  /** Ring-buffer records the kernel could not deliver (counters.eventLost.packets). */
  ringLost: bigint;
  conntrack: { entries: number; capacity: number };
  sinks: SinkStats[];
  /**
   * What on this host keeps moat from seeing what the running policy needs (name services whose
   * lookups lose the asking process, when the policy uses names), each with its remedy.
   */
  warnings?: string[];
  /**
   * The SYN flood defence's kernel counts since load (docs/policy.md, "flood"): SYNs to defended
   * ports, over the rate, answered with moat's cookies, cookies checked, handed to listeners.
   */
  flood?: Record<string, bigint>;
  /** The ids signatures since start (docs/policy.md, "ids"). */
  ids?: {
    /** Copies read from the kernel. */
    copies: number;
    /**
     * Flow directions given up: bytes went by unread (a copy the ring had no room for, a budget
     * spent, a flow let go while its connection could still send, or begun before the path read).
     */
    gaps: number;
    /** Flow directions with another version of bytes already copied. */
    overlaps: number;
    /** Flow directions with more than one urgent byte. */
    urgent: number;
    /** Signature matches reported, as detected and as blocked (cut). */
    detected: number;
    blocked: number;
  };
  /** Flow records and their bytes by verdict since start (docs/observability.md). */
  flows?: Record<"allowed" | "blocked" | "detected", { records: number; bytes: number }>;
  /** The running policy's URL feeds and their failed fetches since start. */
  feeds?: FeedFetches[];
}

/** A URL feed's failed fetches: while it fails, its last good list stays in force. */
export interface FeedFetches {
  /** The feed's set name. */
  name: string;
  /** Failed fetches since the daemon started. */
  failures: number;
  /** ISO time of the first failure since the last good fetch; absent: the last fetch was good. */
  failingSince?: string;
  /** Why the last failed fetch failed, and when (ISO time); kept after a good fetch. */
  lastError?: string;
  lastErrorAt?: string;
}

export type SnapshotSource = () => MoatSnapshot;
