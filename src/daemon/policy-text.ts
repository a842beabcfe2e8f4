// Policy text as the daemon handles it: checked and compiled from text (the file, or a body the
// API received), rewritten for a mode switch, and written back to the policy file atomically.
import { createHash } from "node:crypto";
import { renameSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { parseDocument } from "yaml";
import {
  assertSupported,
  checkPolicySource,
  DATAPATH_FEATURES,
  formatDiagnostic,
  nodeHost,
  parsePolicy,
  PolicyError,
  sortDiagnostics,
  unsupportedFeatures,
} from "../config/index.ts";
import type { PolicyModel } from "../config/index.ts";
import {
  compilePolicy,
  namesProcesses,
  type PolicyImage,
  processRuleProblems,
  type ProcessUniverse,
  redirectProblems,
} from "../policy/index.ts";
import { unreachableTargets } from "../host/index.ts";
import type { ValidateResult } from "../api/index.ts";

export interface LoadedPolicy {
  model: PolicyModel;
  image: PolicyImage;
}

/** Reads what the process rules can name on this host (src/host/process-universe.ts). */
export type UniverseReader = (model: PolicyModel) => ProcessUniverse;

/**
 * A loaded model -> kernel tables, refusing what the datapath cannot enforce (PolicyError with
 * every diagnostic). Without `universe`, process rules match nothing (tests of the packet path)
 * and redirect targets are not checked against this host's routes.
 */
export function prepareForDatapath(model: PolicyModel, universe?: UniverseReader): LoadedPolicy {
  assertSupported(model, DATAPATH_FEATURES);
  const problems = [...processRuleProblems(model), ...redirectProblems(model)];
  if (problems.length > 0) throw new PolicyError(problems);
  const host = namesProcesses(model) && universe ? universe(model) : null;
  if (universe && model.redirects.length > 0) {
    const unreachable = unreachableTargets(model, host);
    if (unreachable.length > 0) throw new PolicyError(unreachable);
  }
  return { model, image: compilePolicy(model, host) };
}

export const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");

/** `fileName` names the text in diagnostics and anchors relative set files. */
export function compilePolicyText(
  text: string,
  fileName: string,
  universe?: UniverseReader,
): LoadedPolicy {
  return prepareForDatapath(parsePolicy(text, fileName), universe);
}

/** Every problem the daemon would refuse the text for (unsupported features are errors here). */
export function validatePolicyText(text: string, fileName: string): ValidateResult {
  let check;
  try {
    check = checkPolicySource(text, fileName, nodeHost);
  } catch (err) {
    if (err instanceof PolicyError)
      return { ok: false, errors: err.diagnostics.map(formatDiagnostic), warnings: [] };
    throw err;
  }
  const unsupported = check.model
    ? [
        ...unsupportedFeatures(check.model, DATAPATH_FEATURES),
        ...processRuleProblems(check.model),
        ...redirectProblems(check.model),
      ]
    : [];
  const all = sortDiagnostics([...check.diagnostics, ...unsupported]);
  const errors = all.filter((d) => d.severity === "error").map(formatDiagnostic);
  const warnings = all.filter((d) => d.severity === "warning").map(formatDiagnostic);
  if (errors.length === 0 && check.model) {
    try {
      compilePolicy(check.model, null);
    } catch (err) {
      errors.push(`${fileName}: ${(err as Error).message}`);
    }
  }
  return { ok: errors.length === 0, errors, warnings };
}

/** The same text with `mode:` set (comments and layout kept). */
export function withMode(text: string, mode: "detect" | "prevent"): string {
  const doc = parseDocument(text);
  doc.set("mode", mode);
  return doc.toString();
}

/** Replaces the file by rename, so a reader never sees half a policy; keeps its mode. */
export function writePolicyFile(path: string, text: string): void {
  const tmp = join(dirname(path), `.${basename(path)}.moat-${process.pid}.tmp`);
  let mode = 0o600;
  try {
    mode = statSync(path).mode & 0o777;
  } catch {
    // a new file
  }
  writeFileSync(tmp, text, { mode });
  renameSync(tmp, path);
}
