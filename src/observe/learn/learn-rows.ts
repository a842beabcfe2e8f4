// What learning reads: the flow statistics' roll-ups (src/observe/history/rollup.ts) added up
// over a window, one row per identity x peer x port x protocol x direction, and per identity and
// day for promotion. Never raw events: a week of history is a bounded number of these rows.

/** One identity's traffic to one peer, port and protocol in the window. */
export interface LearnRow {
  /** Executable path (comm where no path was known); "" when no socket hook saw the socket. */
  exe: string;
  /** `exe` is the process's name (comm), which it chose: never a path (a comm may hold a slash). */
  nameOnly: boolean;
  /** uid; -1 unknown. */
  user: number;
  /** Container name (else id); "" when none. */
  container: string;
  /** A DNS name where moat knew one, else the address. */
  peer: string;
  /** The server port (0 for protocols without ports). */
  port: number;
  protocol: string;
  direction: string;
  connections: number;
  allowed: number;
  blocked: number;
  detected: number;
  /** ms since the epoch. */
  firstMs: number;
  lastMs: number;
  /** Distinct executable/user/cgroup/container keys behind the row (the roll-ups keep no pids). */
  processes: number;
}

/** One identity's connections on one day, and how many of them were blocked or detected. */
export interface IdentityDay {
  exe: string;
  nameOnly: boolean;
  user: number;
  container: string;
  /** The day's start, ms since the epoch (UTC). */
  dayMs: number;
  connections: number;
  /** Blocked plus detected connections. */
  unclean: number;
}

/** What was left out to keep learning bounded (printed with every suggestion). */
export interface LearnOverflow {
  /** Rows past the row cap (the smallest by connections), and their connections. */
  rows: number;
  connections: number;
  /** Connections the roll-ups themselves folded into overflow rows (peer "*": a bucket was full). */
  rolledUp: number;
}

export interface LearnInput {
  rows: LearnRow[];
  overflow: LearnOverflow;
  /** The roll-up level read. */
  resolution: string;
}

/** Rows read at most, largest first: the cap on what a suggestion reads of the roll-ups. */
export const MAX_LEARN_ROWS = 200_000;

export const identityKey = (r: {
  exe: string;
  nameOnly: boolean;
  user: number;
  container: string;
}): string => `${r.exe}\0${r.nameOnly ? "name" : "path"}\0${r.user}\0${r.container}`;
