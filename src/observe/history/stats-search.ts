// A flow statistics question answered in steps: the roll-up rows of its window are read in key
// order, STATS_STEP_ROWS a step, and added up in a temporary table of the question's own (where
// SQLite's GROUP BY sorted them, not in the thread's heap). One statement adding up a level at
// its row limit held the history's thread for seconds, and any token that may read events can
// ask again and again: the events written meanwhile waited, and past the sink's queue were lost.
import type Database from "better-sqlite3";
import { ROLLUP_LEVELS, type RollupLevel } from "./rollup-levels.ts";

/** What `moat stats` and GET /v1/stats ask. */
export interface StatsQuery {
  /** ms since the epoch; default: a day before `until`. */
  since?: number;
  /** ms since the epoch; default: now. */
  until?: number;
  /**
   * An executable path, or its file name; a process known by name only (its comm, which it may
   * have set to anything, a path included) matches its whole name only.
   */
  process?: string;
  /** A peer's name (its subdomains too) or address. */
  peer?: string;
  /** Rows (default 100, at most 1000), most bytes first. */
  limit?: number;
}

export interface StatsRow {
  identity: {
    /** The executable's path; with `nameOnly`, the process's name (comm), its path unknown. */
    exe: string;
    nameOnly: boolean;
    user: number | null;
    cgroup: string;
    container: string;
  };
  peer: string;
  port: number;
  protocol: string;
  direction: string;
  connections: number;
  closed: number;
  packets: number;
  bytes: number;
  durationMsSum: number;
  durationMsMax: number;
  firstSeen: string;
  lastSeen: string;
  /** Connections by verdict. */
  verdicts: { allowed: number; blocked: number; detected: number };
}

export interface StatsPage {
  /** The level the answer was read from: the finest that still covers `since`. */
  resolution: RollupLevel;
  /** The window the answer covers: the start of the bucket holding the asked `since`... */
  since: string;
  /** ...to the end of the bucket holding the asked `until` (or now, when that is earlier). */
  until: string;
  rows: StatsRow[];
}

/** Roll-up rows one step of a statistics question reads at most. */
export const STATS_STEP_ROWS = 2000;

/** A statistics question in steps: step() until it says it is done, then page(). */
export interface StatsSearch {
  step(): boolean;
  page(): StatsPage;
}

/** The key columns after the level, in the primary key's order: a step resumes after its last. */
const KEY = "bucket_ms, exe, name_only, user, cgroup, container, peer, port, protocol, direction";

export function statsSearch(db: Database.Database, q: StatsQuery, now: number): StatsSearch {
  const until = q.until ?? now;
  const since = q.since ?? until - DAY;
  const pick =
    ROLLUP_LEVELS.find((l) => now - since <= l.keepMs) ?? ROLLUP_LEVELS[ROLLUP_LEVELS.length - 1]!;
  // whole buckets: from the one holding since to the end of the one holding until
  const first = since - (since % pick.bucketMs);
  const last = until - (until % pick.bucketMs);
  // a whole name or a path's last part, compared as the live filter compares a process or a
  // name (LIKE would ignore an ASCII letter's case); a comm is a whole name, never a path's
  // last part; a step walks STATS_STEP_ROWS rows of the window whatever the filter, and adds up
  // those that match
  const hits: string[] = [];
  const params: unknown[] = [];
  if (q.process) {
    hits.push("(exe = ? OR (name_only = 0 AND substr(exe, -length(?)) = ?))");
    params.push(q.process, `/${q.process}`, `/${q.process}`);
  }
  if (q.peer) {
    // names are kept in lower case, without the root's dot (addresses as events give them)
    const peer = q.peer.toLowerCase().replace(/\.$/, "");
    hits.push("(peer = ? OR substr(peer, -length(?)) = ?)");
    params.push(peer, `.${peer}`, `.${peer}`);
  }
  const sums = `stats_sums_${++searches}`;
  db.exec(`CREATE TEMP TABLE ${sums} (${SUMS_COLUMNS}, PRIMARY KEY (${GROUP})) WITHOUT ROWID`);
  const range = `level = ? AND bucket_ms <= ? AND (${KEY}) > (${KEY_PARAMS}) ORDER BY level, ${KEY}`;
  // the step's last row, where the next one starts: STATS_STEP_ROWS on through the key
  const stepEnd = db.prepare(`SELECT ${KEY} FROM flow_stats WHERE ${range} LIMIT 1 OFFSET ?`);
  // the step's rows by the key (an upper bound on it is no range SQLite seeks: it read all
  // the rows after the step's first), those that match added to their sums
  const addStep = db.prepare(
    `INSERT INTO temp.${sums}
     SELECT ${GROUP}, ${SUMS} FROM (SELECT * FROM flow_stats WHERE ${range} LIMIT ?)
     WHERE ${hits.length ? hits.join(" AND ") : "true"}
     ON CONFLICT (${GROUP}) DO UPDATE SET ${ADD}`,
  );
  const limit = Math.min(Math.max(q.limit ?? 100, 1), 1000);
  // before every row of the first bucket (bucket times are whole buckets; first - 1 is none)
  let after: unknown[] = [first - 1, "", 0, 0, "", "", "", 0, "", ""];
  let dropped = false;
  const drop = () => {
    if (!dropped && db.open) db.exec(`DROP TABLE IF EXISTS temp.${sums}`);
    dropped = true;
  };
  return {
    step: () => {
      try {
        const window = [pick.level, last, ...after];
        const end = stepEnd.raw().get(...window, STATS_STEP_ROWS - 1) as unknown[] | undefined;
        addStep.run(...window, STATS_STEP_ROWS, ...params);
        if (end) after = end;
        return !end;
      } catch (err) {
        drop();
        throw err;
      }
    },
    page: () => {
      try {
        const rows = db
          .prepare(`SELECT * FROM temp.${sums} ORDER BY bytes DESC, connections DESC LIMIT ?`)
          .all(limit) as RollupRow[];
        return {
          resolution: pick.level,
          since: new Date(first).toISOString(),
          // the last bucket's end; one not over yet ends now (or at the later until asked)
          until: new Date(Math.min(last + pick.bucketMs, Math.max(until, now))).toISOString(),
          rows: rows.map(statsRow),
        };
      } finally {
        drop();
      }
    },
  };
}

const DAY = 86_400_000;

/** Searches begun on this thread: each adds up in a temporary table of its own. */
let searches = 0;

const KEY_PARAMS = KEY.split(", ")
  .map(() => "?")
  .join(", ");

/** The columns rows are added up by (GROUP BY), and what is added up. */
const GROUP = "exe, name_only, user, cgroup, container, peer, port, protocol, direction";
const SUMS_COLUMNS = `exe TEXT, name_only INTEGER, user INTEGER, cgroup TEXT, container TEXT,
  peer TEXT, port INTEGER, protocol TEXT, direction TEXT, connections INTEGER, closed INTEGER,
  packets INTEGER, bytes INTEGER, duration_sum_ms REAL, duration_max_ms REAL, first_ms INTEGER,
  last_ms INTEGER, allowed INTEGER, blocked INTEGER, detected INTEGER`;
const SUMS = `connections, closed, packets, bytes, duration_sum_ms, duration_max_ms, first_ms,
  last_ms, allowed, blocked, detected`;
const ADD = `connections = connections + excluded.connections, closed = closed + excluded.closed,
  packets = packets + excluded.packets, bytes = bytes + excluded.bytes,
  duration_sum_ms = duration_sum_ms + excluded.duration_sum_ms,
  duration_max_ms = max(duration_max_ms, excluded.duration_max_ms),
  first_ms = min(first_ms, excluded.first_ms), last_ms = max(last_ms, excluded.last_ms),
  allowed = allowed + excluded.allowed, blocked = blocked + excluded.blocked,
  detected = detected + excluded.detected`;

interface RollupRow {
  exe: string;
  name_only: number;
  user: number;
  cgroup: string;
  container: string;
  peer: string;
  port: number;
  protocol: string;
  direction: string;
  connections: number;
  closed: number;
  packets: number;
  bytes: number;
  duration_sum_ms: number;
  duration_max_ms: number;
  first_ms: number;
  last_ms: number;
  allowed: number;
  blocked: number;
  detected: number;
}

function statsRow(r: RollupRow): StatsRow {
  return {
    identity: {
      exe: r.exe,
      nameOnly: r.name_only === 1,
      user: r.user < 0 ? null : r.user,
      cgroup: r.cgroup,
      container: r.container,
    },
    peer: r.peer,
    port: r.port,
    protocol: r.protocol,
    direction: r.direction,
    connections: r.connections,
    closed: r.closed,
    packets: r.packets,
    bytes: r.bytes,
    durationMsSum: r.duration_sum_ms,
    durationMsMax: r.duration_max_ms,
    firstSeen: new Date(r.first_ms).toISOString(),
    lastSeen: new Date(r.last_ms).toISOString(),
    verdicts: { allowed: r.allowed, blocked: r.blocked, detected: r.detected },
  };
}
