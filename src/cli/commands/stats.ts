// moat stats: flow statistics from the daemon's history (its minute/hour/day roll-ups): who
// talked to whom, on which port, how much and how often, with the verdicts.
import type { Command } from "../command.ts";
import { UsageError } from "../command.ts";
import { API_OPTIONS, API_USAGE, apiTarget, call } from "../api/client.ts";
import { jsonLine } from "../json-line.ts";
import { parseTimePoint, TIME_USAGE } from "../time-args.ts";
import { printable } from "../../config/index.ts";
import type { StatsPage, StatsRow } from "../../observe/index.ts";

export const statsCommand: Command = {
  name: "stats",
  summary: "show flow statistics: connections and bytes per process, peer and port, with verdicts",
  usage: `moat stats [--json] [--since 1h|TIME] [--until TIME] [--process PATH|NAME] [--peer NAME|IP] [--limit N]
  ${API_USAGE}
  ${TIME_USAGE}
  Without --since: the last day. The answer covers whole roll-up buckets (minutes, hours or
  days): its since and until are the first bucket's start and the last one's end.`,
  options: {
    ...API_OPTIONS,
    json: { type: "boolean" },
    since: { type: "string" },
    until: { type: "string" },
    process: { type: "string" },
    peer: { type: "string" },
    limit: { type: "string" },
  },
  async run({ values }, io) {
    const target = apiTarget(values);
    const query = new URLSearchParams();
    const now = Date.now();
    for (const key of ["since", "until"] as const) {
      const text = values[key];
      if (typeof text === "string") query.set(key, String(parseTimePoint(text, `--${key}`, now)));
    }
    if (typeof values.process === "string") query.set("process", values.process);
    if (typeof values.peer === "string") query.set("peer", values.peer);
    if (typeof values.limit === "string") {
      // the API's smallest answer is one row: 0 would print one
      if (!/^\d+$/.test(values.limit)) throw new UsageError("--limit must be a whole number");
      if (Number(values.limit) < 1) throw new UsageError("--limit must be 1 or more");
      query.set("limit", values.limit);
    }
    const page = await call<StatsPage>(target, "GET", `/v1/stats?${query.toString()}`);
    if (values.json) io.out(jsonLine(page, 2));
    else for (const line of statsTable(page)) io.out(line);
    return 0;
  },
};

/** The page as a table, one row a line (names escaped: anyone may choose them). */
export function statsTable(page: StatsPage): string[] {
  const head = [
    "PROCESS",
    "USER",
    "PEER",
    "PORT",
    "PROTO",
    "DIR",
    "CONNS",
    "BYTES",
    "MAX DUR",
    "ALLOW",
    "BLOCK",
    "DETECT",
    "LAST SEEN",
  ];
  const rows = page.rows.map((r) => cells(r).map(printable));
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cols: string[]) =>
    cols
      .map((c, i) =>
        i >= 3 && i <= 11 && i !== 4 && i !== 5 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!),
      )
      .join("  ")
      .trimEnd();
  const title = `flows ${page.since} .. ${page.until} (${page.resolution} roll-ups): ${page.rows.length} row(s)`;
  return [title, line(head), ...rows.map(line)];
}

function cells(r: StatsRow): string[] {
  // a process known by its name only (comm, which it sets itself, a slash included): never
  // shown as a path
  const exe = r.identity.nameOnly ? `name:${r.identity.exe}` : r.identity.exe || "?";
  const who = r.identity.container ? `${exe} [${r.identity.container}]` : exe;
  return [
    who,
    r.identity.user === null ? "-" : String(r.identity.user),
    r.peer,
    String(r.port),
    r.protocol,
    r.direction,
    String(r.connections),
    String(r.bytes),
    `${(r.durationMsMax / 1000).toFixed(1)}s`,
    String(r.verdicts.allowed),
    String(r.verdicts.blocked),
    String(r.verdicts.detected),
    r.lastSeen,
  ];
}
