// Learning a least-privilege policy from the flow roll-ups (docs/learning.md): proposals and promotion.
export {
  promotePolicy,
  promoteSince,
  suggestPolicy,
  SUGGEST_DEFAULTS,
  type SuggestedRuleView,
  type Suggestion,
  type SuggestRequest,
  type SuggestSettings,
} from "./suggest.ts";
export {
  identityKey,
  MAX_LEARN_ROWS,
  type IdentityDay,
  type LearnInput,
  type LearnOverflow,
  type LearnRow,
} from "./learn-rows.ts";
export { generalisePeers, portRanges, GENERALISE_DEFAULTS } from "./generalise.ts";
export { propose, MAX_DESTINATIONS, MAX_IDENTITIES, MAX_RULES } from "./propose.ts";
export { rowFacts } from "./identity.ts";
export { SUGGESTED_PREFIX } from "./edit.ts";
