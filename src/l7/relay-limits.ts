// How many connections the relay holds at once, so that no user can take the daemon's file
// descriptors: counted per owner uid, as the kernel recorded the client. A quarter of the
// descriptors stays for the rest of the daemon (BPF maps and links, the DNS proxy, the API, a
// policy compile); a quarter of the relay's connections stays for root, whatever other users hold.
import { readFileSync } from "node:fs";

export interface RelayLimits {
  /** Connections relayed at once, all users together. */
  connections: number;
  /** Connections relayed at once for one uid. */
  perUid: number;
}

/**
 * Descriptors a relayed connection holds at most: the client's and the upstream's sockets, a TLS
 * probe's for a moment, and once spliced the kernel splice's own (a copy of three splice maps for
 * a sockmap pair, two pipes when it falls back to splice(2)).
 */
export const FILES_PER_CONNECTION = 10;
/** When the limit cannot be read: the usual soft limit. */
const FALLBACK_FILES = 1024;

/** The process's soft RLIMIT_NOFILE as the kernel states it (/proc/self/limits). */
export function openFileLimit(): number {
  try {
    const text = readFileSync("/proc/self/limits", "utf8");
    const soft = /^Max open files\s+(\d+)/m.exec(text)?.[1];
    return soft ? Number(soft) : FALLBACK_FILES;
  } catch {
    return FALLBACK_FILES;
  }
}

/** The relay's limits for a process that may hold `files` descriptors. */
export function relayLimits(files: number): RelayLimits {
  const forRelay = files - Math.ceil(files / 4);
  const connections = Math.max(8, Math.floor(forRelay / FILES_PER_CONNECTION));
  return { connections, perUid: Math.max(1, Math.floor(connections / 8)) };
}

/** A connection's place in the count; given back once, when it ends. */
export interface Slot {
  release(): void;
}

/** Who holds how many of the relay's connections. */
export class ConnectionCount {
  private readonly byUid = new Map<number, number>();
  private total = 0;
  private others = 0;
  private readonly limits: RelayLimits;

  constructor(limits: RelayLimits) {
    this.limits = limits;
  }

  /**
   * A place for a connection of `uid` (-1: owner not known), or null when the uid holds its share,
   * or the users other than root hold theirs together, or (root) all places are taken.
   */
  take(uid: number): Slot | null {
    const held = this.byUid.get(uid) ?? 0;
    const root = uid === 0;
    const { connections, perUid } = this.limits;
    if (this.total >= connections) return null;
    if (!root && (held >= perUid || this.others >= connections - Math.floor(connections / 4)))
      return null;
    this.byUid.set(uid, held + 1);
    this.total++;
    if (!root) this.others++;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        const now = (this.byUid.get(uid) ?? 1) - 1;
        if (now === 0) this.byUid.delete(uid);
        else this.byUid.set(uid, now);
        this.total--;
        if (!root) this.others--;
      },
    };
  }
}

/** The uids a refusal line names (those refused most). */
const SHOWN_UIDS = 5;

/**
 * Refusals logged once per interval: how many, by uid, in one line (a flood of connections does
 * not become a flood of lines).
 */
export class RefusalLog {
  private readonly byUid = new Map<number, number>();
  private timer: NodeJS.Timeout | null = null;
  private readonly intervalMs: number;
  private readonly log: (line: string) => void;

  constructor(intervalMs: number, log: (line: string) => void) {
    this.intervalMs = intervalMs;
    this.log = log;
  }

  count(uid: number): void {
    this.byUid.set(uid, (this.byUid.get(uid) ?? 0) + 1);
    this.timer ??= setTimeout(() => this.flush(), this.intervalMs).unref();
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private flush(): void {
    this.timer = null;
    const byCount = [...this.byUid].sort((a, b) => b[1] - a[1]);
    this.byUid.clear();
    const total = byCount.reduce((sum, [, n]) => sum + n, 0);
    const parts = byCount
      .slice(0, SHOWN_UIDS)
      .map(([uid, n]) => `${uid < 0 ? "owner unknown" : `uid ${uid}`}: ${n}`);
    if (byCount.length > SHOWN_UIDS) parts.push(`${byCount.length - SHOWN_UIDS} more uids`);
    const seconds = Math.round(this.intervalMs / 100) / 10;
    this.log(
      `reset ${total} connections over the relay's limits in ${seconds} s (${parts.join(", ")})`,
    );
  }
}
