// B10 (docs/performance.md, "History storage a day"): what the history's SQLite file grows by,
// measured with the store the daemon's history thread runs (HistoryStore: its schema, indexes,
// pragmas, inserts), in a temporary directory:
//
//  - events: EVENTS decisions (bench/history-mix.ts: scans blocked at XDP, egress blocked and
//    detected with process and container, the detected ones' closes), 1 ms apart (1,000 a
//    second), turned into rows as the daemon's thread does (eventRows) and written a batch of
//    BATCH per transaction (what the pipeline hands over at 1,000 a second);
//  - flow summaries at their worst: WINDOWS windows of 10,000 summaries (the aggregator's cap),
//    every key new, through the flow aggregator into insertFlows ("flow" rows + three roll-ups);
//  - a host of TYPICAL_KEYS keys, each with a connection in half the windows, for an hour;
//  - retention: a store limited to 16 MiB, filled three times over, pruned as the thread does.
//
// Bytes are the database's pages after a checkpoint (page_count x page_size), split by table and
// index with SQLite's dbstat. Prints one JSON line; bench/results/history-growth.json.
//
//   node bench/history-growth.ts           EVENTS=N WINDOWS=N BATCH=N change the counts
import Database from "better-sqlite3";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { HistoryStore } from "../src/observe/history/store.ts";
import { eventRows } from "../src/observe/history/rows.ts";
import { MAX_ROWS_PER_LEVEL, ROLLUP_LEVELS } from "../src/observe/history/rollup.ts";
import { DEFAULT_MAX_KEYS, FlowAggregator } from "../src/observe/flows/aggregate.ts";
import { EPOCH, rng } from "../test/helpers/synthetic-history.ts";
import { EventMix, windowRecords } from "./history-mix.ts";
import { writeResult } from "./results.ts";

const EVENTS = Number(process.env.EVENTS ?? 300_000);
const BATCH = Number(process.env.BATCH ?? 100);
const WINDOWS = Number(process.env.WINDOWS ?? 20);
const TYPICAL_KEYS = 300;
const WINDOW_MS = 60_000;
const RETENTION_BYTES = 16 * 2 ** 20;
const GIB = 2 ** 30;
const DAY_S = 86_400;
/** The store's default max_size, and what pruning brings the used pages down to. */
const MAX_SIZE = GIB;
const PRUNED_TO = 0.9;

interface Sizes {
  /** The file after the checkpoint (page_count x page_size). */
  fileBytes: number;
  /** Bytes of pages by table or index (dbstat). */
  byName: Record<string, number>;
}

/** Closes the store (a TRUNCATE checkpoint), then reads its pages by table and index. */
function closeAndMeasure(store: HistoryStore): Sizes & { walBytesBeforeClose: number } {
  const wal = `${store.path}-wal`;
  const walBytesBeforeClose = existsSync(wal) ? statSync(wal).size : 0;
  store.close();
  const db = new Database(store.path, { readonly: true });
  const rows = db.prepare("SELECT name, sum(pgsize) AS bytes FROM dbstat GROUP BY name").all() as {
    name: string;
    bytes: number;
  }[];
  db.close();
  const byName = Object.fromEntries(rows.map((r) => [r.name, r.bytes]));
  return { fileBytes: statSync(store.path).size, byName, walBytesBeforeClose };
}

function query<T>(path: string, sql: string): T[] {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare(sql).all() as T[];
  } finally {
    db.close();
  }
}

const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const round = (n: number, digits = 0) => Number(n.toFixed(digits));
const eventsBytes = (s: Sizes) =>
  ["events", "events_time", "events_rule", "events_by_process", "events_by_container"]
    .map((n) => s.byName[n] ?? 0)
    .reduce((a, b) => a + b, 0);

/** Decisions at 1,000 a second, as the pipeline hands them to the history. */
function measureEvents(dir: string) {
  const store = new HistoryStore(join(dir, "events.db"));
  const mix = new EventMix(1);
  const cpu = cpuSeconds();
  for (let n = 0; n < EVENTS; n += BATCH) {
    const batch = [];
    for (let i = n; i < Math.min(EVENTS, n + BATCH); i++) batch.push(mix.next(EPOCH + i));
    store.insertRows(eventRows(batch));
  }
  const cpuUsed = cpuSeconds() - cpu; // making the events and storing them
  const sizes = closeAndMeasure(store);
  // the JSON by kind: scans carry no process, egress decisions a process, some a container
  const kinds = query<{ kind: string; n: number; json: number }>(
    store.path,
    `SELECT type || CASE WHEN container_id IS NOT NULL THEN ' (container)'
                        WHEN process_name IS NOT NULL THEN ' (process)' ELSE '' END AS kind,
            count(*) AS n, avg(length(json)) AS json
     FROM events GROUP BY kind ORDER BY n DESC`,
  );
  const jsonChars = kinds.reduce((a, k) => a + k.n * k.json, 0) / EVENTS;
  const perEvent = (name: string) => round((sizes.byName[name] ?? 0) / EVENTS, 1);
  return {
    events: EVENTS,
    batch: BATCH,
    cpuSeconds: round(cpuUsed, 1),
    fileBytes: sizes.fileBytes,
    walBytesBeforeClose: sizes.walBytesBeforeClose,
    bytesPerEvent: round(sizes.fileBytes / EVENTS, 1),
    table: perEvent("events"),
    jsonChars: round(jsonChars, 1),
    byKind: kinds.map((k) => ({
      kind: k.kind,
      share: round(k.n / EVENTS, 3),
      jsonChars: round(k.json),
    })),
    indexes: {
      time: perEvent("events_time"),
      rule: perEvent("events_rule"),
      process: perEvent("events_by_process"),
      container: perEvent("events_by_container"),
    },
  };
}

/** Windows of flow summaries into the store: "flow" rows and the roll-ups. */
function storeWindows(path: string, windows: number, keysOf: (w: number) => Iterable<number>) {
  const store = new HistoryStore(path);
  const aggregator = new FlowAggregator();
  const r = rng(2);
  let summaries = 0;
  for (let w = 0; w < windows; w++) {
    for (const record of windowRecords(r, keysOf(w), EPOCH + w * WINDOW_MS, WINDOW_MS))
      aggregator.add(record);
    const window = aggregator.flush();
    summaries += window.length;
    store.insertFlows(window);
  }
  const sizes = closeAndMeasure(store);
  const levels = query<{ level: string; n: number }>(
    path,
    "SELECT level, count(*) AS n FROM flow_stats GROUP BY level",
  );
  const rollupRows = Object.fromEntries(levels.map((l) => [l.level, l.n])) as Record<
    string,
    number
  >;
  const rollupCount = levels.reduce((a, l) => a + l.n, 0);
  return {
    summaries,
    rollupRows,
    fileBytes: sizes.fileBytes,
    bytesPerSummaryRow: round(eventsBytes(sizes) / summaries, 1),
    bytesPerRollupRow: round((sizes.byName.flow_stats ?? 0) / rollupCount, 1),
  };
}

function* range(from: number, count: number): Iterable<number> {
  for (let k = from; k < from + count; k++) yield k;
}

/** Every key new in every window: the most rows a window makes. */
function measureWorstFlows(dir: string) {
  const cpu = cpuSeconds();
  const m = storeWindows(join(dir, "flows-worst.db"), WINDOWS, (w) =>
    range(w * DEFAULT_MAX_KEYS, DEFAULT_MAX_KEYS),
  );
  return { windows: WINDOWS, cpuSeconds: round(cpuSeconds() - cpu, 1), ...m };
}

/** TYPICAL_KEYS keys, each with a connection in about half the windows, for an hour. */
function measureTypicalFlows(dir: string) {
  const r = rng(3);
  const m = storeWindows(join(dir, "flows-typical.db"), 60, () =>
    [...range(0, TYPICAL_KEYS)].filter(() => r() < 0.5),
  );
  return { keys: TYPICAL_KEYS, windows: 60, ...m };
}

/** A store limited to RETENTION_BYTES, filled three times over, pruned every 10,000 rows. */
function measureRetention(dir: string, bytesPerEvent: number) {
  const store = new HistoryStore(join(dir, "retention.db"), { maxBytes: RETENTION_BYTES });
  const mix = new EventMix(4);
  const total = Math.ceil((3 * RETENTION_BYTES) / bytesPerEvent);
  let sincePrune = 0;
  let afterPrune = store.stats();
  for (let n = 0; n < total; n += BATCH) {
    const batch = [];
    for (let i = n; i < Math.min(total, n + BATCH); i++) batch.push(mix.next(EPOCH + i));
    store.insertRows(eventRows(batch));
    sincePrune += batch.length;
    if (sincePrune < 10_000) continue;
    sincePrune = 0;
    // what a pruning pass leaves: the used pages and the events kept
    if (store.prune(EPOCH + n) > 0) afterPrune = store.stats();
  }
  const atEnd = store.stats();
  const sizes = closeAndMeasure(store);
  return {
    maxBytes: RETENTION_BYTES,
    written: total,
    afterPrune: {
      kept: afterPrune.events,
      usedBytes: afterPrune.bytes,
      ofMaxBytes: round(afterPrune.bytes / RETENTION_BYTES, 3),
      keptTimesBytesPerEvent: Math.round(afterPrune.events * bytesPerEvent),
    },
    atEnd: { kept: atEnd.events, usedBytes: atEnd.bytes, fileBytes: sizes.fileBytes },
  };
}

/** Steady-state roll-up rows of `keys` keys, `active` of them in a given minute. */
function rollupRowsKept(keys: number, active: number): number {
  const perBucket = { minute: active, hour: keys, day: keys };
  return ROLLUP_LEVELS.map(({ level, bucketMs, keepMs }) =>
    Math.min(MAX_ROWS_PER_LEVEL, perBucket[level] * (keepMs / bucketMs)),
  ).reduce((a, b) => a + b, 0);
}

const dir = mkdtempSync(join(tmpdir(), "moat-history-growth-"));
try {
  const load = loadavg()[0];
  const events = measureEvents(dir);
  const worst = measureWorstFlows(dir);
  const typical = measureTypicalFlows(dir);
  const retention = measureRetention(dir, events.bytesPerEvent);
  const perEvent = events.bytesPerEvent;
  const kept = (rate: number, extraPerSecond = 0, reserved = 0) => {
    const perSecond = rate * perEvent + extraPerSecond;
    // pruning brings the used pages down to 90% of max_size: the history holds 90-100% of it
    return {
      hoursFrom: round((PRUNED_TO * MAX_SIZE - reserved) / perSecond / 3600, 2),
      hoursTo: round((MAX_SIZE - reserved) / perSecond / 3600, 2),
    };
  };
  // flows a day: summaries a window x 1,440 windows; roll-ups: what the levels keep at steady state
  const typicalPerWindow = typical.summaries / typical.windows;
  const typicalFlowsPerSecond = (typicalPerWindow * typical.bytesPerSummaryRow) / 60;
  const typicalRollupBytes =
    rollupRowsKept(TYPICAL_KEYS, typicalPerWindow) * typical.bytesPerRollupRow;
  const worstFlowsPerSecond = (DEFAULT_MAX_KEYS * worst.bytesPerSummaryRow) / 60;
  const worstRollupBytes = 3 * MAX_ROWS_PER_LEVEL * worst.bytesPerRollupRow;
  const result = {
    bench: "history-growth",
    load,
    events,
    flows: { worst, typical },
    retention,
    perDay: {
      eventsAt1000PerSecond: 1000 * DAY_S,
      gbAt1000PerSecond: round((1000 * DAY_S * perEvent) / 1e9, 1),
      gbAt100PerSecond: round((100 * DAY_S * perEvent) / 1e9, 2),
      gbAt10PerSecond: round((10 * DAY_S * perEvent) / 1e9, 3),
      gbFor30DaysAt1000PerSecond: round((30 * 1000 * DAY_S * perEvent) / 1e9),
      worstFlowRowsGb: round((worstFlowsPerSecond * DAY_S) / 1e9, 1),
      typicalFlowRowsMb: round((typicalFlowsPerSecond * DAY_S) / 1e6),
    },
    rollupsKept: {
      worstMb: round(worstRollupBytes / 1e6),
      typicalRows: rollupRowsKept(TYPICAL_KEYS, typicalPerWindow),
      typicalMb: round(typicalRollupBytes / 1e6, 1),
    },
    keptBy1GiB: {
      at1000PerSecond: kept(1000),
      at100PerSecond: kept(100),
      at10PerSecond: kept(10),
      at1000WithTypicalFlows: kept(1000, typicalFlowsPerSecond, typicalRollupBytes),
      at10WithTypicalFlows: kept(10, typicalFlowsPerSecond, typicalRollupBytes),
      worstFlowsAlone: kept(0, worstFlowsPerSecond, worstRollupBytes),
    },
  };
  console.log(JSON.stringify(result));
  writeResult("history-growth", result);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
