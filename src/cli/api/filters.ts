// Event filter options shared by `moat events` and `moat top`, as API query parameters. Each
// `--not KEY=VALUE` leaves out the events that filter matches (repeat it for several).
import type { OptionValues } from "../command.ts";
import { UsageError } from "../command.ts";

const FIELDS = {
  type: { type: "string" },
  verdict: { type: "string" },
  rule: { type: "string" },
  direction: { type: "string" },
  remote: { type: "string" },
  process: { type: "string" },
  container: { type: "string" },
} as const;

export const FILTER_OPTIONS = {
  ...FIELDS,
  not: { type: "string", multiple: true },
} as const;

export const FILTER_USAGE =
  "[--type allowed,blocked,detected,closed,dns,flow,anomaly] [--verdict V] [--rule NAME]\n" +
  "  [--direction ingress|egress] [--remote CIDR|NAME] [--process NAME|PID] [--container ID|NAME]\n" +
  "  [--not KEY=VALUE]...  (KEY one of the filters above: leave out what it matches)";

export function filterQuery(values: OptionValues): URLSearchParams {
  const params = new URLSearchParams();
  for (const key of Object.keys(FIELDS)) {
    const v = values[key];
    if (typeof v === "string") params.set(key, v);
  }
  const nots = Array.isArray(values.not) ? values.not : [];
  for (const not of nots) {
    const at = not.indexOf("=");
    const key = not.slice(0, at);
    if (at < 1 || !(key in FIELDS) || at === not.length - 1)
      throw new UsageError(
        `--not '${not}': give KEY=VALUE with KEY one of ${Object.keys(FIELDS).join(", ")}`,
      );
    params.append("not", new URLSearchParams([[key, not.slice(at + 1)]]).toString());
  }
  return params;
}
