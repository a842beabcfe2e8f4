// A policy file, checked for what this datapath enforces and compiled to kernel tables.
import {
  assertSupported,
  DATAPATH_FEATURES,
  loadPolicyFile,
  PolicyError,
  type PolicyModel,
} from "../config/index.ts";
import type { ClassifierImage } from "./compile/image.ts";
import { compilePolicy, namesProcesses } from "./compile/policy-image.ts";
import type { ProcessUniverse } from "./compile/process.ts";
import { processRuleProblems } from "./process-support.ts";
import { redirectProblems, unreachableTargets } from "./redirect-support.ts";

export interface LoadedPolicy {
  model: PolicyModel;
  image: ClassifierImage;
}

/** Reads what the process rules can name on this host (src/policy/process-universe.ts). */
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

/** Throws PolicyError (every diagnostic, FILE:LINE:COL) or a compile error with a code. */
export function loadForDatapath(path: string, universe?: UniverseReader): LoadedPolicy {
  return prepareForDatapath(loadPolicyFile(path), universe);
}
