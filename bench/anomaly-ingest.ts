// B10 (docs/performance.md, "Roll-ups and anomaly detection"): whether flow records are taken
// in at 100k a second. RECORDS flow records (many identities and peers, every connection's close
// record, timestamps 10 µs apart, so 100k records a second of record time) go through what the
// daemon does with each: the flow aggregator and the anomaly detectors (the daemon's thread),
// and, once a 60 s window, the window's summaries into the history's SQLite store, "flow" events
// and minute/hour/day roll-ups (the history's worker thread). Prints and writes the records a
// CPU-second each part takes in (CPU time, so other work on a shared machine counts less).
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
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
  // CPU time (user + system) of each part, not wall time: on a shared machine the wall clock
  // also counts the time other processes held the core
  const cpuMs = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  let aggregatorMs = 0;
  let detectorMs = 0;
  let storeMs = 0;
  let summaries = 0;
  let windowEnd = EPOCH + WINDOW_MS;
  const flush = () => {
    const window = aggregator.flush();
    summaries += window.length;
    const t = cpuMs();
    store.insertFlows(window);
    storeMs += cpuMs() - t;
  };
  const BATCH = 10_000;
  for (let i = 0; i < RECORDS; i += BATCH) {
    const end = Math.min(RECORDS, i + BATCH);
    const t = cpuMs();
    for (let j = i; j < end; j++) aggregator.add(records[j]!);
    const u = cpuMs();
    for (let j = i; j < end; j++) detector.flow(records[j]!);
    const v = cpuMs();
    aggregatorMs += u - t;
    detectorMs += v - u;
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
    load: loadavg()[0],
    aggregator: { cpuMs: Math.round(aggregatorMs), recordsPerSecond: perSecond(aggregatorMs) },
    detectors: { cpuMs: Math.round(detectorMs), recordsPerSecond: perSecond(detectorMs) },
    daemonThread: {
      cpuMs: Math.round(aggregatorMs + detectorMs),
      recordsPerSecond: perSecond(aggregatorMs + detectorMs),
    },
    storeThread: { cpuMs: Math.round(storeMs), recordsPerSecond: perSecond(storeMs) },
    oneCore: { recordsPerSecond: perSecond(aggregatorMs + detectorMs + storeMs) },
  };
  console.log(JSON.stringify(result));
  writeResult("anomaly-ingest", result);
  store.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
