// The audit log: one human-readable line per event, root-only (0600, owner root). Refuses a
// path that others could tamper with (src/host/trusted-file.ts); reopen() after logrotate moved
// the file (SIGUSR1). A write that fails (disk full, I/O error) loses its lines and is counted;
// it never throws, so a summary written by a timer cannot end the daemon.
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
  /** A failed write left part of a line: the next write starts a new line first. */
  private partial = false;
  /** Writes that failed since open, their lines lost. */
  failed = 0;
  lastError: Error | undefined;

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

  /** Writes what is pending; false when the write failed (counted in `failed`). */
  flush(): boolean {
    this.scheduled = false;
    if (this.pending.length === 0) return true;
    const text = `${this.partial ? "\n" : ""}${this.pending.join("\n")}\n`;
    this.pending = [];
    const bytes = Buffer.from(text, "utf8");
    let done = 0;
    try {
      // a short write (the disk filled up meanwhile) writes the rest or fails on it
      while (done < bytes.length) done += writeSync(this.fd, bytes, done);
      this.partial = false;
      return true;
    } catch (err) {
      this.failed++;
      this.lastError = err instanceof Error ? err : new Error(String(err));
      if (done > 0) this.partial = true;
      return false;
    }
  }

  /** After rotation: a new file at the same path. */
  reopen(): void {
    this.flush();
    const fd = AuditLog.open(this.path);
    try {
      closeSync(this.fd);
    } catch {
      // the old file is done with either way
    }
    this.fd = fd;
    this.partial = false;
  }

  close(): void {
    this.flush();
    try {
      closeSync(this.fd);
    } catch {
      // nothing left to lose: what failed to reach the file is counted
    }
  }
}
