// moat rules: each rule of the running policy with what it does and how often it decided, from
// the kernel's per-rule counters (every connection, reported or not) of the live generation.
import type { Command } from "../command.ts";
import { UsageError } from "../command.ts";
import { API_OPTIONS, API_USAGE, apiTarget, call } from "../api/client.ts";
import type { PolicyView } from "../../api/index.ts";
import { jsonLine } from "../json-line.ts";
import { rulesTable, type RuleCounts, type RuleRow } from "../rules-view.ts";

export const rulesCommand: Command = {
  name: "rules",
  summary: "per-rule counters of the running policy: connections, packets, bytes, by verdict",
  usage: `moat rules [--json] [--sort connections|name] ${API_USAGE}
  Counters are the kernel's for the live generation: they start again when a policy is
  applied (a reload, moat policy apply, moat mode). Connections no rule matched count under
  defaults.ingress and defaults.egress.`,
  options: { ...API_OPTIONS, json: { type: "boolean" }, sort: { type: "string" } },
  async run({ values, positionals }, io) {
    if (positionals.length)
      throw new UsageError("usage: moat rules [--json] [--sort connections|name]");
    const sort = values.sort ?? "policy";
    if (sort !== "policy" && sort !== "connections" && sort !== "name")
      throw new UsageError(`--sort takes connections or name, got '${String(sort)}'`);
    const target = apiTarget(values);
    const [counts, policy] = await Promise.all([
      call<RuleCounts>(target, "GET", "/v1/rules"),
      call<PolicyView>(target, "GET", "/v1/policy"),
    ]);
    const meta = new Map((policy.rules ?? []).map((r) => [r.name, r]));
    const rows: RuleRow[] = counts.rules.map((c) => ({ ...meta.get(c.name), ...c }));
    if (sort === "connections") rows.sort((a, b) => b.connections - a.connections);
    if (sort === "name") rows.sort((a, b) => a.name.localeCompare(b.name));
    if (values.json)
      io.out(jsonLine({ generation: counts.generation, mode: policy.mode, rules: rows }));
    else for (const line of rulesTable(counts.generation, rows)) io.out(line);
    return 0;
  },
};
