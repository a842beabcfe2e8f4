// Flow statistics: summaries rolled up per minute, hour and day, filtered by process and peer,
// each level pruned after its own time, and kept across a restart of the store.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { HistoryStore } from "../../src/observe/history/store.ts";
import { FlowRollups } from "../../src/observe/history/rollup.ts";
import type { FlowSummary } from "../../src/observe/flows/record.ts";
import { fakeEvent } from "../helpers/events.ts";

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

function summary(
  lastMs: number,
  over: Partial<FlowSummary> = {},
  peer = "example.com",
): FlowSummary {
  const e = fakeEvent({
    type: "allowed",
    verdict: "allowed",
    direction: "egress",
    rule: "web",
    local: { ip: "10.0.0.1", port: 40000 },
    remote: { ip: "93.184.216.34", port: 443, names: [peer] },
    process: {
      pid: 9,
      name: "curl",
      path: "/usr/bin/curl",
      user: 1000,
      cgroup: "/u",
      container: null,
    },
  });
  return {
    connection: e,
    connections: 2,
    closed: 2,
    packets: 20,
    bytes: 1000,
    durationMsSum: 3000,
    durationMsMax: 2000,
    firstMs: lastMs - 500,
    lastMs,
    ...over,
  };
}

test("roll-ups add minutes into hours and days; filters; flows are events only by type", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-rollup-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "h.db");
  const now = Date.parse("2026-11-22T10:30:00Z");
  let store = new HistoryStore(path);
  store.insertFlows([summary(now - 5 * MIN), summary(now - 3 * MIN, { durationMsMax: 9000 })]);
  store.insertFlows([summary(now - 2 * MIN, {}, "api.github.com")]);
  store.insertFlows([
    summary(now - MIN, {
      connection: { ...summary(0).connection, verdict: "blocked", rule: "default" },
      bytes: 0,
    }),
  ]);
  store.insert([fakeEvent({ time: new Date(now).toISOString() })]);

  const day = store.flowStats({ since: now - HOUR }, now);
  assert.equal(day.resolution, "minute");
  const ex = day.rows.find((r) => r.peer === "example.com")!;
  assert.deepEqual(
    [ex.connections, ex.bytes, ex.durationMsMax, ex.verdicts, ex.identity.exe, ex.port],
    [6, 2000, 9000, { allowed: 4, blocked: 2, detected: 0 }, "/usr/bin/curl", 443],
  );
  assert.equal(store.flowStats({ since: now - HOUR, peer: "github.com" }, now).rows.length, 1);
  assert.equal(store.flowStats({ since: now - HOUR, process: "curl" }, now).rows.length, 2);
  assert.equal(store.flowStats({ since: now - HOUR, process: "wget" }, now).rows.length, 0);

  // flows are listed by type only; the event stays the only answer otherwise
  assert.equal(store.query({}).events.length, 1);
  assert.equal(store.query({ types: ["flow"] }).events.length, 4);

  // a restart keeps them; the hour and day levels hold the same totals
  store.close();
  store = new HistoryStore(path);
  t.after(() => store.close());
  const week = store.flowStats({ since: now - 7 * DAY }, now);
  assert.equal(week.resolution, "hour");
  assert.equal(week.rows.find((r) => r.peer === "example.com")?.bytes, 2000);
  const year = store.flowStats({ since: now - 100 * DAY }, now);
  assert.equal(year.resolution, "day");
  assert.equal(year.rows.find((r) => r.peer === "example.com")?.connections, 6);

  // minute rows go after 2 days, hour rows after 35, day rows after 400
  const levels = () =>
    Object.fromEntries(
      (
        new Database(path, { readonly: true })
          .prepare("SELECT level, count(*) AS n FROM flow_stats GROUP BY level")
          .all() as { level: string; n: number }[]
      ).map((r) => [r.level, r.n]),
    );
  assert.deepEqual(levels(), { minute: 4, hour: 2, day: 2 });
  store.prune(now + 3 * DAY);
  assert.deepEqual(levels(), { hour: 2, day: 2 });
  store.prune(now + 40 * DAY);
  assert.deepEqual(levels(), { day: 2 });
  assert.equal(store.flowStats({ since: now - 7 * DAY }, now + 40 * DAY).rows.length, 2);
  store.prune(now + 401 * DAY);
  assert.deepEqual(levels(), {});
});

test("a flood of distinct peers fills a bucket's keys, then its overflow row; old buckets go past the row limit", () => {
  const db = new Database(":memory:");
  const rollups = new FlowRollups(db, { maxKeysPerBucket: 50, maxRowsPerLevel: 120 });
  const now = Date.parse("2026-11-22T10:30:00Z");
  // one minute: 80 peers, 50 keys kept, the other 30 added to one overflow row
  rollups.add(
    Array.from({ length: 80 }, (_, i) => summary(now - 10 * MIN + 1000, {}, `host${i}.example`)),
  );
  const minute = rollups.query({ since: now - HOUR, limit: 1000 }, now);
  assert.equal(minute.rows.length, 51);
  const other = minute.rows.find((r) => r.peer === "*");
  assert.deepEqual([other?.connections, other?.bytes, other?.identity.user], [60, 30_000, null]);
  assert.equal(rollups.overflowed, 30 * 3, "each level's bucket overflowed");
  // two more minutes of 51 rows each: the minute level holds at most 120, the oldest minute goes
  for (const at of [now - 5 * MIN, now - 2 * MIN])
    rollups.add(Array.from({ length: 80 }, (_, i) => summary(at + 1000, {}, `host${i}.example`)));
  rollups.prune(now);
  const rows = db
    .prepare("SELECT level, count(*) AS n FROM flow_stats GROUP BY level ORDER BY level")
    .all() as { level: string; n: number }[];
  assert.deepEqual(rows, [
    { level: "day", n: 51 },
    { level: "hour", n: 51 },
    { level: "minute", n: 102 },
  ]);
  db.close();
});

test("the row limit holds with each level's rows counted once: rows added later, an add rolled back", () => {
  const db = new Database(":memory:");
  const rollups = new FlowRollups(db, { maxKeysPerBucket: 50, maxRowsPerLevel: 120 });
  const now = Date.parse("2026-11-22T10:30:00Z");
  const minute = (at: number) =>
    rollups.add(Array.from({ length: 40 }, (_, i) => summary(at + 1000, {}, `host${i}.example`)));
  const minuteRows = () =>
    db.prepare("SELECT count(*) FROM flow_stats WHERE level = 'minute'").pluck().get();
  minute(now - 10 * MIN);
  assert.equal(rollups.prune(now), 0, "40 rows a level, counted here");
  minute(now - 5 * MIN);
  minute(now - 3 * MIN);
  assert.equal(rollups.prune(now), 0, "120 minute rows: at the limit, not over it");
  // rows the count took as added, which the table does not hold
  const failing = db.transaction(() => {
    minute(now - 2 * MIN);
    throw new Error("disk full");
  });
  assert.throws(failing, /disk full/);
  rollups.recount();
  assert.equal(rollups.prune(now), 0, "nothing over the limit after the rollback");
  assert.equal(minuteRows(), 120);
  minute(now - MIN);
  assert.equal(rollups.prune(now), 40, "the oldest minute goes");
  assert.equal(minuteRows(), 120);
  const oldest = db
    .prepare("SELECT min(bucket_ms) FROM flow_stats WHERE level = 'minute'")
    .pluck()
    .get();
  assert.equal(oldest, now - 5 * MIN - ((now - 5 * MIN) % MIN));
  db.close();
});

test("summaries of two minutes in turn: each minute keeps its own keys and its own overflow row", () => {
  const db = new Database(":memory:");
  const rollups = new FlowRollups(db, { maxKeysPerBucket: 50 });
  const now = Date.parse("2026-11-22T10:30:00Z");
  const minutes = [now - 2 * MIN + 1000, now - MIN + 1000];
  // as a flow window hands them over: created in turn, across the minute's boundary
  for (let i = 0; i < 80; i++)
    for (const at of minutes) rollups.add([summary(at, {}, `host${i}.example`)]);
  const rows = db
    .prepare(
      "SELECT bucket_ms, count(*) AS n, sum(peer = '*') AS overflow FROM flow_stats WHERE level = 'minute' GROUP BY bucket_ms",
    )
    .all();
  assert.deepEqual(
    rows,
    minutes.map((at) => ({ bucket_ms: at - (at % MIN), n: 51, overflow: 1 })),
  );
  db.close();
});
