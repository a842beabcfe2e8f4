// moat check FILE...: validate policy files and print every problem with its position. A policy
// is accepted exactly as the daemon accepts it (src/host/accept-policy.ts): what check passes, the
// daemon applies.

import type { Command } from "../command.ts";
import { diagnosticLines, printable, type Diagnostic } from "../../config/index.ts";
import { acceptPolicyFileAsync } from "../../host/index.ts";
import { UsageError } from "../command.ts";
import { EXIT } from "../exit-codes.ts";
import { jsonLine } from "../json-line.ts";
import { terminalProgress } from "../progress.ts";

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

const USAGE = `moat check [--json] FILE...
  Exit status: 0 every file is valid (warnings allowed), 1 a file has errors, 2 usage.
  --json: one object a file: {file, ok, rules, sets, signatures?, refused?, diagnostics: [{file,
    line, col, path, severity, message}]} (signatures, refused: ids signatures accepted, refused)`;

/** One file's outcome, as --json prints it. */
export interface CheckResult {
  file: string;
  ok: boolean;
  /** Counts of the accepted policy; absent when it has errors. */
  rules?: number;
  sets?: number;
  /** ids signatures accepted and refused (present when the policy has an ids section). */
  signatures?: number;
  refused?: number;
  diagnostics: Diagnostic[];
}

export const checkCommand: Command = {
  name: "check",
  summary: "validate policy files as the daemon would: every error and warning with FILE:LINE:COL",
  usage: USAGE,
  options: { json: { type: "boolean" } },
  async run({ values, positionals }, io) {
    if (positionals.length === 0)
      throw new UsageError(`no policy file given\nusage: moat check [--json] FILE...`);
    let failed = false;
    for (const file of positionals) {
      const result = await checkOne(file);
      if (values.json) io.out(jsonLine(result));
      else {
        for (const line of diagnosticLines(result.diagnostics, file)) io.out(line);
        io.out(printable(summaryOf(result)));
      }
      failed ||= !result.ok;
    }
    return failed ? EXIT.failed : EXIT.ok;
  },
};

async function checkOne(file: string): Promise<CheckResult> {
  // a 100k-rule policy or a set file of a million entries takes seconds: say what is under way
  const progress = terminalProgress();
  const { diagnostics, policy } = await acceptPolicyFileAsync(file, {
    progress: (step) => progress.step(step),
  }).finally(() => progress.done());
  const model = policy?.model;
  const ok = model !== undefined && !diagnostics.some((d) => d.severity === "error");
  return model && ok
    ? {
        file,
        ok,
        rules: model.rules.length,
        sets: model.sets.size,
        ...(model.ids
          ? { signatures: model.ids.signatures.length, refused: model.ids.refused }
          : {}),
        diagnostics,
      }
    : { file, ok, diagnostics };
}

function summaryOf(r: CheckResult): string {
  const errors = r.diagnostics.filter((d) => d.severity === "error").length;
  const warnings = r.diagnostics.length - errors;
  const warned = warnings > 0 ? `, ${plural(warnings, "warning")}` : "";
  const ids =
    r.signatures !== undefined
      ? `, ${plural(r.signatures, "ids signature")}${r.refused ? ` (${r.refused} refused)` : ""}`
      : "";
  return r.ok
    ? `${r.file}: ok, ${plural(r.rules ?? 0, "rule")}, ${plural(r.sets ?? 0, "set")}${ids}${warned}`
    : `${r.file}: ${plural(errors, "error")}${warned}`;
}
