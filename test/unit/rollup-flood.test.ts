// A flood of distinct peers without a process (spoofed sources to a blocked port) cannot push the
// rows of identities out of the roll-ups learning and anomaly baselines read: unknown peers take
// at most three quarters of a bucket's keys (the rest of them go to its overflow row), and past
// a level's row limit their rows go before any row with a process.
import { test } from "node:test";
import assert from "node:assert/strict";
import Database from "better-sqlite3";
import { FlowRollups } from "../../src/observe/history/rollup.ts";
import type { FlowSummary } from "../../src/observe/flows/record.ts";
import { fakeEvent } from "../helpers/events.ts";

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const NOW = Date.parse("2026-11-30T12:00:00Z");

const totals = (t: number) => ({
  connections: 1,
  closed: 1,
  packets: 1,
  bytes: 60,
  durationMsSum: 0,
  durationMsMax: 0,
  firstMs: t,
  lastMs: t,
});

const curl = (t: number): FlowSummary => ({
  connection: fakeEvent({
    type: "detected",
    verdict: "detected",
    direction: "egress",
    rule: "default",
    local: { ip: "10.0.0.2", port: 40000 },
    remote: { ip: "140.82.112.6", port: 443, names: ["api.github.com"] },
    process: {
      pid: 9,
      name: "curl",
      path: "/usr/bin/curl",
      user: 1000,
      cgroup: "/u",
      container: null,
    },
  }),
  ...totals(t),
});

const spoofed = (t: number, i: number): FlowSummary => ({
  connection: fakeEvent({
    type: "blocked",
    verdict: "blocked",
    direction: "ingress",
    rule: "default",
    local: { ip: "10.0.0.2", port: 23 },
    remote: { ip: `198.18.${(i >> 8) & 255}.${i & 255}`, port: 5555 },
    process: null,
  }),
  ...totals(t),
});

const curlRows = (db: Database.Database, level: string) =>
  db
    .prepare("SELECT count(*) FROM flow_stats WHERE level = ? AND exe = '/usr/bin/curl'")
    .pluck()
    .get(level) as number;

test("roll-ups: a bucket full of unknown peers still takes an identity's own key", () => {
  const db = new Database(":memory:");
  const rollups = new FlowRollups(db, { maxKeysPerBucket: 20 });
  const t = NOW - 30 * MIN;
  rollups.add(Array.from({ length: 100 }, (_, i) => spoofed(t, i)));
  rollups.add([curl(t + 1)]);
  for (const level of ["minute", "hour", "day"]) assert.equal(curlRows(db, level), 1, level);
  const rows = db
    .prepare("SELECT count(*) FROM flow_stats WHERE level = 'minute'")
    .pluck()
    .get() as number;
  assert.ok(rows <= 20, `${rows} keys`);
  db.close();
});

test("roll-ups: past the row limit, rows of unknown peers go before an identity's", () => {
  const db = new Database(":memory:");
  const rollups = new FlowRollups(db, { maxKeysPerBucket: 20, maxRowsPerLevel: 100 });
  rollups.add([curl(NOW - 7 * DAY)]);
  // the last 30 hours: each hour, a bucket's worth of spoofed sources
  for (let h = 30; h >= 1; h--) {
    rollups.add(Array.from({ length: 20 }, (_, i) => spoofed(NOW - h * HOUR + i, i + h * 20)));
    rollups.prune(NOW - h * HOUR + HOUR - 1);
  }
  rollups.prune(NOW);
  assert.equal(curlRows(db, "hour"), 1, "the week-old hour row of curl is kept");
  assert.equal(curlRows(db, "day"), 1);
  for (const level of ["hour", "day"]) {
    const n = db
      .prepare("SELECT count(*) FROM flow_stats WHERE level = ?")
      .pluck()
      .get(level) as number;
    assert.ok(n <= 100, `${level}: ${n} rows`);
  }
  db.close();
});
