// moat events: stored events (newest last), or live ones with --follow.
import type { Command } from "../command.ts";
import { UsageError } from "../command.ts";
import { API_OPTIONS, API_USAGE, apiTarget, call, streamEvents } from "../api/client.ts";
import { FILTER_OPTIONS, FILTER_USAGE, filterQuery } from "../api/filters.ts";
import { formatEventLine, type MoatEvent } from "../../datapath/index.ts";
import { printable } from "../../config/index.ts";
import type { HistoryPage } from "../../observe/index.ts";

export const eventsCommand: Command = {
  name: "events",
  summary: "print stored events, or follow live ones (--follow), with filters",
  usage: `moat events [--follow] [--json] [--limit N] [--since TIME] ${FILTER_USAGE}\n  ${API_USAGE}`,
  options: {
    ...API_OPTIONS,
    ...FILTER_OPTIONS,
    follow: { type: "boolean", short: "f" },
    json: { type: "boolean" },
    limit: { type: "string" },
    since: { type: "string" },
  },
  async run({ values }, io) {
    const target = apiTarget(values);
    const query = filterQuery(values);
    // process and interface names are anyone's to choose: their control characters are escaped
    const print = (e: MoatEvent) =>
      io.out(values.json ? JSON.stringify(e) : printable(formatEventLine(e)));
    if (values.follow) {
      const opened = () => io.err("following live events; Ctrl-C to stop");
      for await (const event of streamEvents(target, query, opened)) print(event);
      return 0;
    }
    if (typeof values.limit === "string") {
      if (!/^\d+$/.test(values.limit)) throw new UsageError("--limit must be a whole number");
      query.set("limit", values.limit);
    }
    if (typeof values.since === "string") query.set("since", values.since);
    const page = await call<HistoryPage>(target, "GET", `/v1/events?${query.toString()}`);
    // the store's row id is a paging cursor, not part of the event
    for (const { id, ...event } of page.events.reverse()) if (id) print(event);
    return 0;
  },
};
