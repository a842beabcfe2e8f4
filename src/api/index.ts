// The API: moat's HTTP + WebSocket/SSE server over a unix socket or TCP (docs/api.md), and what
// it asks of the daemon (ApiControl).
export { startApi, type ApiServer, type ListenerOptions } from "./server.ts";
export { DEFAULT_SOCKET } from "./listen.ts";
export type {
  ApiControl,
  ApplyOptions,
  ApplyOutcome,
  OriginalView,
  PolicyView,
  ReplayAnswer,
  ReplayOutcome,
  ReplayRequest,
  RuleView,
  FeedStatusView,
  SetChange,
  SetChangeOutcome,
  SetControl,
  SetEntryView,
  SetView,
  SshKeysView,
  SshLoginQuery,
  TrialView,
  ValidateResult,
} from "./control.ts";
