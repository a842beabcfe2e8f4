// Which flow roll-up rows are keyed by a process's name (comm) instead of its executable's path:
// the name_only column. A comm is what a process calls itself (prctl(PR_SET_NAME), a slash
// included), so a row keyed by one must never be read as a path. Stores made before the column
// keep both in `exe` alike: a row a comm could have written (no leading slash, or 15 characters
// at most, the kernel's comm being 15 bytes) is read as a name, and only a longer absolute path
// as an executable. A short path of such a row (/usr/bin/curl) is read as a name too: it then
// proposes no rule, where reading a comm as a path would propose a path rule for it.
import type Database from "better-sqlite3";

/** SQL: whether a row stored before name_only may have been keyed by a comm. */
export const OLD_ROW_NAME_ONLY = "(exe != '' AND (substr(exe, 1, 1) != '/' OR length(exe) <= 15))";

/** The columns after exe in the old table's order (name_only goes between them). */
const AFTER_EXE = `user, cgroup, container, peer, port, protocol, direction, connections, closed,
  packets, bytes, duration_sum_ms, duration_max_ms, first_ms, last_ms, allowed, blocked, detected`;

function hasNameOnly(db: Database.Database): boolean {
  return (
    db
      .prepare("SELECT 1 FROM pragma_table_info('flow_stats') WHERE name = 'name_only'")
      .pluck()
      .get() !== undefined
  );
}

/** What reads name_only: the column, or for a store not yet marked, how its rows are read. */
export const nameOnlyColumn = (db: Database.Database): string =>
  hasNameOnly(db) ? "name_only" : OLD_ROW_NAME_ONLY;

/**
 * A store made before name_only gets its flow_stats rebuilt with it, once (the column is part
 * of the key, which SQLite cannot alter in place), each row marked as OLD_ROW_NAME_ONLY reads it.
 */
export function markNameOnly(db: Database.Database, createSql: string): void {
  const table = db
    .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'flow_stats'")
    .pluck()
    .get();
  if (table === undefined || hasNameOnly(db)) return;
  db.transaction(() => {
    db.exec("ALTER TABLE flow_stats RENAME TO flow_stats_unmarked");
    db.exec(createSql);
    db.exec(
      `INSERT INTO flow_stats SELECT level, bucket_ms, exe, ${OLD_ROW_NAME_ONLY}, ${AFTER_EXE}
       FROM flow_stats_unmarked`,
    );
    db.exec("DROP TABLE flow_stats_unmarked");
  })();
}
