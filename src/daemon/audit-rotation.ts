// The audit log reopened once logrotate has moved it away: on SIGUSR1 (reopen()), and also when a
// check every few seconds finds another file at its path, or none. Node runs the daemon with
// --disable-sigusr1 (so SIGUSR1 can never open its inspector), and then leaves SIGUSR1 blocked:
// the check is what notices a rotation there.
import { statSync } from "node:fs";
import type { AuditSink } from "../observe/index.ts";

const CHECK_MS = 2000;

/** The file at `path` (device and inode), or null when there is none. */
function fileAt(path: string): string | null {
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}`;
  } catch {
    return null;
  }
}

export interface AuditRotation {
  /** Reopens the audit log now (SIGUSR1). */
  reopen(): void;
  close(): void;
}

export function watchAuditRotation(
  audit: Pick<AuditSink, "path" | "reopen">,
  log: (line: string) => void,
  intervalMs = CHECK_MS,
): AuditRotation {
  // the file the sink writes, as last seen at its path (a reload may move the path)
  let path = audit.path;
  let seen = path ? fileAt(path) : null;
  let warned: string | null = null;
  const reopen = () => {
    path = audit.path;
    try {
      audit.reopen();
      warned = null;
    } catch (err) {
      // the next check tries again; one warning per path
      if (warned !== path)
        log(`warning: the audit log could not be reopened: ${(err as Error).message}`);
      warned = path;
      return;
    }
    seen = path ? fileAt(path) : null;
  };
  const timer = setInterval(() => {
    if (audit.path !== path) {
      path = audit.path;
      seen = path ? fileAt(path) : null;
      return;
    }
    if (path && fileAt(path) !== seen) reopen();
  }, intervalMs);
  timer.unref();
  return { reopen, close: () => clearInterval(timer) };
}
