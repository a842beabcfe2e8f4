// What a replay of stored events through a draft policy answers: the connections whose verdict
// the draft changes, by what they would become (blocked, allowed, detected), grouped by process
// and remote, with counts and a few sample events each; what it could not decide; and what it
// read. The API (POST /v1/policy/replay), the CLI and the web console show this.

export type Verdict = "allowed" | "blocked" | "detected";

/** What the draft changes a connection to: "blocked" = newly blocked, and so on. */
export const CHANGES = ["blocked", "allowed", "detected"] as const;
export type Change = (typeof CHANGES)[number];

/** A verdict and the rule that gave it. */
export interface Judged {
  verdict: Verdict;
  rule: string;
}

/** One stored event, as replayed. */
export interface ReplaySample {
  /** The history's row id. */
  id?: number;
  time: string;
  type: string;
  direction: string;
  protocol: string;
  /** "IP:PORT" ("[IPv6]:PORT"), or the address alone without ports. */
  local: string;
  remote: string;
  names?: string[];
  /** "name pid N", or null when the event has no process. */
  process: string | null;
  /** The verdict compared with: the one recorded, or the running policy's. */
  was: Judged;
  /** The draft's verdict and why ("undecided" samples: why it cannot decide). */
  now: { verdict: Verdict | "undecided"; rule: string; reason: string };
}

/** The connections of one process (or container) and remote that change the same way. */
export interface ReplayGroup {
  direction: string;
  /** "container/process", the process name, or "-" when the events name none. */
  process: string;
  /** The remote's first DNS name where moat knew one, else its address. */
  remote: string;
  /** The remote port for egress, the local one for ingress; null without ports. */
  port: number | null;
  protocol: string;
  /** Connections in the group. */
  count: number;
  /** How many of them had each verdict before. */
  was: Partial<Record<Verdict, number>>;
  /** The draft's deciding rules, most connections first. */
  rules: { rule: string; count: number }[];
  samples: ReplaySample[];
}

export interface ChangeList {
  /** Connections the draft changes to this verdict. */
  count: number;
  /** Largest first, at most the report's group limit. */
  groups: ReplayGroup[];
  /** Connections in groups not listed (past the group limit). */
  unlisted: number;
}

export interface ReplayReport {
  /** The window replayed, ISO times. */
  since: string;
  until: string;
  /** What the draft is compared with. */
  baseline: "recorded" | "running";
  /** At most this many stored events are read, newest first. */
  limit: number;
  /** Events read from the history. */
  scanned: number;
  /** Events in the window past the limit: older, not read. */
  notScanned: number;
  /** Connections judged (events read, less repeats and the unreplayable; a summary counts as
   * the connections it covers). */
  replayed: number;
  skipped: {
    /** Another event of a connection already replayed (its close, a re-judgement), and anomaly
     * reports (their flows have records of their own). */
    repeats: number;
    /** DNS exchanges: judged by the dns section, not by rules. */
    dns: number;
    /**
     * Summaries of several connections (flow records) of blocked or detected ones, stored as
     * events of their own, and summaries that count no new connection.
     */
    summaries: number;
    /** Events whose facts are not a connection (a damaged row). */
    unreadable: number;
  };
  /** Connections whose verdict the draft keeps. */
  unchanged: number;
  /** Connections the draft cannot decide from what was stored (e.g. a process rule, no process). */
  undecided: { count: number; needs: Record<string, number>; samples: ReplaySample[] };
  changes: Record<Change, ChangeList>;
}
