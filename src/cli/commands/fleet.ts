// moat fleet: the hosts of a fleet as its NATS JetStream cluster sees them, read from there
// directly (no daemon needed): `events` reads the events stream across hosts (filters, --json,
// --follow), `status` shows per host its last event, its policy key's revision, the revision it
// applied and what it reported. The nats client loads only when one of these runs.
import { readFileSync } from "node:fs";
import { UsageError, type Command, type OptionValues } from "../command.ts";
import { FILTER_OPTIONS, FILTER_USAGE, filterQuery } from "../api/filters.ts";
import { parseTimePoint } from "../time-args.ts";
import { jsonLine } from "../json-line.ts";
import { colourEventLine, colourFor } from "../colour.ts";
import type { MoatEvent } from "../../datapath/index.ts";
import type { FleetStatus } from "../../fleet/index.ts";

const CONNECT_USAGE =
  "[--server URL]... [--nkey SEED_FILE] [--stream NAME] [--bucket NAME] [--subject PREFIX]\n" +
  "  --server: a server of the fleet's NATS cluster (default nats://127.0.0.1:4222);\n" +
  "  --nkey: a file holding the nkey seed to connect with; --stream (default MOAT_EVENTS),\n" +
  "  --bucket (default moat-policy), --subject (default moat.events): as docs/fleet.md sets up.";

const USAGE = `moat fleet events [--host NAME]... [--follow] [--json] [--limit N] [--since TIME]
  ${FILTER_USAGE}
moat fleet status [--host NAME]... [--json]
  ${CONNECT_USAGE}
  events: the stored events of every host (or those named), oldest first; --since TIME (30s,
  10m, 2h, 1d or an ISO 8601 time) starts there, --limit N prints the last N; --follow then
  prints new ones until Ctrl-C (without --since: only new ones).
  status: per host its last event, its policy key's revision, the revision it applied, and
  whether it refused the newest one (with the errors).`;

interface Fleet {
  servers: string[];
  seed?: string;
  stream: string;
  bucket: string;
  subject: string;
  hosts: string[];
}

function fleetOf(values: OptionValues, defaults: typeof import("../../fleet/index.ts")): Fleet {
  const str = (k: string, d: string) => (typeof values[k] === "string" ? values[k] : d);
  const list = (k: string) => (Array.isArray(values[k]) ? values[k] : []);
  const servers = list("server");
  let seed: string | undefined;
  if (typeof values.nkey === "string") {
    try {
      seed = readFileSync(values.nkey, "utf8").trim();
    } catch (err) {
      throw new UsageError(`--nkey: ${(err as Error).message}`, 1);
    }
  }
  return {
    servers: servers.length ? servers : ["nats://127.0.0.1:4222"],
    ...(seed ? { seed } : {}),
    stream: str("stream", defaults.DEFAULT_STREAM),
    bucket: str("bucket", defaults.DEFAULT_BUCKET),
    subject: str("subject", defaults.DEFAULT_SUBJECT),
    hosts: list("host"),
  };
}

export const fleetCommand: Command = {
  name: "fleet",
  summary: "events and policy status of every host, read from the fleet's NATS JetStream cluster",
  usage: USAGE,
  actions: ["events", "status"],
  options: {
    ...FILTER_OPTIONS,
    server: { type: "string", multiple: true },
    nkey: { type: "string" },
    stream: { type: "string" },
    bucket: { type: "string" },
    subject: { type: "string" },
    host: { type: "string", multiple: true },
    follow: { type: "boolean", short: "f" },
    json: { type: "boolean" },
    limit: { type: "string" },
    since: { type: "string" },
  },
  async run({ values, positionals }, io) {
    const action = positionals[0];
    if (action !== "events" && action !== "status")
      throw new UsageError(`moat fleet takes events or status\nusage: ${USAGE}`);
    const fleetModule = await import("../../fleet/index.ts");
    const fleet = fleetOf(values, fleetModule);
    const { connect } = await import("nats");
    let nc;
    try {
      nc = await connect({
        ...fleetModule.connectionOptions({
          url: fleet.servers,
          ...(fleet.seed ? { seed: fleet.seed } : {}),
        }),
        maxReconnectAttempts: values.follow ? -1 : 0,
        timeout: 5000,
      });
    } catch (err) {
      throw new UsageError(
        `cannot reach ${fleet.servers.join(", ")}: ${(err as Error).message}`,
        1,
      );
    }
    try {
      if (action === "status") await printStatus(nc, fleet, values.json === true, io.out);
      else await printEvents(nc, fleet, values, io);
    } finally {
      await nc.close();
    }
    return 0;
  },
};

type Conn = Awaited<ReturnType<typeof import("nats").connect>>;

/** The host an event's subject names. */
const hostOf = (subject: string, prefix: string) => subject.slice(prefix.length + 1);

async function printEvents(
  nc: Conn,
  fleet: Fleet,
  values: OptionValues,
  io: { out: (l: string) => void; err: (l: string) => void },
): Promise<void> {
  // what only this action needs loads here: `moat fleet status` starts without it
  const { DeliverPolicy } = await import("nats");
  const { matchesFilter, parseFilter } = await import("../../observe/index.ts");
  const { formatEventLine } = await import("../../datapath/index.ts");
  const { printable } = await import("../../config/index.ts");
  const filter = parseFilter(filterQuery(values));
  const since =
    typeof values.since === "string" ? parseTimePoint(values.since, "--since") : undefined;
  let limit: number | undefined;
  if (typeof values.limit === "string") {
    if (!/^\d+$/.test(values.limit)) throw new UsageError("--limit must be a whole number");
    limit = Number(values.limit);
  }
  const hosts = new Set(fleet.hosts);
  const one = fleet.hosts.length === 1 ? fleet.hosts[0] : undefined;
  const colour = colourFor(process.stdout);
  const print = (host: string, e: MoatEvent) => {
    if (values.json) return io.out(jsonLine({ host, ...e }));
    // host and process names are anyone's to choose: control characters are escaped
    const text = printable(`${host} ${formatEventLine(e)}`);
    io.out(colour ? colourEventLine(text) : text);
  };
  const js = nc.jetstream();
  const consumer = await js.consumers.get(fleet.stream, {
    filterSubjects: one ? `${fleet.subject}.${one}` : `${fleet.subject}.>`,
    ...(since !== undefined
      ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(since).toISOString() }
      : values.follow
        ? { deliver_policy: DeliverPolicy.New }
        : {}), // from the start (the ordered consumer's own default)
  });
  const take = (subject: string, data: Uint8Array): [string, MoatEvent] | null => {
    const host = hostOf(subject, fleet.subject);
    if (hosts.size && !hosts.has(host)) return null;
    let e: MoatEvent;
    try {
      e = JSON.parse(new TextDecoder().decode(data)) as MoatEvent;
    } catch {
      return null; // not an event: nothing moat published
    }
    return matchesFilter(filter, e) ? [host, e] : null;
  };
  if (!values.follow || since !== undefined) {
    const kept: [string, MoatEvent][] = [];
    for (let done = values.follow === true && since === undefined; !done;) {
      const batch = await consumer.fetch({ max_messages: 500, expires: 1000 });
      let n = 0;
      for await (const m of batch) {
        n++;
        const got = take(m.subject, m.data);
        if (got) {
          if (limit === undefined) print(...got);
          else if (kept.push(got) > limit) kept.shift();
        }
        if (m.info.pending === 0) done = true;
      }
      if (n === 0) done = true;
    }
    for (const got of kept) print(...got);
    if (!values.follow) return;
  }
  io.err("following new events; Ctrl-C to stop");
  const messages = await consumer.consume();
  for await (const m of messages) {
    const got = take(m.subject, m.data);
    if (got) print(...got);
  }
}

interface HostRow {
  host: string;
  events: number;
  last_event?: string;
  policy_revision?: number;
  status?: FleetStatus;
}

async function printStatus(
  nc: Conn,
  fleet: Fleet,
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
    row(hostOf(subject, fleet.subject)).events = count;
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
      if (last)
        r.last_event =
          (last.json<MoatEvent>().time as string | undefined) ?? last.time.toISOString();
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
  const { printable } = await import("../../config/index.ts");
  out(["HOST", "EVENTS", "LAST EVENT", "POLICY REV", "APPLIED", "STATUS"].join("\t"));
  for (const host of wanted) {
    const r = row(host);
    const s = r.status;
    const state = !s
      ? "-"
      : s.result === "applied"
        ? `applied revision ${s.revision} (generation ${s.generation})`
        : `refused revision ${s.revision}: ${s.errors[0] ?? ""}${s.errors.length > 1 ? ` (+${s.errors.length - 1} more)` : ""}`;
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
