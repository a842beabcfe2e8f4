// The audit log: one human-readable line per event, root-only (0600, owner root). Refuses a
// path that others could tamper with; reopen() after logrotate moved the file (SIGUSR1).
import {
  closeSync,
  fchmodSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  writeSync,
} from "node:fs";
import { dirname } from "node:path";

export class AuditLogError extends Error {
  readonly code = "EAUDITLOG";
  constructor(message: string) {
    super(message);
    this.name = "AuditLogError";
  }
}

function checkDirectory(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (st.isSymbolicLink())
    throw new AuditLogError(
      `audit log directory ${dir} is a symlink; refusing to write through it`,
    );
  if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) {
    throw new AuditLogError(
      `audit log directory ${dir} is group/world-writable; make it 0755 or stricter`,
    );
  }
}

function checkFile(path: string): void {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return; // created below
  }
  if (st.isSymbolicLink())
    throw new AuditLogError(`audit log ${path} is a symlink; refusing to follow it`);
  if (!st.isFile()) throw new AuditLogError(`audit log ${path} is not a regular file`);
  if ((st.mode & 0o022) !== 0) {
    throw new AuditLogError(
      `audit log ${path} is group/world-writable; refusing to use it (chmod 600 it)`,
    );
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

  private static open(path: string): number {
    checkDirectory(dirname(path));
    checkFile(path);
    const fd = openSync(path, "a", 0o600);
    fchmodSync(fd, 0o600);
    if (fstatSync(fd).uid !== 0 && process.getuid?.() === 0) {
      closeSync(fd);
      throw new AuditLogError(`audit log ${path} is not owned by root`);
    }
    return fd;
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
