// moat fleet events: the events stream across hosts, oldest first, with moat events' filters;
// --follow then prints new ones as they come.
import type { NatsConnection } from "nats";
import { UsageError, type Io, type OptionValues } from "../command.ts";
import { filterQuery } from "../api/filters.ts";
import { parseTimePoint } from "../time-args.ts";
import { jsonLine } from "../json-line.ts";
import { colourEventLine, colourFor } from "../colour.ts";
import { hostOfSubject, type FleetTarget } from "../fleet-target.ts";
import type { MoatEvent } from "../../datapath/index.ts";

export async function printEvents(
  nc: NatsConnection,
  fleet: FleetTarget & { hosts: string[] },
  values: OptionValues,
  io: Io,
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
    // the host's name escaped here, the event's fields by formatEventLine
    const text = `${printable(host)} ${formatEventLine(e)}`;
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
    const host = hostOfSubject(subject, fleet.subject);
    if (hosts.size && !hosts.has(host)) return null;
    // a host writes its own subject, so a message need not be an event moat published: one that
    // cannot be read, filtered and printed as an event is skipped, not the end of the command
    try {
      const e = JSON.parse(new TextDecoder().decode(data)) as MoatEvent;
      if (!matchesFilter(filter, e)) return null;
      formatEventLine(e);
      return [host, e];
    } catch {
      return null;
    }
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
