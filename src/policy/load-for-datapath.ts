// A policy file, checked for what this datapath enforces and compiled to kernel tables.
import {
  assertSupported,
  DATAPATH_FEATURES,
  loadPolicyFile,
  type PolicyModel,
} from "../config/index.ts";
import { compile } from "./compile/compile.ts";
import type { ClassifierImage } from "./compile/image.ts";

export interface LoadedPolicy {
  model: PolicyModel;
  image: ClassifierImage;
}

/** Throws PolicyError (every diagnostic, FILE:LINE:COL) or a compile error with a code. */
export function loadForDatapath(path: string): LoadedPolicy {
  const model = loadPolicyFile(path);
  assertSupported(model, DATAPATH_FEATURES);
  return { model, image: compile(model) };
}
