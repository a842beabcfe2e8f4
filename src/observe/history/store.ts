// The event history: SQLite (better-sqlite3) in WAL mode, one row per event, indexed for the
// queries the API offers (time, type/verdict, rule, remote, process, container), pruned by age
// and size. Rows are written a pipeline batch per transaction, ROWS_PER_INSERT rows per
// statement, so a crash loses at most what was still queued (well under a second).
import Database from "better-sqlite3";
import { closeSync } from "node:fs";
import { openTrustedForWrite } from "../../host/trusted-file.ts";
import type { MoatEvent } from "../../datapath/event.ts";
import type { Notice } from "../notice.ts";
import type { HistoryPage, HistoryQuery } from "./query.ts";
import { SCHEMA_SQL } from "./schema.ts";
import { newStorePageSize } from "./page-size.ts";
import { whereClause } from "./where.ts";
import {
  eventBlocks,
  REMOTE_KEY,
  ROW_COLUMNS,
  ROW_WIDTH,
  ROWS_PER_INSERT,
  SHARED_GROUPS,
  sharedColumns,
  type RowBlock,
  type RowValue,
} from "./rows.ts";
import { FlowRollups, type StatsPage, type StatsQuery } from "./rollup.ts";
import { statsSearch, type StatsSearch } from "./stats-search.ts";
import { flowEvent, type FlowSummary } from "../flows/record.ts";
import { baselineRows } from "./baseline.ts";
import type { BaselineInput } from "../anomaly/from-rollups.ts";

/** Event ids one step of a query no index narrows reads at most (search). */
export const QUERY_WINDOW_IDS = 50_000;

/** A history query in steps: step() until it says it is done, then page(). */
export interface HistorySearch {
  step(): boolean;
  page(): HistoryPage;
}

/** Bytes of log between two checkpoints (SQLite counts them in pages of the store's size). */
const CHECKPOINT_LOG_BYTES = 64 << 20;

/** Events one prune step deletes at most (pruneStep). */
export const PRUNE_STEP_ROWS = 5000;

/**
 * What pruning runs. A store at its size limit prunes after every 100k rows written, so each
 * statement finds its rows through an index, never by scanning the events.
 */
export const PRUNE_SQL = {
  /** Aged events, oldest first, by the time index. */
  olderThan: "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE time_ms < ? LIMIT ?)",
  /** The oldest events, below an id (ids only grow). */
  below: "DELETE FROM events WHERE id < ?",
  /**
   * The id span counts the rows (ids only grow; pruning takes the oldest). Two subqueries: SQLite
   * finds a lone min() or max() at an end of the key, but scans every row for both in one select.
   */
  idSpan: "SELECT (SELECT min(id) FROM events) AS low, (SELECT max(id) FROM events) AS high",
  notices: "DELETE FROM notices WHERE time_ms < ?",
} as const;

export interface HistoryOptions {
  /** Events older than this are deleted (default 30 days). */
  maxAgeSeconds?: number;
  /** The database is kept under this many bytes by deleting the oldest events (default 1 GiB). */
  maxBytes?: number;
  /** Flow statistics' rows a roll-up level keeps at most (rollup.ts MAX_ROWS_PER_LEVEL). */
  maxRollupRows?: number;
}

export interface HistoryStats {
  events: number;
  bytes: number;
  pruned: number;
}

const DAY = 86_400;

export class HistoryStore {
  readonly path: string;
  private readonly db: Database.Database;
  private readonly maxAgeSeconds: number;
  private readonly maxBytes: number;
  /** The INSERT of n rows at [n], prepared when first needed. */
  private readonly inserts: Database.Statement[] = [];
  /** A full block's INSERT with the groups of SHARED_GROUPS in a mask bound once, by mask. */
  private readonly sharedInserts = new Map<number, SharedInsert>();
  private readonly insertMany: (blocks: readonly RowBlock[]) => void;
  private readonly rollups: FlowRollups;
  private readonly insertFlowsTx: (summaries: readonly FlowSummary[]) => void;
  private readonly pruning: Record<keyof typeof PRUNE_SQL, Database.Statement>;
  private pruned = 0;
  private pruneRunning = false;

  constructor(path: string, options: HistoryOptions = {}) {
    this.path = path;
    this.maxAgeSeconds = options.maxAgeSeconds ?? 30 * DAY;
    this.maxBytes = options.maxBytes ?? 1 << 30;
    this.db = new Database(path === ":memory:" ? path : trustedPath(path));
    try {
      this.prepareDb(newStorePageSize(path));
      this.insertMany = this.db.transaction((blocks: readonly RowBlock[]) => {
        for (const block of blocks) this.insertBlock(block);
      });
      this.pruning = {
        olderThan: this.db.prepare(PRUNE_SQL.olderThan),
        below: this.db.prepare(PRUNE_SQL.below),
        idSpan: this.db.prepare(PRUNE_SQL.idSpan),
        notices: this.db.prepare(PRUNE_SQL.notices),
      };
      this.rollups = new FlowRollups(
        this.db,
        options.maxRollupRows ? { maxRowsPerLevel: options.maxRollupRows } : {},
      );
      this.insertFlowsTx = this.db.transaction((summaries: readonly FlowSummary[]) => {
        this.insertMany(eventBlocks(summaries.map(flowEvent)));
        this.rollups.add(summaries);
      });
    } catch (err) {
      this.db.close();
      throw damaged(err);
    }
  }

  /** The pragmas and the schema: what reads a damaged file first. */
  private prepareDb(pageSize: number | null): void {
    // page_size and auto_vacuum only take effect before the first table exists (and page_size
    // before the log is in WAL mode); later opens keep them
    if (pageSize !== null) this.db.pragma(`page_size = ${pageSize}`);
    this.db.pragma("auto_vacuum = INCREMENTAL");
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    // a checkpoint (and its fsyncs) every 64 MB of log, not every 4 MB: at 100k events/s the
    // history's thread waited on the disk and its queue overflowed
    const size = this.db.pragma("page_size", { simple: true }) as number;
    this.db.pragma(`wal_autocheckpoint = ${Math.ceil(CHECKPOINT_LOG_BYTES / size)}`);
    this.db.exec(SCHEMA_SQL);
  }

  /** A window's flow summaries: "flow" events, and added to the roll-ups, in one transaction. */
  insertFlows(summaries: readonly FlowSummary[]): void {
    if (!summaries.length) return;
    try {
      this.insertFlowsTx(summaries);
    } catch (err) {
      this.rollups.recount(); // the rows it counted as added were rolled back
      throw err;
    }
  }

  /** The roll-ups the anomaly baselines are rebuilt from (baseline.ts). */
  baselineRows(until = Date.now()): BaselineInput {
    return baselineRows(this.db, until);
  }

  /** Flow statistics from the roll-ups. */
  flowStats(q: StatsQuery = {}, now = Date.now()): StatsPage {
    return this.rollups.query(q, now);
  }

  /** Flow statistics in steps of STATS_STEP_ROWS roll-up rows (the history's thread). */
  flowStatsSearch(q: StatsQuery = {}, now = Date.now()): StatsSearch {
    return statsSearch(this.db, q, now);
  }

  insert(batch: readonly MoatEvent[]): void {
    if (batch.length) this.insertMany(eventBlocks(batch));
  }

  /** Rows made by eventRows, ROW_WIDTH values per event. */
  insertRows(rows: readonly RowValue[]): void {
    if (rows.length % ROW_WIDTH !== 0)
      throw new Error(`history: ${rows.length} values are not whole rows of ${ROW_WIDTH}`);
    const blocks: RowBlock[] = [];
    for (let at = 0; at < rows.length; at += ROWS_PER_INSERT * ROW_WIDTH) {
      const each = rows.slice(at, at + ROWS_PER_INSERT * ROW_WIDTH);
      blocks.push({ rows: each.length / ROW_WIDTH, shared: 0, once: [], each });
    }
    if (blocks.length) this.insertMany(blocks);
  }

  /** Blocks made by eventBlocks (possibly on another thread and cloned from there). */
  insertBlocks(blocks: readonly RowBlock[]): void {
    for (const b of blocks)
      if (!wellMade(b))
        throw new Error(`history: a block of ${b.rows} rows that is not as eventBlocks makes them`);
    if (blocks.length) this.insertMany(blocks);
  }

  /**
   * One block's rows; remote_key (hex in a block) bound as bytes, turned in place. The values
   * all its rows share are bound once (each value bound costs the history's thread more than
   * SQLite's part of writing it).
   */
  private insertBlock(block: RowBlock): void {
    if (block.shared === 0) {
      this.insertOf(block.rows).run(keysAsBytes(block.each, REMOTE_KEY, ROW_WIDTH));
      return;
    }
    const insert = this.sharedInsert(block.shared);
    const named: Record<string, RowValue | Buffer> = {};
    for (let i = 0; i < insert.names.length; i++) {
      const value = block.once[i]!;
      named[insert.names[i]!] = i === insert.keyOnce ? keyBytes(value) : value;
    }
    insert.statement.run(keysAsBytes(block.each, insert.keyEach, insert.width), named);
  }

  /**
   * The INSERT of `rows` rows. OR ROLLBACK: a row that breaks a constraint rolls back the whole
   * transaction, as the transaction function does anyway when the statement fails; so SQLite
   * keeps no statement journal to undo one statement's rows alone (a copy of every page each
   * multi-row INSERT touches, written to a temporary file: a fifth of the history thread's
   * time per row).
   */
  private insertOf(rows: number): Database.Statement {
    let statement = this.inserts[rows];
    if (!statement) {
      statement = this.db.prepare(insertSql(rows, () => "?"));
      this.inserts[rows] = statement;
    }
    return statement;
  }

  /** A full block's INSERT with the columns of the groups in `mask` as named parameters. */
  private sharedInsert(mask: number): SharedInsert {
    let insert = this.sharedInserts.get(mask);
    if (!insert) {
      const { once, each } = sharedColumns(mask);
      const sql = insertSql(ROWS_PER_INSERT, (c) => (once.includes(c) ? `@c${c}` : "?"));
      insert = {
        statement: this.db.prepare(sql),
        names: once.map((c) => `c${c}`),
        keyOnce: once.indexOf(REMOTE_KEY),
        keyEach: each.indexOf(REMOTE_KEY),
        width: each.length,
      };
      this.sharedInserts.set(mask, insert);
    }
    return insert;
  }

  /** Keeps a notice beside the events (count: events lost, or a feed's failed fetches). */
  notice(n: Notice): void {
    this.db
      .prepare("INSERT INTO notices (time_ms, type, count, json) VALUES (?, ?, ?, ?)")
      .run(
        Date.parse(n.time),
        n.type,
        n.type === "events_lost" ? n.count : n.failures,
        JSON.stringify(n),
      );
  }

  /** The notices kept, newest first. */
  notices(limit = 100): Notice[] {
    const rows = this.db
      .prepare("SELECT json FROM notices ORDER BY id DESC LIMIT ?")
      .all(limit) as { json: string }[];
    return rows.map((r) => JSON.parse(r.json) as Notice);
  }

  /** Newest first, `limit` at a time. */
  query(q: HistoryQuery = {}): HistoryPage {
    const search = this.search(q);
    while (!search.step());
    return search.page();
  }

  /**
   * A query answered in steps (the history's thread takes inserts between them). A filter no
   * index narrows (type, verdict, direction, remote) reads the store newest first until its page
   * is full: for a rare value that is the whole store, so each step reads one window of
   * QUERY_WINDOW_IDS ids. A rule or a process name without time bounds is one step by its index.
   * Time bounds whose window holds at most QUERY_WINDOW_IDS events are one step by the time
   * index; a wider window is read a window of ids a step, as its newest events are (a statement
   * over it would read and sort all of it, or scan the store from the newest end for `until`).
   */
  search(q: HistoryQuery): HistorySearch {
    const limit = Math.min(Math.max(q.limit ?? 100, 1), 1000);
    const rows: { id: number; json: string }[] = [];
    const done = () => ({
      events: rows.slice(0, limit).map((r) => ({ ...(JSON.parse(r.json) as MoatEvent), id: r.id })),
      next: rows.length > limit ? rows[limit - 1]!.id : null,
    });
    const timed = q.since !== undefined || q.until !== undefined;
    const narrow = timed && this.windowEvents(q) <= QUERY_WINDOW_IDS;
    const { sql, params, indexed } = whereClause(q, narrow || !timed ? "index" : "filter");
    if (narrow || (indexed && !timed)) {
      const by = narrow ? "INDEXED BY events_time" : "";
      const all = this.db.prepare(
        `SELECT id, json FROM events ${by} ${sql} ORDER BY id DESC LIMIT ?`,
      );
      return {
        step: () => (rows.push(...(all.all(...params, limit + 1) as typeof rows)), true),
        page: done,
      };
    }
    const where = sql ? `${sql} AND` : "WHERE";
    const window = this.db.prepare(
      `SELECT id, json FROM events ${where} id < ? AND id >= ? ORDER BY id DESC LIMIT ?`,
    );
    const bounds = this.db.prepare(
      "SELECT (SELECT min(id) FROM events) lo, (SELECT max(id) FROM events) hi",
    );
    const { lo, hi } = bounds.get() as { lo: number | null; hi: number | null };
    let top = Math.min(q.before ?? Infinity, (hi ?? 0) + 1);
    const bottom = lo ?? top;
    return {
      step: () => {
        const from = Math.max(top - QUERY_WINDOW_IDS, bottom);
        rows.push(...(window.all(...params, top, from, limit + 1 - rows.length) as typeof rows));
        top = from;
        return rows.length > limit || top <= bottom;
      },
      page: done,
    };
  }

  /** Events in the query's time bounds, counted on the time index up to QUERY_WINDOW_IDS + 1. */
  private windowEvents(q: HistoryQuery): number {
    return this.db
      .prepare("SELECT count(*) FROM (SELECT 1 FROM events WHERE time_ms BETWEEN ? AND ? LIMIT ?)")
      .pluck()
      .get(
        q.since ?? Number.MIN_SAFE_INTEGER,
        q.until ?? Number.MAX_SAFE_INTEGER,
        QUERY_WINDOW_IDS + 1,
      ) as number;
  }

  /** Deletes events past the age limit, then the oldest until the size limit holds. */
  prune(now = Date.now()): number {
    let deleted = 0;
    for (let step = this.pruneStep(now); step > 0; step = this.pruneStep(now)) deleted += step;
    return deleted;
  }

  /**
   * One bounded step of prune(): at most PRUNE_STEP_ROWS events (about 20-40 ms), so the store's
   * thread can take inserts between steps instead of stalling for seconds on a large store.
   * Returns how many were deleted; 0 when both limits hold.
   */
  pruneStep(now = Date.now()): number {
    if (!this.pruneRunning) {
      // notices and roll-ups are small: once per pass
      this.pruneRunning = true;
      this.pruning.notices.run(now - this.maxAgeSeconds * 1000);
      this.rollups.prune(now);
    }
    const deleted = this.deleteAged(now) || this.deleteOverSize();
    if (deleted > 0) this.db.pragma("incremental_vacuum");
    else this.pruneRunning = false;
    this.pruned += deleted;
    return deleted;
  }

  private deleteAged(now: number): number {
    return this.pruning.olderThan.run(now - this.maxAgeSeconds * 1000, PRUNE_STEP_ROWS).changes;
  }

  private deleteOverSize(): number {
    const bytes = this.bytes();
    if (bytes <= this.maxBytes) return 0;
    const { low, high } = this.pruning.idSpan.get() as { low: number | null; high: number | null };
    if (low === null || high === null) return 0;
    const count = high - low + 1;
    // aim 10% under the limit so pruning does not run on every insert
    const keep = Math.floor((count * this.maxBytes * 0.9) / bytes);
    const drop = Math.min(PRUNE_STEP_ROWS, Math.max(1, count - keep));
    return this.pruning.below.run(low + drop).changes;
  }

  stats(): HistoryStats {
    return { events: this.count(), bytes: this.bytes(), pruned: this.pruned };
  }

  close(): void {
    if (!this.db.open) return;
    this.db.pragma("wal_checkpoint(TRUNCATE)");
    this.db.close();
  }

  private count(): number {
    return (this.db.prepare("SELECT count(*) AS n FROM events").get() as { n: number }).n;
  }

  /** Bytes in use (pages not on the free list); WAL pages not yet checkpointed included. */
  private bytes(): number {
    const pages = this.db.pragma("page_count", { simple: true }) as number;
    const free = this.db.pragma("freelist_count", { simple: true }) as number;
    const size = this.db.pragma("page_size", { simple: true }) as number;
    return (pages - free) * size;
  }
}

/** SQLite's word for a damaged file, with what to do: waiting for it will not mend it. */
function damaged(err: unknown): unknown {
  const code = (err as { code?: unknown }).code;
  if (code !== "SQLITE_CORRUPT" && code !== "SQLITE_NOTADB") return err;
  return new Error(
    `${(err as Error).message} (the file is damaged: move it aside for moat to start a new one)`,
  );
}

/**
 * The database file checked like the audit log (src/host/trusted-file.ts) and made 0600 through
 * its descriptor; SQLite opens the real path it resolved to, in a directory only root can write.
 */
function trustedPath(path: string): string {
  const opened = openTrustedForWrite(path, { what: "event history", createDirs: true });
  closeSync(opened.fd);
  return opened.path;
}

/** A block of 1 to ROWS_PER_INSERT rows, full if it has shared values, with all its values. */
function wellMade(b: RowBlock): boolean {
  if (!Number.isInteger(b.rows) || b.rows < 1 || b.rows > ROWS_PER_INSERT) return false;
  if (!Number.isInteger(b.shared) || b.shared < 0 || b.shared >= 1 << SHARED_GROUPS.length)
    return false;
  if (b.shared !== 0 && b.rows !== ROWS_PER_INSERT) return false;
  const columns = sharedColumns(b.shared);
  return b.once.length === columns.once.length && b.each.length === b.rows * columns.each.length;
}

/** remote_key (hex in a block) as SQLite binds it: bytes, a BLOB. */
const keyBytes = (key: RowValue): RowValue | Buffer =>
  typeof key === "string" ? Buffer.from(key, "hex") : key;

/** `values`, rows of `width` with remote_key at `at` (-1: none), keys turned into bytes. */
function keysAsBytes(values: RowValue[], at: number, width: number): (RowValue | Buffer)[] {
  const out: (RowValue | Buffer)[] = values;
  if (at >= 0) for (let i = at; i < out.length; i += width) out[i] = keyBytes(values[i]!);
  return out;
}

/** INSERT OR ROLLBACK (insertOf) of `rows` rows, `param` the parameter of each column. */
function insertSql(rows: number, param: (column: number) => string): string {
  const row = `(${ROW_COLUMNS.map((_, c) => param(c)).join(", ")})`;
  const values = Array.from({ length: rows }, () => row).join(", ");
  return `INSERT OR ROLLBACK INTO events (${ROW_COLUMNS.join(", ")}) VALUES ${values}`;
}

interface SharedInsert {
  statement: Database.Statement;
  /** The named parameters of the columns bound once (sharedColumns' once). */
  names: string[];
  /** Where remote_key is among the columns bound once, or per row (-1: not there). */
  keyOnce: number;
  keyEach: number;
  /** Columns bound per row. */
  width: number;
}
