// Prometheus text exposition (format 0.0.4) of a MoatSnapshot and the API's own counters.
import type { MoatSnapshot } from "../observe/sink.ts";

export interface ApiCounters {
  requests: number;
  unauthorized: number;
}

type Labels = Record<string, string>;

const escape = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

class Exposition {
  private readonly lines: string[] = [];
  metric(
    name: string,
    type: "counter" | "gauge",
    help: string,
    samples: [Labels, number | bigint][],
  ): void {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) {
      const l = Object.entries(labels)
        .map(([k, v]) => `${k}="${escape(v)}"`)
        .join(",");
      this.lines.push(`${name}${l ? `{${l}}` : ""} ${value.toString()}`);
    }
  }
  text(): string {
    return `${this.lines.join("\n")}\n`;
  }
}

export function prometheusText(s: MoatSnapshot, api: ApiCounters): string {
  const e = new Exposition();
  e.metric("moat_info", "gauge", "The running policy (value is always 1).", [
    [{ mode: s.mode, policy_hash: s.policyHash, policy_path: s.policyPath }, 1],
  ]);
  e.metric("moat_policy_generation", "gauge", "Generation of the live policy.", [
    [{}, s.generation],
  ]);
  e.metric("moat_policy_reloads_total", "counter", "Policy reloads, applied or refused.", [
    [{ result: "ok" }, s.reloads.ok],
    [{ result: "refused" }, s.reloads.refused],
  ]);
  e.metric(
    "moat_attached",
    "gauge",
    "Programs attached, by interface and hook.",
    s.attached.map((a) => [{ interface: a.interface, hook: a.hook, mode: a.mode }, 1]),
  );
  const counters = Object.entries(s.counters);
  e.metric(
    "moat_datapath_packets_total",
    "counter",
    "Kernel packet counters summed over CPUs.",
    counters.map(([name, c]) => [{ counter: name }, c.packets]),
  );
  e.metric(
    "moat_datapath_bytes_total",
    "counter",
    "Kernel byte counters summed over CPUs.",
    counters.map(([name, c]) => [{ counter: name }, c.bytes]),
  );
  e.metric(
    "moat_rule_packets_total",
    "counter",
    "Packets of connections each rule decided.",
    s.rules.map((r) => [{ rule: r.name }, r.packets]),
  );
  e.metric(
    "moat_rule_bytes_total",
    "counter",
    "Bytes of connections each rule decided.",
    s.rules.map((r) => [{ rule: r.name }, r.bytes]),
  );
  e.metric(
    "moat_rule_connections_total",
    "counter",
    "Connections each rule judged.",
    s.rules.map((r) => [{ rule: r.name }, r.connections]),
  );
  e.metric(
    "moat_events_total",
    "counter",
    "Events received from the kernel, by type.",
    Object.entries(s.events).map(([type, n]) => [{ type }, n]),
  );
  if (s.flows) {
    const flows = Object.entries(s.flows);
    e.metric(
      "moat_flow_records_total",
      "counter",
      "Flow records (connection summaries, allowed ones included) by verdict.",
      flows.map(([verdict, f]) => [{ verdict }, f.records]),
    );
    e.metric(
      "moat_flow_bytes_total",
      "counter",
      "Bytes of connections counted by flow records, by verdict.",
      flows.map(([verdict, f]) => [{ verdict }, f.bytes]),
    );
  }
  if (s.ids) {
    e.metric(
      "moat_ids_matches_total",
      "counter",
      "IDS signature matches reported: detected, or blocked (the connection cut).",
      [
        [{ outcome: "detected" }, s.ids.detected],
        [{ outcome: "blocked" }, s.ids.blocked],
      ],
    );
    e.metric(
      "moat_ids_copies_total",
      "counter",
      "First bytes of flows the kernel copied for the IDS signatures: read, lost (full ring), flow directions given up, with another version of bytes already copied, with more than one urgent byte.",
      [
        [{ outcome: "read" }, s.ids.copies],
        [{ outcome: "lost" }, s.counters.idsLost.packets],
        [{ outcome: "gap" }, s.ids.gaps],
        [{ outcome: "overlap" }, s.ids.overlaps],
        [{ outcome: "urgent" }, s.ids.urgent],
      ],
    );
  }
  if (s.flood)
    e.metric(
      "moat_flood_syn_total",
      "counter",
      "SYN flood defence: SYNs to defended ports, over the rate, cookies sent and checked, connections handed to listeners.",
      Object.entries(s.flood).map(([counter, n]) => [{ counter }, n]),
    );
  if (s.feeds) {
    e.metric(
      "moat_feed_fetch_failures_total",
      "counter",
      "Failed fetches of each URL feed (its last good list stays in force).",
      s.feeds.map((f) => [{ feed: f.name }, f.failures]),
    );
    e.metric(
      "moat_feed_failing",
      "gauge",
      "1 while a URL feed's fetches fail since its last good one.",
      s.feeds.map((f) => [{ feed: f.name }, f.failingSince ? 1 : 0]),
    );
  }
  e.metric("moat_ring_lost_events_total", "counter", "Events the kernel could not deliver.", [
    [{}, s.ringLost],
  ]);
  e.metric("moat_conntrack_entries", "gauge", "Connections tracked now.", [
    [{}, s.conntrack.entries],
  ]);
  e.metric("moat_conntrack_capacity", "gauge", "Size of the connection table.", [
    [{}, s.conntrack.capacity],
  ]);
  const sinks = (pick: (x: MoatSnapshot["sinks"][number]) => number): [Labels, number][] =>
    s.sinks.map((x) => [{ sink: x.name }, pick(x)]);
  e.metric(
    "moat_sink_delivered_events_total",
    "counter",
    "Events each sink took.",
    sinks((x) => x.delivered),
  );
  e.metric(
    "moat_sink_dropped_events_total",
    "counter",
    "Events dropped because a sink's queue was full.",
    sinks((x) => x.dropped),
  );
  e.metric(
    "moat_sink_failed_events_total",
    "counter",
    "Events lost because a sink's write of them failed.",
    sinks((x) => x.lost),
  );
  e.metric(
    "moat_sink_failed_batches_total",
    "counter",
    "Batches a sink failed to write.",
    sinks((x) => x.failed),
  );
  e.metric(
    "moat_sink_queued_events",
    "gauge",
    "Events waiting in each sink's queue.",
    sinks((x) => x.queued),
  );
  e.metric("moat_api_requests_total", "counter", "API requests received.", [[{}, api.requests]]);
  e.metric(
    "moat_api_unauthorized_requests_total",
    "counter",
    "API requests refused for a missing or wrong token.",
    [[{}, api.unauthorized]],
  );
  return e.text();
}
