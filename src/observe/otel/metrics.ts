// OTel metrics: connections counted from events as they pass, everything else observed from
// the daemon's snapshot at each collection, so OTel, Prometheus and the API's status agree.
import type { Attributes } from "@opentelemetry/api";
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-proto";
import type { Resource } from "@opentelemetry/resources";
import { MeterProvider, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";
import type { MoatEvent } from "../../datapath/event.ts";
import type { SnapshotSource } from "../sink.ts";

/** Events about packets of a connection judged before, or about an attack: no new connection. */
const REPORTS = new Set<MoatEvent["reason"]>([
  "rejudged",
  "max_duration",
  "rate_limit",
  "tcp_flags",
  "udp_amplification",
  "icmp_size",
  "syn_flood",
  "ids",
  "quic_initial",
]);

/** Whether `ev` is the judgement of a connection as it opened. */
const opensConnection = (ev: MoatEvent): boolean =>
  (ev.type === "allowed" || ev.type === "blocked" || ev.type === "detected") &&
  !REPORTS.has(ev.reason);

export interface EventMetrics {
  /** Counts a connection's judgement (not closes, re-judgements or reports) in moat.connections. */
  count(ev: MoatEvent): void;
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

export interface MetricsOptions {
  url: string;
  resource: Resource;
  snapshot: SnapshotSource;
  intervalMs: number;
  timeoutMs: number;
  /** Log records and spans the collector did not take, by signal. */
  lost: () => { logs: number; traces: number };
}

export function createEventMetrics(o: MetricsOptions): EventMetrics {
  const reader = new PeriodicExportingMetricReader({
    exporter: new OTLPMetricExporter({ url: o.url, timeoutMillis: o.timeoutMs }),
    exportIntervalMillis: o.intervalMs,
    exportTimeoutMillis: Math.min(o.timeoutMs, o.intervalMs),
  });
  const provider = new MeterProvider({ resource: o.resource, readers: [reader] });
  const meter = provider.getMeter("moat");

  const connections = meter.createCounter("moat.connections", {
    description: "Reported connections by verdict, rule and direction",
    unit: "{connection}",
  });
  const counter = (name: string, description: string, unit: string) =>
    meter.createObservableCounter(name, { description, unit });
  const gauge = (name: string, description: string, unit: string) =>
    meter.createObservableGauge(name, { description, unit });
  const ruleBytes = counter("moat.rule.bytes", "Bytes of the connections a rule decided", "By");
  const rulePackets = counter(
    "moat.rule.packets",
    "Packets of the connections a rule decided",
    "{packet}",
  );
  const ruleConnections = counter(
    "moat.rule.connections",
    "Connections a rule judged (all, reported or not)",
    "{connection}",
  );
  const ringLost = counter(
    "moat.events.lost",
    "Events the kernel could not put in the ring buffer",
    "{event}",
  );
  const sinkDropped = counter(
    "moat.sink.dropped",
    "Events a sink's queue dropped because it was full",
    "{event}",
  );
  const sinkFailed = counter("moat.sink.failed", "Batches a sink failed to deliver", "{batch}");
  const sinkLost = counter(
    "moat.sink.failed_events",
    "Events lost because a sink's write of them failed",
    "{event}",
  );
  const reloads = counter("moat.policy.reloads", "Policy reloads by result", "{reload}");
  const ctEntries = gauge(
    "moat.conntrack.entries",
    "Connection-tracking entries in use",
    "{entry}",
  );
  const ctCapacity = gauge("moat.conntrack.capacity", "Connection-tracking table size", "{entry}");
  const flowRecords = counter(
    "moat.flow.records",
    "Flow records (connection summaries, allowed ones included) by verdict",
    "{record}",
  );
  const flowBytes = counter("moat.flow.bytes", "Bytes counted by flow records, by verdict", "By");
  const limited = counter(
    "moat.ratelimit.packets",
    "Packets over a rule's rate limit (dropped, or reported in detect), and sources judged by a limit's overflow bucket (table_full)",
    "{packet}",
  );
  const scrubbed = counter(
    "moat.scrub.packets",
    "TCP packets with an invalid flag combination, dropped or reported in detect",
    "{packet}",
  );
  const flood = counter(
    "moat.flood.syn",
    "SYN flood defence: SYNs to defended ports, over the rate, cookies sent and checked, connections handed to listeners",
    "{packet}",
  );
  const idsMatches = counter(
    "moat.ids.matches",
    "IDS signature matches reported: detected, or blocked (the connection cut)",
    "{match}",
  );
  const idsCopies = counter(
    "moat.ids.copies",
    "First bytes of flows copied by the kernel for the IDS signatures, or lost to a full ring",
    "{copy}",
  );
  const feedFailures = counter(
    "moat.feed.fetch_failures",
    "Failed fetches of each URL feed (its last good list stays in force)",
    "{fetch}",
  );
  const feedFailing = gauge(
    "moat.feed.failing",
    "1 while a URL feed's fetches fail since its last good one",
    "1",
  );
  const otelLost = counter(
    "moat.otel.lost",
    "Log records and spans the OTLP endpoint did not take",
    "{item}",
  );

  // one snapshot per collection for all instruments
  meter.addBatchObservableCallback(
    (r) => {
      const s = o.snapshot();
      for (const rule of s.rules) {
        const at: Attributes = { "moat.rule": rule.name };
        r.observe(ruleBytes, Number(rule.bytes), at);
        r.observe(rulePackets, Number(rule.packets), at);
        r.observe(ruleConnections, Number(rule.connections), at);
      }
      r.observe(ringLost, Number(s.ringLost));
      for (const sink of s.sinks) {
        r.observe(sinkDropped, sink.dropped, { "moat.sink": sink.name });
        r.observe(sinkFailed, sink.failed, { "moat.sink": sink.name });
        r.observe(sinkLost, sink.lost, { "moat.sink": sink.name });
      }
      r.observe(reloads, s.reloads.ok, { "moat.result": "ok" });
      r.observe(reloads, s.reloads.refused, { "moat.result": "refused" });
      r.observe(ctEntries, s.conntrack.entries);
      r.observe(ctCapacity, s.conntrack.capacity);
      for (const [verdict, f] of Object.entries(s.flows ?? {})) {
        r.observe(flowRecords, f.records, { "moat.verdict": verdict });
        r.observe(flowBytes, f.bytes, { "moat.verdict": verdict });
      }
      const c = s.counters;
      r.observe(limited, Number(c.limitDropped.packets), { "moat.outcome": "dropped" });
      r.observe(limited, Number(c.limitDetected.packets), { "moat.outcome": "detected" });
      r.observe(limited, Number(c.limitFull.packets), { "moat.outcome": "table_full" });
      r.observe(scrubbed, Number(c.tcpFlagsDropped.packets), { "moat.outcome": "dropped" });
      r.observe(scrubbed, Number(c.tcpFlagsDetected.packets), { "moat.outcome": "detected" });
      if (s.ids) {
        r.observe(idsMatches, s.ids.detected, { "moat.outcome": "detected" });
        r.observe(idsMatches, s.ids.blocked, { "moat.outcome": "blocked" });
      }
      r.observe(idsCopies, Number(c.idsCopied.packets), { "moat.outcome": "copied" });
      r.observe(idsCopies, Number(c.idsLost.packets), { "moat.outcome": "lost" });
      for (const [name, n] of Object.entries(s.flood ?? {}))
        r.observe(flood, Number(n), { "moat.flood.counter": name });
      for (const f of s.feeds ?? []) {
        r.observe(feedFailures, f.failures, { "moat.feed.name": f.name });
        r.observe(feedFailing, f.failingSince ? 1 : 0, { "moat.feed.name": f.name });
      }
      const lost = o.lost();
      r.observe(otelLost, lost.logs, { "moat.otel.signal": "logs" });
      r.observe(otelLost, lost.traces, { "moat.otel.signal": "traces" });
    },
    [
      ruleBytes,
      rulePackets,
      ruleConnections,
      ringLost,
      sinkDropped,
      sinkFailed,
      sinkLost,
      reloads,
      ctEntries,
      ctCapacity,
      flowRecords,
      flowBytes,
      limited,
      scrubbed,
      flood,
      idsMatches,
      idsCopies,
      feedFailures,
      feedFailing,
      otelLost,
    ],
  );

  return {
    count(ev) {
      if (!opensConnection(ev)) return;
      connections.add(1, {
        "moat.verdict": ev.verdict,
        "moat.rule": ev.rule,
        "moat.direction": ev.direction,
      });
    },
    flush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
}
