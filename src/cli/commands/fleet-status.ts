// moat fleet status: per host (every host with events or keys, or those named) its events, its
// last event's time, its policy key's revision, the revision it applied and its last report.
import type { NatsConnection } from "nats";
import { printable } from "../../config/index.ts";
import { jsonLine } from "../json-line.ts";
import { hostOfSubject, type FleetTarget } from "../fleet-target.ts";
import type { FleetStatus } from "../../fleet/index.ts";

interface HostRow {
  host: string;
  events: number;
  last_event?: string;
  policy_revision?: number;
  status?: FleetStatus;
}

export async function printStatus(
  nc: NatsConnection,
  fleet: FleetTarget & { hosts: string[] },
  json: boolean,
  out: (l: string) => void,
): Promise<void> {
  const jsm = await nc.jetstreamManager();
  const rows = new Map<string, HostRow>();
  const row = (host: string) => {
    let r = rows.get(host);
    if (!r) rows.set(host, (r = { host, events: 0 }));
    return r;
  };
  // hosts with events: the stream's subjects
  const info = await jsm.streams
    .info(fleet.stream, { subjects_filter: `${fleet.subject}.>` })
    .catch(() => null);
  for (const [subject, count] of Object.entries(info?.state.subjects ?? {}))
    row(hostOfSubject(subject, fleet.subject)).events = count;
  // hosts with a policy or status key
  const kv = await nc
    .jetstream()
    .views.kv(fleet.bucket, { bindOnly: true })
    .catch(() => null);
  if (kv) {
    for await (const key of await kv.keys()) {
      const m = /^(policy|status)\.(.+)$/.exec(key);
      if (m?.[2]) row(m[2]);
    }
  }
  const wanted = fleet.hosts.length ? fleet.hosts : [...rows.keys()].sort();
  for (const host of wanted) {
    const r = row(host);
    if (r.events > 0) {
      const last = await jsm.streams
        .getMessage(fleet.stream, { last_by_subj: `${fleet.subject}.${host}` })
        .catch(() => null);
      if (last) r.last_event = eventTime(last.data) ?? last.time.toISOString();
    }
    if (kv) {
      const policy = await kv.get(`policy.${host}`).catch(() => null);
      if (policy && policy.operation === "PUT") r.policy_revision = policy.revision;
      const status = await kv.get(`status.${host}`).catch(() => null);
      if (status && status.operation === "PUT") {
        try {
          r.status = status.json<FleetStatus>();
        } catch {
          // not moat's report
        }
      }
    }
    if (json) out(jsonLine(r));
  }
  if (json) return;
  out(["HOST", "EVENTS", "LAST EVENT", "POLICY REV", "APPLIED", "STATUS"].join("\t"));
  for (const host of wanted) {
    const r = row(host);
    const s = r.status;
    // a host writes its own report: it may not be moat's shape
    const errors = Array.isArray(s?.errors) ? s.errors.map(String) : [];
    const state = !s
      ? "-"
      : s.result === "applied"
        ? `applied revision ${s.revision} (generation ${s.generation})`
        : `refused revision ${s.revision}: ${errors[0] ?? ""}${errors.length > 1 ? ` (+${errors.length - 1} more)` : ""}`;
    const cells = [
      host,
      String(r.events),
      r.last_event ?? "-",
      String(r.policy_revision ?? "-"),
      s ? String(s.applied_revision) : "-",
      state,
    ];
    // names and errors come from the hosts: control characters are escaped
    out(cells.map((c) => printable(c)).join("\t"));
  }
}

/** The `time` of the event in a message a host published, if it is one. */
function eventTime(data: Uint8Array): string | undefined {
  try {
    const time = (JSON.parse(new TextDecoder().decode(data)) as { time?: unknown } | null)?.time;
    return typeof time === "string" ? time : undefined;
  } catch {
    return undefined;
  }
}
