// Which content (sha256) each executable path was seen with: the first one seen is the path's
// baseline; a content never seen for the path before is a change, said once. A content the path
// had before (a process started before an upgrade still runs it) is no change. Identities stay
// keyed by path, so an upgrade keeps its statistics and anomaly baselines; the change is its own
// event (docs/anomaly.md, "Changed executables"). Pure: time is the caller's.

/** Paths remembered; past this, the least recently seen path is forgotten (counted). */
export const MAX_EXE_PATHS = 4096;
/** Earlier contents remembered per path. */
export const MAX_EARLIER_HASHES = 8;

export interface ExePathEntry {
  /** The newest content seen (sha256, hex). */
  hash: string;
  /** Contents seen before it, newest first. */
  earlier: string[];
  /** ms since the epoch. */
  firstMs: number;
  lastMs: number;
}

export class ExeLedger {
  /** Least recently seen first. */
  readonly paths = new Map<string, ExePathEntry>();
  /** Paths dropped to keep MAX_EXE_PATHS. */
  forgotten = 0;

  /** Notes `path` seen with `hash`; returns the content before it on a change, else null. */
  seen(path: string, hash: string, timeMs: number): string | null {
    const entry = this.paths.get(path);
    if (!entry) {
      if (this.paths.size >= MAX_EXE_PATHS) {
        const oldest = this.paths.keys().next().value;
        if (oldest !== undefined) this.paths.delete(oldest);
        this.forgotten++;
      }
      this.paths.set(path, { hash, earlier: [], firstMs: timeMs, lastMs: timeMs });
      return null;
    }
    // most recently seen last
    this.paths.delete(path);
    this.paths.set(path, entry);
    entry.lastMs = Math.max(entry.lastMs, timeMs);
    if (entry.hash === hash || entry.earlier.includes(hash)) return null;
    const old = entry.hash;
    entry.earlier = [old, ...entry.earlier].slice(0, MAX_EARLIER_HASHES);
    entry.hash = hash;
    return old;
  }
}
