// B10 (docs/performance.md, "Roll-ups and anomaly detection"): whether flow records are taken
// in at 100k a second. RECORDS flow records (many identities and peers, every connection's close
// record, timestamps 10 µs apart, so 100k records a second of record time) go through what the
// daemon does with each: the flow aggregator and the anomaly detectors (the daemon's thread),
// and, once a 60 s window, the window's summaries into the history's SQLite store, "flow" events
// and minute/hour/day roll-ups (the history's worker thread). Prints and writes the records a
// second each part takes in, on one core.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FlowAggregator } from "../src/observe/flows/aggregate.ts";
import type { FlowRecord } from "../src/observe/flows/record.ts";
import { HistoryStore } from "../src/observe/history/store.ts";
import { AnomalyDetector, DEFAULT_ANOMALY_SETTINGS } from "../src/observe/anomaly/index.ts";
import { EPOCH, flow, processOf, rng } from "../test/helpers/synthetic-history.ts";
import { writeResult } from "./results.ts";

const RECORDS = Number(process.env.RECORDS ?? 2_000_000);
const STEP_US = 10;
const IDENTITIES = 200;
const PEERS = 5000;
const WINDOW_MS = 60_000;

const r = rng(7);
const processes = Array.from({ length: IDENTITIES }, (_, i) =>
  processOf(`/usr/bin/service-${i}`, 1000 + (i % 7), `/system.slice/s${i}.service`),
);
const peers = Array.from({ length: PEERS }, (_, i) => ({
  ip: `198.${18 + (i % 2)}.${(i >> 8) & 255}.${1 + (i % 250)}`,
  name: i % 3 === 0 ? undefined : `h${i}.svc${i % 400}.example.com`,
}));
// the records are made first: the bench measures what takes them in, not their making
const records: FlowRecord[] = new Array<FlowRecord>(RECORDS);
for (let i = 0; i < RECORDS; i++) {
  const p = processes[Math.floor(r() ** 2 * IDENTITIES)]!;
  const peer = peers[Math.floor(r() ** 3 * PEERS)]!;
  records[i] = flow({
    timeMs: EPOCH + (i * STEP_US) / 1000,
    process: p,
    remote: peer.ip,
    ...(peer.name ? { name: peer.name } : {}),
    port: r() < 0.9 ? 443 : 80,
    bytes: 500 + Math.floor(r() * 50_000),
    durationMs: r() * 5000,
  });
}

const dir = mkdtempSync(join(tmpdir(), "moat-b10-"));
try {
  const store = new HistoryStore(join(dir, "history.db"));
  const aggregator = new FlowAggregator();
  let anomalies = 0;
  const detector = new AnomalyDetector(DEFAULT_ANOMALY_SETTINGS, () => anomalies++);
  let daemonMs = 0;
  let storeMs = 0;
  let summaries = 0;
  let windowEnd = EPOCH + WINDOW_MS;
  const flush = () => {
    const window = aggregator.flush();
    summaries += window.length;
    const t = performance.now();
    store.insertFlows(window);
    storeMs += performance.now() - t;
  };
  const BATCH = 10_000;
  for (let i = 0; i < RECORDS; i += BATCH) {
    const end = Math.min(RECORDS, i + BATCH);
    const t = performance.now();
    for (let j = i; j < end; j++) {
      const rec = records[j]!;
      aggregator.add(rec);
      detector.flow(rec);
    }
    daemonMs += performance.now() - t;
    if (records[end - 1]!.timeMs >= windowEnd) {
      flush();
      windowEnd += WINDOW_MS;
    }
  }
  flush();
  const perSecond = (ms: number) => Math.round(RECORDS / (ms / 1000));
  const result = {
    records: RECORDS,
    identities: IDENTITIES,
    peers: PEERS,
    recordSeconds: (RECORDS * STEP_US) / 1e6,
    summaries,
    anomalies,
    daemonThread: { ms: Math.round(daemonMs), recordsPerSecond: perSecond(daemonMs) },
    storeThread: { ms: Math.round(storeMs), recordsPerSecond: perSecond(storeMs) },
    oneCore: { recordsPerSecond: perSecond(daemonMs + storeMs) },
  };
  console.log(JSON.stringify(result));
  writeResult("anomaly-ingest", result);
  store.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
