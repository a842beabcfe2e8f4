// The policy's meaning, pure (no host access, nothing from node:, so a browser runs it too): the
// reference evaluator that judges a connection and explains why, and the compiler from a policy
// model to the PolicyImage the datapath loads.
export { evaluate, type Decision } from "./evaluator.ts";
export { feedOf, type FeedTag } from "./feed-of.ts";
export { quarantinesAny, ruleNamed } from "./rule-named.ts";
export { IdsMatcher, type IdsBudget, type IdsStream } from "./ids-match.ts";
export type { ConnectionFacts } from "./facts.ts";
export { parseConnectionText } from "./connection-text.ts";
export { formatProcess, parseProcessText, PROCESS_FIELDS } from "./process-text.ts";
export { processRuleProblems } from "./process-support.ts";
export { splitUsers } from "./match-context.ts";
export { redirectProblems } from "./redirect-support.ts";
export { nameRuleProblems, nameRuleWarnings } from "./names-support.ts";
export { httpRuleWarnings } from "./http-support.ts";
export { usesNames } from "./uses-names.ts";
export {
  addressIndexBuffers,
  adoptAddressIndex,
  packAddressIndex,
  type PackedAddressIndex,
} from "./address-index.ts";
export { layer7RuleProblems, relayRule, relayProtocols } from "./layer7-support.ts";
export { DOH_RULE, QUIC_RULE, withImplicitRules } from "./implicit-rules.ts";
export { DECISION_PREFIX, decisionIdOf, decisionRuleName } from "./decision-rules.ts";
export {
  compilePolicy,
  namesProcesses,
  DNS_PROXY_REDIRECT,
  L7_RELAY_REDIRECT,
  type DnsProxyTargets,
  type PolicyCompileOptions,
} from "./compile/policy-image.ts";
export { NameClasses, NAME_CLASS_BUDGET } from "./compile/names.ts";
export type { PolicyImage } from "./compile/kernel-image.ts";
export type { ClassifierImage, ImageRule, TableImage } from "./compile/image.ts";
export { tableImage } from "./compile/image.ts";
export type { ProcessUniverse, UniverseQuery } from "./compile/process.ts";
export { universeQuery } from "./compile/process.ts";
export type { RedirectTarget } from "./compile/redirect.ts";
export {
  judgeSshLogin,
  loginFacts,
  policyClientKeys,
  type SshKeyVerdict,
  type SshLogin,
} from "./ssh-logins.ts";
export {
  acceptPolicyText,
  acceptCheckedPolicy,
  sizeOf,
  type Acceptance,
  type HostJudgement,
  type LoadedPolicy,
} from "./accept-text.ts";
export { explanationLines, describeLayer7 } from "./explain-lines.ts";
export { ruleMisses, type RuleMiss } from "./rule-misses.ts";
export {
  CHANGES,
  Replay,
  storedFacts,
  type ReplayGroup,
  type ReplayOptions,
  type ReplayReport,
  type ReplaySample,
  type StoredEvent,
} from "./replay/index.ts";
export { changeSummary, policyChanges } from "./policy-diff.ts";
export { lineEdits, unifiedDiff, type DiffOp } from "./line-diff.ts";
