// moat check FILE...: validate policy files and print every problem with its position.

import type { Command } from "../command.ts";
import { processRuleProblems } from "../../policy/index.ts";
import {
  checkPolicyFile,
  DATAPATH_FEATURES,
  formatDiagnostic,
  PolicyError,
  sortDiagnostics,
  unsupportedFeatures,
  type Diagnostic,
} from "../../config/index.ts";
import { UsageError } from "../command.ts";

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

const USAGE = "moat check FILE...";

export const checkCommand: Command = {
  name: "check",
  summary: "validate policy files: every error and warning with FILE:LINE:COL",
  usage: USAGE,
  async run({ positionals }, io) {
    if (positionals.length === 0) throw new UsageError(`no policy file given\nusage: ${USAGE}`);
    let failed = false;
    for (const file of positionals) {
      const { diagnostics, summary } = checkOne(file);
      for (const d of diagnostics) io.out(formatDiagnostic(d));
      io.out(summary);
      failed ||= diagnostics.some((d) => d.severity === "error");
    }
    return failed ? 1 : 0;
  },
};

function checkOne(file: string): { diagnostics: Diagnostic[]; summary: string } {
  let result;
  try {
    result = checkPolicyFile(file);
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    return { diagnostics: err.diagnostics, summary: `${file}: 1 error` };
  }
  const { model } = result;
  // what the datapath cannot enforce yet would be refused by the daemon: say so, as a warning
  const unsupported = model
    ? [...unsupportedFeatures(model, DATAPATH_FEATURES), ...processRuleProblems(model)].map(
        (d) => ({
          ...d,
          severity: "warning" as const,
        }),
      )
    : [];
  const diagnostics = sortDiagnostics([...result.diagnostics, ...unsupported]);
  const errors = diagnostics.filter((d) => d.severity === "error").length;
  const warnings = diagnostics.length - errors;
  const warned = warnings > 0 ? `, ${plural(warnings, "warning")}` : "";
  const summary = model
    ? `${file}: ok, ${plural(model.rules.length, "rule")}, ${plural(model.sets.size, "set")}${warned}`
    : `${file}: ${plural(errors, "error")}${warned}`;
  return { diagnostics, summary };
}
