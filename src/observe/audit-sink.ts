// The audit log as a pipeline sink. Its path follows the policy (a reload may move it) and the
// daemon also writes policy changes into it, with who made them. Floods are summarised
// (flood-summary.ts); changes never are.
import type { MoatEvent } from "../datapath/events.ts";
import { formatEventLine } from "../datapath/events.ts";
import { AuditLog } from "./audit-log.ts";
import { FloodSummary } from "./flood-summary.ts";
import type { EventSink } from "./sink.ts";

export interface AuditSink extends EventSink {
  /** A new path (policy reload), or null for none; throws AuditLogError for an unsafe path. */
  setPath(path: string | null): void;
  readonly path: string | null;
  /** After logrotate (SIGUSR1). */
  reopen(): void;
  /** A line that is not an event (policy changes); written at once. */
  note(line: string): void;
}

export function auditSink(): AuditSink {
  let log: AuditLog | null = null;
  const floods = new FloodSummary((line) => {
    log?.write(line);
    log?.flush();
  });
  return {
    name: "audit",
    get path() {
      return log?.path ?? null;
    },
    write(batch: readonly MoatEvent[]) {
      if (!log) return;
      for (const event of batch) if (floods.admit(event)) log.write(formatEventLine(event));
      log.flush();
    },
    setPath(path) {
      if ((log?.path ?? null) === path) return;
      const next = path ? new AuditLog(path) : null;
      log?.close();
      log = next;
    },
    reopen() {
      log?.reopen();
    },
    note(line) {
      if (!log) return;
      log.write(`${new Date().toISOString()} ${line}`);
      log.flush();
    },
    close() {
      floods.close();
      log?.close();
      log = null;
    },
  };
}
