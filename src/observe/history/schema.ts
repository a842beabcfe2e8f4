// The history tables and their indexes; notices (events lost in the kernel) beside the events.
// process_* and container_* stay NULL until the socket hooks attribute connections to processes.
// Every index costs each insert: kept are the cheap ones (time: ranges and pruning; rule; both
// grow at their ends) and process and container, only for rows that have one. The rest are
// answered by walking the rows newest first until the page is full: type and verdict have a
// handful of values; a remote range's index (random keys) cost 40% of the history thread's time
// per insert (docs/performance.md, B6), and a query for an address seen rarely in a large store
// now reads more of it. Stores made before this drop the indexes no longer kept.
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
CREATE INDEX IF NOT EXISTS events_by_process ON events (process_name, id)
  WHERE process_name IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_by_container ON events (container_id, id)
  WHERE container_id IS NOT NULL;
DROP INDEX IF EXISTS events_type;
DROP INDEX IF EXISTS events_remote;
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
