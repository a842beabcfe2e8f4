// The flow statistics: flow summaries added up per minute, hour and day (one table, a row per
// level, bucket and key), so statistics over a day or a year read a bounded number of rows and
// outlive the events the history prunes. Keyed by identity (executable, else comm, marked
// name_only: rollup-name-only.ts; user; cgroup; container) x peer (DNS name where known, else
// address) x server port x protocol x direction; each row holds connections, bytes, packets,
// durations, first/last seen and connections by verdict. Each level is kept for its own time
// (ROLLUP_LEVELS) and row limit, whatever the events' limits.
import type Database from "better-sqlite3";
import { identityOf, nameOnly, peerOf, serverPort, type FlowSummary } from "../flows/record.ts";
import { markNameOnly } from "./rollup-name-only.ts";
import { ROLLUP_LEVELS, type RollupLevel } from "./rollup-levels.ts";
import { statsSearch, type StatsPage, type StatsQuery } from "./stats-search.ts";

export { ROLLUP_LEVELS, type RollupLevel } from "./rollup-levels.ts";
export type { StatsPage, StatsQuery, StatsRow } from "./stats-search.ts";

export const ROLLUP_SQL = `
CREATE TABLE IF NOT EXISTS flow_stats (
  level           TEXT NOT NULL,
  bucket_ms       INTEGER NOT NULL,
  exe             TEXT NOT NULL,
  name_only       INTEGER NOT NULL, -- 1: exe is the process's name (comm), its path unknown
  user            INTEGER NOT NULL,
  cgroup          TEXT NOT NULL,
  container       TEXT NOT NULL,
  peer            TEXT NOT NULL,
  port            INTEGER NOT NULL,
  protocol        TEXT NOT NULL,
  direction       TEXT NOT NULL,
  connections     INTEGER NOT NULL,
  closed          INTEGER NOT NULL,
  packets         INTEGER NOT NULL,
  bytes           INTEGER NOT NULL,
  duration_sum_ms REAL NOT NULL,
  duration_max_ms REAL NOT NULL,
  first_ms        INTEGER NOT NULL,
  last_ms         INTEGER NOT NULL,
  allowed         INTEGER NOT NULL,
  blocked         INTEGER NOT NULL,
  detected        INTEGER NOT NULL,
  PRIMARY KEY (level, bucket_ms, exe, name_only, user, cgroup, container, peer, port, protocol,
    direction)
) WITHOUT ROWID;
`;

const UPSERT = `
INSERT INTO flow_stats VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO UPDATE SET
  connections = connections + excluded.connections,
  closed = closed + excluded.closed,
  packets = packets + excluded.packets,
  bytes = bytes + excluded.bytes,
  duration_sum_ms = duration_sum_ms + excluded.duration_sum_ms,
  duration_max_ms = max(duration_max_ms, excluded.duration_max_ms),
  first_ms = min(first_ms, excluded.first_ms),
  last_ms = max(last_ms, excluded.last_ms),
  allowed = allowed + excluded.allowed,
  blocked = blocked + excluded.blocked,
  detected = detected + excluded.detected
`;

/** Rows a level keeps at most (the oldest buckets go first): ~85 MB a level at worst (170 bytes a row with its indexes). */
export const MAX_ROWS_PER_LEVEL = 500_000;
/** Keys a bucket takes; past them, a summary is added to its bucket's overflow row (peer "*"). */
export const MAX_KEYS_PER_BUCKET = 20_000;
/**
 * The share of a bucket's keys flows without a process may take (a flood of spoofed sources
 * has none): the rest stays for identities, which learning and the anomaly baselines read.
 */
const ANONYMOUS_SHARE = 0.75;
/** Buckets whose rows are kept counted: a few per level. */
const MAX_COUNTED_BUCKETS = 12;

/** A row of flows without a process (its bucket's overflow row aside). */
const ANONYMOUS = "exe = '' AND peer != '*'";

const KEY_COLUMNS =
  "level, bucket_ms, exe, name_only, user, cgroup, container, peer, port, protocol, direction";

export class FlowRollups {
  readonly #db: Database.Database;
  readonly #upsert: Database.Statement;
  readonly #exists: Database.Statement;
  readonly #bucketRows: Database.Statement;
  readonly #maxRows: number;
  readonly #maxKeys: number;
  /**
   * Rows of the buckets keys were last added to (level and bucket), counted once, then as keys are
   * added: a window's summaries fall into the newest bucket and the one before it, in any order.
   */
  readonly #buckets = new Map<string, { rows: number; anonymous: number }>();
  /**
   * Each level's rows: counted once (a walk of up to its row limit, 500k rows), then kept as rows
   * are added and deleted, so a prune under the limit reads none of them.
   */
  readonly #levelRows = new Map<RollupLevel, number>();
  readonly #countLevel: Database.Statement;
  readonly #deleteBefore: Database.Statement;
  readonly #oldestCut: Database.Statement;
  readonly #deleteAnonymousBefore: Database.Statement;
  readonly #oldestAnonymousCut: Database.Statement;
  /** Summaries added to an overflow row since the store opened. */
  overflowed = 0;

  constructor(
    db: Database.Database,
    options: { maxRowsPerLevel?: number; maxKeysPerBucket?: number } = {},
  ) {
    this.#db = db;
    this.#maxRows = options.maxRowsPerLevel ?? MAX_ROWS_PER_LEVEL;
    this.#maxKeys = options.maxKeysPerBucket ?? MAX_KEYS_PER_BUCKET;
    markNameOnly(db, ROLLUP_SQL);
    db.exec(ROLLUP_SQL);
    this.#upsert = db.prepare(UPSERT);
    const keyIs = KEY_COLUMNS.split(", ")
      .map((c) => `${c} = ?`)
      .join(" AND ");
    this.#exists = db.prepare(`SELECT 1 FROM flow_stats WHERE ${keyIs}`).pluck();
    this.#bucketRows = db.prepare(
      `SELECT count(*) AS rows, coalesce(sum(${ANONYMOUS}), 0) AS anonymous
       FROM flow_stats WHERE level = ? AND bucket_ms = ?`,
    );
    this.#countLevel = db.prepare("SELECT count(*) FROM flow_stats WHERE level = ?").pluck();
    this.#deleteBefore = db.prepare("DELETE FROM flow_stats WHERE level = ? AND bucket_ms < ?");
    // the bucket of the oldest row that must go (the excess over the limit, oldest first)
    this.#oldestCut = db
      .prepare(
        "SELECT bucket_ms FROM flow_stats WHERE level = ? ORDER BY bucket_ms LIMIT 1 OFFSET ?",
      )
      .pluck();
    this.#deleteAnonymousBefore = db.prepare(
      `DELETE FROM flow_stats WHERE level = ? AND bucket_ms < ? AND ${ANONYMOUS}`,
    );
    this.#oldestAnonymousCut = db
      .prepare(
        `SELECT bucket_ms FROM flow_stats WHERE level = ? AND ${ANONYMOUS}
         ORDER BY bucket_ms LIMIT 1 OFFSET ?`,
      )
      .pluck();
  }

  /** A new row in the `counted` bucket of `level`. */
  #added(
    level: RollupLevel,
    counted: { rows: number; anonymous: number },
    anonymous = false,
  ): void {
    counted.rows++;
    if (anonymous) counted.anonymous++;
    const rows = this.#levelRows.get(level);
    if (rows !== undefined) this.#levelRows.set(level, rows + 1);
  }

  #rowsIn(level: RollupLevel): number {
    let rows = this.#levelRows.get(level);
    if (rows === undefined)
      this.#levelRows.set(level, (rows = this.#countLevel.get(level) as number));
    return rows;
  }

  #deleteOlder(level: RollupLevel, bucketMs: number, anonymousOnly = false): number {
    const deleted = (anonymousOnly ? this.#deleteAnonymousBefore : this.#deleteBefore).run(
      level,
      bucketMs,
    ).changes;
    if (deleted > 0) this.#buckets.clear(); // a counted bucket may have gone
    const rows = this.#levelRows.get(level);
    if (rows !== undefined) this.#levelRows.set(level, rows - deleted);
    return deleted;
  }

  /**
   * Forgets the counts kept in memory (they are counted again when next needed): the caller's
   * transaction that added rows was rolled back.
   */
  recount(): void {
    this.#buckets.clear();
    this.#levelRows.clear();
  }

  /** The key a summary is added under: its own, or its bucket's overflow key when full. */
  #keyOf(level: RollupLevel, bucket: number, key: (string | number)[]): (string | number)[] {
    if (this.#exists.get(level, bucket, ...key)) return key;
    const at = `${level} ${bucket}`;
    let counted = this.#buckets.get(at);
    if (!counted) {
      counted = this.#bucketRows.get(level, bucket) as { rows: number; anonymous: number };
      this.#buckets.set(at, counted);
      // the oldest counted goes (a Map keeps insertion order)
      if (this.#buckets.size > MAX_COUNTED_BUCKETS)
        this.#buckets.delete(this.#buckets.keys().next().value!);
    }
    const anonymous = key[0] === "";
    if (
      counted.rows >= this.#maxKeys ||
      (anonymous && counted.anonymous >= this.#maxKeys * ANONYMOUS_SHARE)
    ) {
      this.overflowed++;
      const [, , , , , , , protocol, direction] = key;
      const overflow = ["", 0, -1, "", "", "*", 0, protocol!, direction!];
      if (!this.#exists.get(level, bucket, ...overflow)) this.#added(level, counted);
      return overflow;
    }
    this.#added(level, counted, anonymous);
    return key;
  }

  /** Adds summaries to every level (call inside the caller's transaction). */
  add(summaries: readonly FlowSummary[]): void {
    for (const s of summaries) {
      const c = s.connection;
      const id = identityOf(c);
      const verdict = (v: string) => (c.verdict === v ? s.connections : 0);
      const key = [
        id.exe,
        nameOnly(c) ? 1 : 0,
        id.user,
        id.cgroup,
        id.container,
        peerOf(c),
        serverPort(c),
        c.protocol,
        c.direction,
      ];
      for (const { level, bucketMs } of ROLLUP_LEVELS) {
        const bucket = s.lastMs - (s.lastMs % bucketMs);
        this.#upsert.run(
          level,
          bucket,
          ...this.#keyOf(level, bucket, key),
          s.connections,
          s.closed,
          s.packets,
          s.bytes,
          s.durationMsSum,
          s.durationMsMax,
          s.firstMs,
          s.lastMs,
          verdict("allowed"),
          verdict("blocked"),
          verdict("detected"),
        );
      }
    }
  }

  /**
   * Deletes each level's rows past its time, then, while it holds more than its row limit (a
   * flood of distinct peers), the oldest buckets' rows without a process, then its oldest
   * buckets; returns how many.
   */
  prune(now = Date.now()): number {
    let deleted = 0;
    for (const { level, keepMs } of ROLLUP_LEVELS) {
      deleted += this.#deleteOlder(level, now - keepMs);
      let excess = this.#rowsIn(level) - this.#maxRows;
      if (excess <= 0) continue;
      // rows without a process first: an identity's rows are what learning reads
      // (all of them when they are fewer than the excess)
      const anonymousAt = this.#oldestAnonymousCut.get(level, excess - 1) as number | undefined;
      const gone = this.#deleteOlder(
        level,
        anonymousAt === undefined ? Number.MAX_SAFE_INTEGER : anonymousAt + 1,
        true,
      );
      deleted += gone;
      excess -= gone;
      if (excess <= 0) continue;
      // the bucket of the newest row past the limit (the excess-th oldest): it and older ones go
      const at = this.#oldestCut.get(level, excess - 1) as number | undefined;
      if (at !== undefined) deleted += this.#deleteOlder(level, at + 1);
    }
    return deleted;
  }

  /** The statistics in one go (the history's thread asks statsSearch() a step a turn). */
  query(q: StatsQuery = {}, now = Date.now()): StatsPage {
    const search = statsSearch(this.#db, q, now);
    while (!search.step());
    return search.page();
  }
}
