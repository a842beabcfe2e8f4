// An anomaly as moat's event (type "anomaly"), so every sink (audit log, history, API
// subscribers, OpenTelemetry, webhooks, NATS) gets it the way it gets the rest: the connection
// fields are those of the flow (or DNS query) that tipped it, `rule` is "anomaly:<kind>", and
// `anomaly` holds the facts (baseline, value, threshold, samples).
import type { MoatEvent } from "../../datapath/event.ts";
import type { AnomalyReport } from "./detector.ts";

export function anomalyEvent(r: AnomalyReport, mode: MoatEvent["mode"]): MoatEvent {
  const c = r.connection ?? r.query;
  return {
    time: r.time,
    type: "anomaly",
    mode,
    rule: `anomaly:${r.facts.kind}`,
    direction: c?.direction ?? "egress",
    protocol: c?.protocol ?? "",
    local: c ? { ...c.local } : { ip: "", port: 0 },
    remote: c ? { ...c.remote } : { ip: "", port: 0 },
    interface: c?.interface ?? null,
    process: c?.process ?? null,
    layer7: r.query?.dns ? { dns: { name: r.query.dns.query } } : null,
    connection: null,
    reason: "anomaly",
    verdict: c?.verdict ?? "allowed",
    hook: c?.hook ?? "tc",
    generation: c?.generation ?? 0,
    anomaly: r.facts,
  };
}
