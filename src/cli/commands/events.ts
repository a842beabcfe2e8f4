// moat events: stored events (oldest first), or live ones with --follow; --follow --since first
// prints the stored events since then, then the live ones, with no gap and no duplicates.
import type { Command } from "../command.ts";
import { UsageError } from "../command.ts";
import { API_OPTIONS, API_USAGE, apiTarget, streamEvents, type ApiTarget } from "../api/client.ts";
import { FILTER_OPTIONS, FILTER_USAGE, filterQuery } from "../api/filters.ts";
import { storedEvents } from "../api/history.ts";
import { parseTimePoint, TIME_USAGE } from "../time-args.ts";
import { formatEventLine, type MoatEvent } from "../../datapath/index.ts";
import { jsonLine } from "../json-line.ts";
import { colourEventLine, colourFor } from "../colour.ts";

const USAGE = `moat events [--follow] [--json] [--limit N] [--since TIME] [--until TIME]
  ${FILTER_USAGE}
  ${API_USAGE}
  ${TIME_USAGE}
  Without --since/--until/--limit: the newest 100 stored events. --follow: then live events
  until Ctrl-C; with --since it first prints the stored events since TIME.`;

/** How long the history may lag the live stream (each sink has its own queue). */
const HISTORY_SETTLE_MS = 500;
/** The second read of the history starts this long before the newest event the first printed. */
const RECENT_MS = 10_000;

export const eventsCommand: Command = {
  name: "events",
  summary: "print stored events, or follow live ones (--follow), with filters",
  usage: USAGE,
  options: {
    ...API_OPTIONS,
    ...FILTER_OPTIONS,
    follow: { type: "boolean", short: "f" },
    json: { type: "boolean" },
    limit: { type: "string" },
    since: { type: "string" },
    until: { type: "string" },
  },
  async run({ values }, io) {
    const target = apiTarget(values);
    const filter = filterQuery(values);
    const now = Date.now();
    const since =
      typeof values.since === "string" ? parseTimePoint(values.since, "--since", now) : undefined;
    const until =
      typeof values.until === "string" ? parseTimePoint(values.until, "--until", now) : undefined;
    let limit: number | undefined;
    if (typeof values.limit === "string") {
      // the API's smallest page is one event: 0 would print one
      if (!/^\d+$/.test(values.limit)) throw new UsageError("--limit must be a whole number");
      if (Number(values.limit) < 1) throw new UsageError("--limit must be 1 or more");
      limit = Number(values.limit);
    }
    if (values.follow && until !== undefined)
      throw new UsageError("--follow prints events as they come: it takes no --until");
    // the daemon's line: process and host names, paths and versions escaped and quoted there
    const colour = colourFor(process.stdout);
    const text = (e: MoatEvent) => formatEventLine(e);
    const print = (e: MoatEvent) =>
      io.out(values.json ? jsonLine(e) : colour ? colourEventLine(text(e)) : text(e));
    if (values.follow) {
      await follow(target, filter, since, print, () =>
        io.err("following live events; Ctrl-C to stop"),
      );
      return 0;
    }
    const window = {
      filter,
      ...(since !== undefined ? { since } : {}),
      ...(until !== undefined ? { until } : {}),
      ...(limit !== undefined ? { limit } : {}),
    };
    for (const event of await storedEvents(target, window)) print(event);
    return 0;
  },
};

/** An event's identity across the history and the live stream: its JSON. */
const keyOf = (e: MoatEvent) => JSON.stringify(e);

/**
 * Live events; with `since`, the stored ones since then first. The subscription opens before
 * the history is read, and the live events that arrive meanwhile wait: whatever the history
 * holds is printed once, the waiting ones not already printed follow, then the stream.
 */
async function follow(
  target: ApiTarget,
  filter: URLSearchParams,
  since: number | undefined,
  print: (e: MoatEvent) => void,
  onOpen: () => void,
): Promise<void> {
  const waiting: MoatEvent[] = [];
  let direct = false;
  let opened: () => void = () => {};
  const open = new Promise<void>((resolve) => (opened = resolve));
  const live = (async () => {
    const stream = streamEvents(target, filter, () => {
      onOpen();
      opened();
    });
    for await (const event of stream) {
      if (direct) print(event);
      else waiting.push(event);
    }
  })();
  await Promise.race([open, live]);
  if (since !== undefined) {
    const printed = new Set<string>();
    let newest = since;
    const show = (e: MoatEvent) => {
      const key = keyOf(e);
      if (printed.has(key)) return;
      printed.add(key);
      newest = Math.max(newest, Date.parse(e.time) || 0);
      print(e);
    };
    for (const e of await storedEvents(target, { filter, since })) show(e);
    // what was still in the history's queue when the subscription opened: read the recent
    // end again (events are written about in time order, not exactly)
    await new Promise((r) => setTimeout(r, HISTORY_SETTLE_MS));
    const recent = Math.max(since, newest - RECENT_MS);
    for (const e of await storedEvents(target, { filter, since: recent })) show(e);
    for (const e of waiting.splice(0)) show(e);
  } else for (const e of waiting.splice(0)) print(e);
  direct = true;
  await live;
}
