// What `moat suggest` reads of the flow roll-ups (rollup.ts): a window's rows added up per
// identity x peer x port x protocol x direction, largest first, at most MAX_LEARN_ROWS of them
// (the rest counted), and per identity and day for promotion. Each row says whether its identity
// is a process's name (comm) rather than an executable's path (rollup-name-only.ts). The hour
// level while it covers the window (35 days), else the day level; never the raw events.
import type Database from "better-sqlite3";
import {
  MAX_LEARN_ROWS,
  type IdentityDay,
  type LearnInput,
  type LearnRow,
} from "../learn/index.ts";
import { ROLLUP_LEVELS, type RollupLevel } from "./rollup.ts";
import { nameOnlyColumn } from "./rollup-name-only.ts";

const DAY = 86_400_000;

/**
 * Characters of executable, container and peer the rows read hold at most (64 Mi): each row
 * holds its own copy of its path, and 200,000 rows of one 4 KiB path would fill the worker's
 * heap. Past it, rows are left out and counted as past the row cap.
 */
export const MAX_LEARN_CHARS = 64 * 2 ** 20;

function levelFor(since: number, now: number): { level: RollupLevel; bucketMs: number } {
  const hour = ROLLUP_LEVELS.find((l) => l.level === "hour")!;
  const day = ROLLUP_LEVELS.find((l) => l.level === "day")!;
  return now - since <= hour.keepMs ? hour : day;
}

/**
 * The window's roll-ups as learning rows, largest first; `maxRows` (MAX_LEARN_ROWS) at most, and
 * no more once they hold MAX_LEARN_CHARS characters.
 */
export function learnRows(
  db: Database.Database,
  since: number,
  until: number,
  maxRows = MAX_LEARN_ROWS,
): LearnInput {
  const { level, bucketMs } = levelFor(since, until);
  const window = [level, since - (since % bucketMs), until] as const;
  const rolledUp = (
    db
      .prepare(
        "SELECT coalesce(sum(connections), 0) AS n FROM flow_stats WHERE level = ? AND bucket_ms BETWEEN ? AND ? AND peer = '*'",
      )
      .get(...window) as { n: number }
  ).n;
  const iterator = db
    .prepare(
      `SELECT exe, ${nameOnlyColumn(db)} AS nameOnly, user, container, peer, port, protocol,
         direction, sum(connections) AS connections, sum(allowed) AS allowed, sum(blocked) AS blocked,
         sum(detected) AS detected, min(first_ms) AS firstMs, max(last_ms) AS lastMs,
         count(DISTINCT cgroup) AS processes
       FROM flow_stats WHERE level = ? AND bucket_ms BETWEEN ? AND ? AND peer != '*'
       GROUP BY exe, nameOnly, user, container, peer, port, protocol, direction
       ORDER BY connections DESC`,
    )
    .iterate(...window) as IterableIterator<Stored<LearnRow>>;
  const rows: LearnRow[] = [];
  const overflow = { rows: 0, connections: 0, rolledUp };
  let chars = 0;
  for (const r of iterator) {
    if (rows.length < maxRows && chars < MAX_LEARN_CHARS) {
      rows.push({ ...r, nameOnly: r.nameOnly === 1 });
      chars += r.exe.length + r.container.length + r.peer.length;
    } else {
      overflow.rows++;
      overflow.connections += r.connections;
    }
  }
  return { rows, overflow, resolution: level };
}

/** The identity days a promotion reads, and those past its caps (counted, never read). */
export interface IdentityDays {
  days: IdentityDay[];
  overflow: number;
}

/**
 * Each identity's connections per day in the window, and how many were blocked or detected;
 * `maxRows` (MAX_LEARN_ROWS) at most, and no more once they hold MAX_LEARN_CHARS characters.
 * A day left out may be an unclean one: a promotion with any is refused (suggest.ts).
 */
export function identityDays(
  db: Database.Database,
  since: number,
  until: number,
  maxRows = MAX_LEARN_ROWS,
): IdentityDays {
  const { level, bucketMs } = levelFor(since, until);
  const iterator = db
    .prepare(
      `SELECT exe, ${nameOnlyColumn(db)} AS nameOnly, user, container,
         bucket_ms - (bucket_ms % ${DAY}) AS dayMs,
         sum(connections) AS connections, sum(blocked) + sum(detected) AS unclean
       FROM flow_stats WHERE level = ? AND bucket_ms BETWEEN ? AND ?
       GROUP BY exe, nameOnly, user, container, dayMs`,
    )
    .iterate(level, since - (since % bucketMs), until) as IterableIterator<Stored<IdentityDay>>;
  const days: IdentityDay[] = [];
  let overflow = 0;
  let chars = 0;
  for (const d of iterator) {
    if (days.length < maxRows && chars < MAX_LEARN_CHARS) {
      days.push({ ...d, nameOnly: d.nameOnly === 1 });
      chars += d.exe.length + d.container.length;
    } else overflow++;
  }
  return { days, overflow };
}

/** A row as SQLite answers it: the name-only mark a number. */
type Stored<T> = Omit<T, "nameOnly"> & { nameOnly: number };
