// The policy configuration layer: policy text -> validated, normalized model (see
// docs/policy.md). Pure: files are read through a PolicyHost (src/host/policy-files.ts).

export {
  checkPolicySource,
  parsePolicy,
  parsePolicyWith,
  textOnlyHost,
  type PolicyCheck,
} from "./parse.ts";
export type { PolicyFileKind, PolicyHost } from "./check-context.ts";
export {
  KEPT_POS,
  plainPos,
  PositionTable,
  setPackedHoldMs,
  TablePos,
  type PackedTable,
  type PositionTableParts,
} from "./positions.ts";
export { positionsReader } from "./lean-source.ts";
export { isAddressOnly, markAddressOnly } from "./address-only.ts";
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
export { jsonNestsDeeper } from "./json-depth.ts";
export { parseDuration } from "./duration.ts";
export { parseAddressEntry, parseHostname } from "./address-entry.ts";
export {
  formatDynamicSetFile,
  liveEntries,
  MAX_ENTRY_TIMEOUT_SECONDS,
  parseDynamicSetFile,
  timeoutTooLong,
  type DynamicEntry,
} from "./dynamic-set-file.ts";
export {
  feedAddresses,
  parseFeed,
  stixPatternAddresses,
  type FeedFormat,
  type FeedParse,
} from "./feed-parse.ts";
export { PolicySchema, type PolicyDocument } from "./schema.ts";
export type * from "./model.ts";
export type { EventsLostChoice } from "./failure-events.ts";
export { PROTOCOL_NUMBERS } from "./model.ts";
export {
  ANOMALY_DETECTORS,
  DEFAULT_ANOMALY,
  type AnomalyDetectorName,
  type AnomalyModel,
} from "./anomaly-settings.ts";
export {
  decisionProblems,
  modeDecisionProblems,
  describeLifetime,
  parseLifetime,
  DECISION_PROTOCOLS,
  ONCE_WAIT_SECONDS,
  type DecisionLifetime,
  type ModeDecision,
} from "./decision.ts";
export { parseSignature, type IdsSignature, type IdsParse } from "./ids-signature.ts";
