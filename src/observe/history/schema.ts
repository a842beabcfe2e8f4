// The history tables and their indexes; notices (events lost in the kernel) beside the events.
// process_* and container_* stay NULL until the socket hooks attribute connections to processes.
// Every index costs each insert: kept are those a query needs to avoid reading the whole table
// (time: ranges and pruning; rule; remote ranges; process and container, only for rows that have
// one). Type and verdict have a handful of values: a query on them walks the rows newest first
// and stops at its page. Stores made before this drop the indexes no longer kept.
export const SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS events (
  id             INTEGER PRIMARY KEY,
  time_ms        INTEGER NOT NULL,
  type           TEXT NOT NULL,
  verdict        TEXT NOT NULL,
  rule           TEXT NOT NULL,
  direction      TEXT NOT NULL,
  protocol       TEXT NOT NULL,
  remote_family  INTEGER,
  remote_key     BLOB,
  remote_ip      TEXT NOT NULL,
  process_name   TEXT,
  process_pid    INTEGER,
  container_id   TEXT,
  container_name TEXT,
  connection     TEXT,
  json           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_time ON events (time_ms);
CREATE INDEX IF NOT EXISTS events_rule ON events (rule, id);
CREATE INDEX IF NOT EXISTS events_remote ON events (remote_family, remote_key);
CREATE INDEX IF NOT EXISTS events_by_process ON events (process_name, id)
  WHERE process_name IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_by_container ON events (container_id, id)
  WHERE container_id IS NOT NULL;
DROP INDEX IF EXISTS events_type;
DROP INDEX IF EXISTS events_verdict;
DROP INDEX IF EXISTS events_process;
DROP INDEX IF EXISTS events_container;
DROP INDEX IF EXISTS events_connection;
CREATE TABLE IF NOT EXISTS notices (
  id      INTEGER PRIMARY KEY,
  time_ms INTEGER NOT NULL,
  type    TEXT NOT NULL,
  count   INTEGER NOT NULL,
  json    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS notices_time ON notices (time_ms);
`;
