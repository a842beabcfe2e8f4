// Where decoded events go in this version: stdout (a line or JSON each) and the audit log.
import type { MoatEvent } from "../datapath/events.ts";
import { formatEventLine } from "../datapath/events.ts";
import { AuditLog } from "./audit-log.ts";

export interface EventOutputs {
  emit(event: MoatEvent): void;
  /** A new audit path (policy reload) or the same one reopened (logrotate). */
  setAuditPath(path: string | null): void;
  reopen(): void;
  close(): void;
}

export function createOutputs(log: (line: string) => void, json: boolean): EventOutputs {
  let audit: AuditLog | null = null;
  return {
    emit(event) {
      const line = formatEventLine(event);
      log(json ? JSON.stringify(event) : line);
      audit?.write(line);
    },
    setAuditPath(path) {
      if ((audit?.path ?? null) === path) return;
      const next = path ? new AuditLog(path) : null;
      audit?.close();
      audit = next;
    },
    reopen() {
      audit?.reopen();
    },
    close() {
      audit?.close();
      audit = null;
    },
  };
}
