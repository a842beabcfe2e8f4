// moat check FILE...: validate policy files and print every problem with its position. A policy
// is accepted exactly as the daemon accepts it (src/host/accept-policy.ts): what check passes, the
// daemon applies.

import type { Command } from "../command.ts";
import { diagnosticLines, printable, type Diagnostic } from "../../config/index.ts";
import { acceptPolicyFileAsync } from "../../host/index.ts";
import { UsageError } from "../command.ts";

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

const USAGE = "moat check FILE...";

export const checkCommand: Command = {
  name: "check",
  summary: "validate policy files as the daemon would: every error and warning with FILE:LINE:COL",
  usage: USAGE,
  async run({ positionals }, io) {
    if (positionals.length === 0) throw new UsageError(`no policy file given\nusage: ${USAGE}`);
    let failed = false;
    for (const file of positionals) {
      const { diagnostics, summary } = await checkOne(file);
      for (const line of diagnosticLines(diagnostics, file)) io.out(line);
      io.out(printable(summary));
      failed ||= diagnostics.some((d) => d.severity === "error");
    }
    return failed ? 1 : 0;
  },
};

async function checkOne(file: string): Promise<{ diagnostics: Diagnostic[]; summary: string }> {
  const { diagnostics, policy } = await acceptPolicyFileAsync(file);
  const errors = diagnostics.filter((d) => d.severity === "error").length;
  const warnings = diagnostics.length - errors;
  const warned = warnings > 0 ? `, ${plural(warnings, "warning")}` : "";
  const model = policy?.model;
  const summary = model
    ? `${file}: ok, ${plural(model.rules.length, "rule")}, ${plural(model.sets.size, "set")}${warned}`
    : `${file}: ${plural(errors, "error")}${warned}`;
  return { diagnostics, summary };
}
