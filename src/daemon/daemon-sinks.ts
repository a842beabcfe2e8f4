// The daemon's own sinks, set up before anything is attached: its output (stdout), the audit log
// (its path from the policy; an unsafe one stops the start here) and the event history.
import type { PolicyModel } from "../config/index.ts";
import {
  auditSink,
  EventPipeline,
  historySink,
  HISTORY_LINGER_MS,
  stdoutSink,
  type AuditSink,
  type HistoryWorker,
} from "../observe/index.ts";
import { historyStore } from "./at-start.ts";

export interface DaemonSinks {
  pipeline: EventPipeline;
  audit: AuditSink;
  history: HistoryWorker | null;
}

export function daemonSinks(
  model: PolicyModel,
  options: { json: boolean; historyPath?: string | null | undefined; log: (line: string) => void },
): DaemonSinks {
  const { log } = options;
  const pipeline = new EventPipeline({ log });
  const audit = auditSink();
  audit.setPath(model.logging.audit?.value.path ?? null);
  pipeline.add(stdoutSink(log, options.json));
  pipeline.add(audit);
  const history = historyStore(model, options.historyPath);
  // it could not open (and is tried again), it opened again, its file went away
  history?.onStatus(log);
  if (history) pipeline.add(historySink(history, log), { lingerMs: HISTORY_LINGER_MS });
  return { pipeline, audit, history };
}
