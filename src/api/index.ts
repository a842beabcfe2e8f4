// The API: moat's HTTP + WebSocket/SSE server over a unix socket or TCP (docs/api.md), and what
// it asks of the daemon (ApiControl).
export { startApi, type ApiServer, type ListenerOptions } from "./server.ts";
export { DEFAULT_SOCKET } from "./listen.ts";
export { HttpError } from "./errors.ts";
export type {
  AnomalyView,
  ApiControl,
  ApplyOptions,
  ApplyOutcome,
  DecisionBody,
  DecisionOutcome,
  DecisionsView,
  OriginalView,
  PolicyView,
  ReplayAnswer,
  ReplayOutcome,
  ReplayRequest,
  ReviewAnswer,
  ReviewEntry,
  ReviewView,
  RuleView,
  FeedStatusView,
  JobContext,
  SetChange,
  SetChangeOutcome,
  SetControl,
  SetEntryView,
  SetView,
  SshKeysView,
  SuggestAnswer,
  SuggestApiRequest,
  SuggestOutcome,
  SshLoginQuery,
  TrialView,
  ValidateResult,
} from "./control.ts";
