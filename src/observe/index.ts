// Observability: the event pipeline and its sinks (stdout, audit log, history, the policy's
// OpenTelemetry and publishers), the snapshot status and metrics read, loss reports, and event
// filters (docs/observability.md).
export { EventPipeline, type SinkOptions } from "./pipeline.ts";
export type { EventSink, FeedFetches, MoatSnapshot, SinkStats, SnapshotSource } from "./sink.ts";
export { stdoutSink } from "./stdout-sink.ts";
export { auditSink, type AuditSink } from "./audit-sink.ts";
export { HistoryWorker } from "./history/remote.ts";
export { historySink, HISTORY_LINGER_MS } from "./history/sink.ts";
export type { HistoryPage, HistoryQuery } from "./history/query.ts";
export {
  ROLLUP_LEVELS,
  type RollupLevel,
  type StatsPage,
  type StatsQuery,
  type StatsRow,
} from "./history/rollup.ts";
export { snapshotSource, type SnapshotDatapath, type SnapshotState } from "./snapshot.ts";
export { loadPolicySinks, sinksFromPolicy, type PolicySinks } from "./policy-sinks.ts";
export { lossReport, type PacketCounts } from "./loss-report.ts";
export { formatNoticeLine, type Notice } from "./notice.ts";
export {
  containerOf,
  FilterError,
  filterParams,
  matchesFilter,
  parseFilter,
  processOf,
  type EventFilter,
} from "./filter.ts";
export { appliedLine, auditReload, recordChange, refusedLine } from "./change-audit.ts";
export { HistoryReader, type HistoryWindow } from "./history/reader.ts";
export { FlowAggregator, type FlowCounters } from "./flows/aggregate.ts";
export { FlowLedger, type LiveConnection } from "./flows/ledger.ts";
export {
  flowEvent,
  identityOf,
  peerOf,
  type FlowConnection,
  type FlowRecord,
  type FlowSummary,
} from "./flows/record.ts";
export * from "./learn/index.ts";
export * from "./anomaly/index.ts";
export { ExeWatch, type ExeWatchOptions } from "./executables/index.ts";
export { readSecretFile, PublishError } from "./publish/secret.ts";
export { domainOf } from "./registrable-domain.ts";
