// moat anomalies: the anomalies the daemon reported (what, for which identity, against which
// baseline), and `moat anomalies accept ID`: this one is normal, so the same (or up to 1.5 times
// as much) is not reported again for that identity (docs/anomaly.md).
import type { Command } from "../command.ts";
import { UsageError } from "../command.ts";
import { API_OPTIONS, API_USAGE, apiTarget, call } from "../api/client.ts";
import { jsonLine } from "../json-line.ts";
import { printable } from "../../config/index.ts";
import type { AnomalyView } from "../../api/index.ts";
import type { Acceptance } from "../../observe/index.ts";

export const anomaliesCommand: Command = {
  name: "anomalies",
  summary: "list the anomalies detected per identity, or accept one as normal",
  usage: `moat anomalies [--json] [--all]\nmoat anomalies accept ID\n  ${API_USAGE}`,
  options: {
    ...API_OPTIONS,
    json: { type: "boolean" },
    all: { type: "boolean" },
  },
  async run({ values, positionals }, io) {
    const target = apiTarget(values);
    const [verb, id, ...rest] = positionals;
    if (verb === "accept") {
      if (!id || rest.length) throw new UsageError("usage: moat anomalies accept ID");
      const a = await call<Acceptance>(
        target,
        "POST",
        "/v1/anomalies/accept",
        JSON.stringify({ id }),
      );
      if (values.json) io.out(jsonLine(a, 2));
      else
        io.out(
          `accepted ${a.id} as normal: ${a.kind} ${printable(a.key)} of ${printable(a.identity.exe || "(unknown process)")}`,
        );
      return 0;
    }
    if (verb !== undefined) throw new UsageError(`unknown subcommand '${verb}' (try: accept ID)`);
    const view = await call<AnomalyView>(target, "GET", "/v1/anomalies");
    if (values.json) {
      io.out(jsonLine(view, 2));
      return 0;
    }
    for (const line of anomalyLines(view, values.all === true)) io.out(line);
    return 0;
  },
};

/** One line an anomaly, newest first; accepted ones only with `all`. */
export function anomalyLines(view: AnomalyView, all: boolean): string[] {
  const shown = view.anomalies.filter((a) => all || !a.accepted).reverse();
  const head = view.enabled ? "" : " (anomaly detection is off: anomaly.enabled is false)";
  const lines = [
    `${shown.length} anomal${shown.length === 1 ? "y" : "ies"}${all ? "" : " not accepted"}${head}`,
  ];
  for (const { event, accepted } of shown) {
    const a = event.anomaly;
    if (!a) continue;
    const who = a.identity.exe || "(unknown process)";
    const mark = accepted ? " [accepted]" : "";
    lines.push(`${event.time}  ${a.id}  ${a.kind}  ${printable(who)}${mark}`);
    lines.push(`    ${printable(a.summary)}`);
  }
  if (shown.length) lines.push("accept one as normal: moat anomalies accept ID");
  return lines;
}
