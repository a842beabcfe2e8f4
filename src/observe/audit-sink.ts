// The audit log as a pipeline sink. Its path follows the policy (a reload may move it) and the
// daemon also writes policy changes into it, with who made them. One line per entry: control
// characters (a process may name itself anything) are escaped; repeated detections and floods
// are summarised (repeat-summary.ts), changes never are.
import type { MoatEvent } from "../datapath/event.ts";
import { AuditLog } from "./audit-log.ts";
import type { EventSink } from "./sink.ts";
import { printable } from "../config/printable.ts";
import { foldedLines } from "./repeat-summary.ts";
import { formatNoticeLine } from "./notice.ts";

export interface AuditSink extends EventSink {
  /** A new path (policy reload), or null for none; throws AuditLogError for an unsafe path. */
  setPath(path: string | null): void;
  readonly path: string | null;
  /** After logrotate (SIGUSR1). */
  reopen(): void;
  /** A line that is not an event (policy changes); written at once, a failure counted. */
  note(line: string): void;
}

export function auditSink(): AuditSink {
  let log: AuditLog | null = null;
  /** Failed writes of logs closed since (a reload moved the log). */
  let closedFailed = 0;
  /** Failed writes of batches: the pipeline counts those itself, as failed batches. */
  let batchFailed = 0;
  const lines = foldedLines({
    emit: (line) => log?.write(line),
    // summaries written by a timer, between batches: a failure is counted by the log
    flush: () => void log?.flush(),
  });
  const note = (line: string) => {
    if (!log) return;
    log.write(printable(`${new Date().toISOString()} ${line}`));
    log.flush();
  };
  return {
    name: "audit",
    get path() {
      return log?.path ?? null;
    },
    write(batch: readonly MoatEvent[]) {
      if (!log) return;
      lines.write(batch);
      if (log.flush()) return;
      batchFailed++;
      throw new Error(`audit log ${log.path}: ${log.lastError?.message ?? "write failed"}`);
    },
    failures: () => closedFailed + (log?.failed ?? 0) - batchFailed,
    setPath(path) {
      if ((log?.path ?? null) === path) return;
      const next = path ? new AuditLog(path) : null;
      log?.close();
      closedFailed += log?.failed ?? 0;
      log = next;
    },
    reopen() {
      log?.reopen();
    },
    note,
    notice(n) {
      note(formatNoticeLine(n));
    },
    close() {
      lines.close();
      log?.close();
      closedFailed += log?.failed ?? 0;
      log = null;
    },
  };
}
