// moat top: a live view of the top blocked/detected remotes, processes and rules, redrawn in
// place every second. --once prints one frame from recent history and exits.
import type { Command } from "../command.ts";
import { API_OPTIONS, API_USAGE, apiTarget, call, streamEvents } from "../api/client.ts";
import { FILTER_OPTIONS, FILTER_USAGE, filterQuery } from "../api/filters.ts";
import { emptyTop, renderTop, tally, topJson } from "../top-view.ts";
import { jsonLine } from "../json-line.ts";
import { UsageError } from "../command.ts";
import type { HistoryPage } from "../../observe/index.ts";

const HOME_AND_CLEAR = "\x1b[H\x1b[J";

export const topCommand: Command = {
  name: "top",
  summary: "live view of the top blocked/detected remotes, processes and rules",
  usage: `moat top [--once [--json]] [--rows N] ${FILTER_USAGE}\n  ${API_USAGE}`,
  options: {
    ...API_OPTIONS,
    ...FILTER_OPTIONS,
    once: { type: "boolean" },
    json: { type: "boolean" },
    rows: { type: "string" },
  },
  async run({ values }, io) {
    const target = apiTarget(values);
    const query = filterQuery(values);
    const rows = typeof values.rows === "string" ? rowsOf(values.rows) : 10;
    const width = () => Math.min(process.stdout.columns || 80, 120);
    if (values.once) {
      const history = new URLSearchParams(query);
      if (!history.has("type")) history.set("type", "blocked,detected");
      history.set("limit", "1000");
      const page = await call<HistoryPage>(target, "GET", `/v1/events?${history.toString()}`);
      const oldest = page.events.at(-1);
      const data = emptyTop(oldest ? Date.parse(oldest.time) : Date.now());
      for (const event of page.events) tally(data, event);
      if (values.json) {
        io.out(jsonLine(topJson(data, rows)));
        return 0;
      }
      for (const line of renderTop(data, { now: Date.now(), width: width(), rows })) io.out(line);
      return 0;
    }
    if (values.json) throw new UsageError("--json goes with --once (one frame, then exit)");
    const data = emptyTop(Date.now());
    // on a terminal the frame is redrawn in place; into a pipe, frames follow each other plainly
    const clear = process.stdout.isTTY ? HOME_AND_CLEAR : "";
    const draw = () =>
      process.stdout.write(
        clear +
          renderTop(data, { now: Date.now(), width: width(), rows }).join("\n") +
          (clear ? "\n" : "\n\n"),
      );
    const timer = setInterval(draw, 1000);
    draw();
    try {
      for await (const event of streamEvents(target, query)) tally(data, event);
    } finally {
      clearInterval(timer);
    }
    return 0;
  },
};

/** --rows: a whole number of 1 or more (a negative one cut rows off the end of each list). */
function rowsOf(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1)
    throw new UsageError("--rows must be a whole number, 1 or more");
  return Number(text);
}
