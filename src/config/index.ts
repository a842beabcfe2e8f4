// The policy configuration layer: file -> validated, normalized model (see docs/policy.md).

export { checkPolicyFile, loadPolicyFile, nodeHost, parsePolicy } from "./load.ts";
export { checkPolicySource, parsePolicyWith, type PolicyCheck } from "./parse.ts";
export type { PolicyHost } from "./check-context.ts";
export {
  diagnostic,
  diagnosticLines,
  formatDiagnostic,
  PolicyError,
  sortDiagnostics,
  type Diagnostic,
  type Severity,
  type SourcePos,
} from "./diagnostics.ts";
export {
  assertSupported,
  DATAPATH_FEATURES,
  FEATURES,
  unsupportedFeatures,
  type Feature,
} from "./unsupported.ts";
export { printable } from "./printable.ts";
export { PolicySchema, type PolicyDocument } from "./schema.ts";
export type * from "./model.ts";
export { PROTOCOL_NUMBERS } from "./model.ts";
