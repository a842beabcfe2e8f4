// The audit log: one human-readable line per event, root-only (0600, owner root). Refuses a
// path that others could tamper with (src/host/trusted-file.ts); reopen() after logrotate moved
// the file (SIGUSR1).
import { closeSync, writeSync } from "node:fs";
import { openTrustedForWrite, UnsafeFileError } from "../host/index.ts";

export class AuditLogError extends Error {
  readonly code = "EAUDITLOG";
  constructor(message: string) {
    super(message);
    this.name = "AuditLogError";
  }
}

export class AuditLog {
  readonly path: string;
  private fd: number;
  private pending: string[] = [];
  private scheduled = false;

  constructor(path: string) {
    this.path = path;
    this.fd = AuditLog.open(path);
  }

  /** Checked as src/host/trusted-file.ts says; missing directories are created 0700. */
  private static open(path: string): number {
    try {
      return openTrustedForWrite(path, { what: "audit log", createDirs: true }).fd;
    } catch (err) {
      if (err instanceof UnsafeFileError) throw new AuditLogError(err.message);
      throw err;
    }
  }

  /** Lines of one event-loop turn are written together (one write per batch of events). */
  write(line: string): void {
    this.pending.push(line);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  flush(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const text = `${this.pending.join("\n")}\n`;
    this.pending = [];
    writeSync(this.fd, text);
  }

  /** After rotation: a new file at the same path. */
  reopen(): void {
    this.flush();
    const fd = AuditLog.open(this.path);
    closeSync(this.fd);
    this.fd = fd;
  }

  close(): void {
    this.flush();
    closeSync(this.fd);
  }
}
