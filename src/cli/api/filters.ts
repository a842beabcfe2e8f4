// Event filter options shared by `moat events` and `moat top`, as API query parameters.
import type { OptionValues } from "../command.ts";

export const FILTER_OPTIONS = {
  type: { type: "string" },
  verdict: { type: "string" },
  rule: { type: "string" },
  direction: { type: "string" },
  remote: { type: "string" },
  process: { type: "string" },
  container: { type: "string" },
} as const;

export const FILTER_USAGE =
  "[--type allowed,blocked,detected,closed] [--verdict V] [--rule NAME] [--direction ingress|egress]\n" +
  "  [--remote CIDR|NAME] [--process NAME|PID] [--container ID|NAME]";

export function filterQuery(values: OptionValues): URLSearchParams {
  const params = new URLSearchParams();
  for (const key of Object.keys(FILTER_OPTIONS)) {
    const v = values[key];
    if (typeof v === "string") params.set(key, v);
  }
  return params;
}
