// What the anomaly engine reads of the flow roll-ups (rollup.ts) to rebuild its baselines at a
// start without its state file (anomaly/from-rollups.ts): the hour level of the last 14 days and
// the day level of the last 28, the most recent rows first, at most MAX_BASELINE_ROWS of them
// (the rest counted). The roll-ups' overflow rows (peer "*") have no identity and are left out.
import type Database from "better-sqlite3";
import {
  BASELINE_DAYS_MS,
  BASELINE_HOURS_MS,
  MAX_BASELINE_ROWS,
  type BaselineInput,
  type BaselineRow,
} from "../anomaly/from-rollups.ts";
import { nameOnlyColumn } from "./rollup-name-only.ts";

const WHERE = `FROM flow_stats WHERE peer != '*' AND bucket_ms < ? AND (
  (level = 'hour' AND bucket_ms >= ?) OR (level = 'day' AND bucket_ms >= ?))`;

export function baselineRows(
  db: Database.Database,
  until: number,
  maxRows = MAX_BASELINE_ROWS,
): BaselineInput {
  const window = [until, until - BASELINE_HOURS_MS, until - BASELINE_DAYS_MS] as const;
  const total = (db.prepare(`SELECT count(*) AS n ${WHERE}`).get(...window) as { n: number }).n;
  const rows = db
    .prepare(
      `SELECT level, bucket_ms AS bucketMs, exe, ${nameOnlyColumn(db)} AS nameOnly, user, cgroup,
         container, peer, port, protocol, direction, connections, bytes,
         duration_max_ms AS durationMaxMs, first_ms AS firstMs, last_ms AS lastMs
       ${WHERE} ORDER BY bucket_ms DESC LIMIT ?`,
    )
    .all(...window, maxRows) as (Omit<BaselineRow, "nameOnly"> & { nameOnly: number })[];
  return {
    rows: rows.map((r) => ({ ...r, nameOnly: r.nameOnly === 1 })),
    overflow: Math.max(0, total - rows.length),
  };
}
