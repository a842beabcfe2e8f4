// Anomaly baselines rebuilt from the stored hour and day roll-ups at start: a week of flows goes
// through the real aggregator into the real roll-ups (SQLite in memory); a detector seeded from
// them after a "restart" without its state file knows what the week taught (the identities are
// learned, their destinations known, their hourly and daily volume measured), so a burst and a
// new destination on the next day are reported as by a detector that never stopped, where an
// empty one (today's behaviour without a state file) is still learning and says nothing. The
// anomaly path rebuilds only when no state file was read, holds the records that arrive
// meanwhile and replays them after.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AnomalyDetector, type AnomalyReport } from "../../src/observe/anomaly/detector.ts";
import { DEFAULT_ANOMALY_SETTINGS } from "../../src/observe/anomaly/types.ts";
import { seedFromRollups } from "../../src/observe/anomaly/from-rollups.ts";
import { saveAnomalyState } from "../../src/observe/anomaly/state-file.ts";
import { FlowAggregator } from "../../src/observe/flows/aggregate.ts";
import { HistoryStore } from "../../src/observe/history/store.ts";
import type { FlowRecord } from "../../src/observe/flows/record.ts";
import type { MoatEvent } from "../../src/datapath/event.ts";
import { startAnomalyPath } from "../../src/daemon/anomaly-path.ts";
import {
  addressOf,
  DAY,
  EPOCH,
  flow,
  HOUR,
  MINUTE,
  processOf,
  rng,
  uniform,
} from "../helpers/synthetic-history.ts";

const sync = processOf("/usr/bin/sync-agent");
const python = processOf("/usr/bin/python3");
const RESTART = EPOCH + 7 * DAY;

/** A week: the sync agent every 2 minutes, python fetching from pypi.org every few hours. */
function week(): FlowRecord[] {
  const r = rng(7);
  const flows: FlowRecord[] = [];
  for (let t = EPOCH; t < RESTART; t += 120_000 * uniform(r, 0.95, 1.05))
    flows.push(
      flow({
        timeMs: t,
        process: sync,
        remote: addressOf("sync.example.net"),
        name: "sync.example.net",
        port: 443,
        bytes: 3600 * uniform(r, 0.9, 1.1),
      }),
    );
  for (let t = EPOCH; t < RESTART; t += uniform(r, 2, 6) * HOUR)
    flows.push(
      flow({
        timeMs: t,
        process: python,
        remote: addressOf("pypi.org"),
        name: "pypi.org",
        port: 443,
        bytes: 200_000 * uniform(r, 0.5, 2),
      }),
    );
  return flows.sort((a, b) => a.timeMs - b.timeMs);
}

/** The day after: a 100x upload by the sync agent, python somewhere it never went. */
function nextDay(): FlowRecord[] {
  const flows: FlowRecord[] = [];
  for (let t = RESTART + HOUR; t < RESTART + 2 * HOUR; t += 120_000)
    flows.push(
      flow({
        timeMs: t,
        process: sync,
        remote: addressOf("sync.example.net"),
        name: "sync.example.net",
        port: 443,
        bytes: t < RESTART + HOUR + 10 * MINUTE ? 20_000_000 : 3600,
      }),
    );
  flows.push(
    flow({
      timeMs: RESTART + 3 * HOUR,
      process: python,
      remote: addressOf("pypi.org"),
      name: "pypi.org",
      port: 443,
      bytes: 150_000,
    }),
    flow({
      timeMs: RESTART + 3 * HOUR + MINUTE,
      process: python,
      remote: addressOf("exfil.example"),
      name: "exfil.example",
      port: 8443,
      bytes: 5000,
    }),
  );
  return flows;
}

/** The week's flows as the daemon stores them: a minute's summaries at a time, into roll-ups. */
function storedWeek(flows: FlowRecord[]): HistoryStore {
  const store = new HistoryStore(":memory:");
  const aggregator = new FlowAggregator();
  let window = EPOCH;
  for (const f of flows) {
    while (f.timeMs >= window + MINUTE) {
      store.insertFlows(aggregator.flush());
      window += MINUTE;
    }
    aggregator.add(f);
  }
  store.insertFlows(aggregator.flush());
  return store;
}

const kinds = (reports: AnomalyReport[]) =>
  reports.map((r) => `${r.facts.kind} ${r.facts.identity.exe} ${r.facts.key}`).sort();

test("a detector seeded from the roll-ups reports what one that never stopped reports", () => {
  const flows = week();
  const store = storedWeek(flows);
  const input = store.baselineRows(RESTART);
  assert.equal(input.overflow, 0);
  assert.ok(input.rows.length > 0);

  const never: AnomalyReport[] = [];
  const reference = new AnomalyDetector(DEFAULT_ANOMALY_SETTINGS, (r) => never.push(r));
  for (const f of flows) reference.flow(f);
  never.length = 0;

  const rebuilt: AnomalyReport[] = [];
  const seeded = new AnomalyDetector(DEFAULT_ANOMALY_SETTINGS, (r) => rebuilt.push(r));
  const result = seedFromRollups(seeded, input, RESTART);
  assert.equal(result.identities, 2);
  const profile = [...seeded.profiles.values()].find((p) => p.identity.exe === sync.path);
  assert.ok(profile);
  assert.ok(profile.firstMs < EPOCH + HOUR, "the identity is as old as its first roll-up");
  assert.ok(profile.volume.hours.length >= 24 * 6, "its active hours are measured");

  const empty: AnomalyReport[] = [];
  const fresh = new AnomalyDetector(DEFAULT_ANOMALY_SETTINGS, (r) => empty.push(r));

  for (const f of nextDay()) {
    reference.flow(f);
    seeded.flow(f);
    fresh.flow(f);
  }
  const expected = [
    `new_destination /usr/bin/python3 exfil.example tcp/8443`,
    `volume /usr/bin/sync-agent bytes/hour`,
  ];
  assert.deepEqual(kinds(never), expected, "the reference");
  assert.deepEqual(kinds(rebuilt), expected, "rebuilt from the roll-ups: the same reports");
  assert.deepEqual(kinds(empty), [], "an empty detector is still learning");
});

test("the anomaly path rebuilds only without a state file, replaying what came meanwhile", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-rebuild-"));
  // the path saves its state into the folder when it closes: the folder goes after it
  const closing: (() => void)[] = [];
  t.after(() => {
    for (const close of closing) close();
    rmSync(dir, { recursive: true, force: true });
  });
  const store = storedWeek(week());
  const pushed: MoatEvent[] = [];
  const lines: string[] = [];
  let release: () => void = () => {};
  const asked = new Promise<void>((r) => (release = r));
  const path = startAnomalyPath({
    settings: () => undefined,
    mode: () => "detect",
    push: (e) => pushed.push(e),
    statePath: join(dir, "anomaly-state.json"),
    rollups: async (until) => {
      await asked;
      return store.baselineRows(until);
    },
    now: () => RESTART,
    audit: () => {},
    log: (l) => lines.push(l),
  });
  closing.push(() => path.close());
  // records that arrive while the roll-ups are read wait for them
  for (const f of nextDay()) path.flow(f);
  assert.equal(pushed.length, 0);
  release();
  await path.rebuilt;
  assert.match(
    lines.join("\n"),
    /anomaly baselines rebuilt from the roll-ups: 2 identities from \d+ rows/,
  );
  assert.deepEqual(pushed.map((e) => e.rule).sort(), ["anomaly:new_destination", "anomaly:volume"]);

  // with a state file, the state is what the path starts from: no rebuild
  const saved = new AnomalyDetector(DEFAULT_ANOMALY_SETTINGS, () => {});
  saveAnomalyState(join(dir, "kept.json"), saved);
  let read = false;
  const kept = startAnomalyPath({
    settings: () => undefined,
    mode: () => "detect",
    push: () => {},
    statePath: join(dir, "kept.json"),
    rollups: (until) => {
      read = true;
      return Promise.resolve(store.baselineRows(until));
    },
    audit: () => {},
    log: () => {},
  });
  await kept.rebuilt;
  kept.close();
  assert.equal(read, false);

  // a damaged state file is said, with what is wrong in it, and the baselines are rebuilt
  writeFileSync(join(dir, "damaged.json"), '{"version":1,"profiles":{"$map":[["x",{}]]}}');
  const said: string[] = [];
  const damaged = startAnomalyPath({
    settings: () => undefined,
    mode: () => "detect",
    push: () => {},
    statePath: join(dir, "damaged.json"),
    rollups: (until) => Promise.resolve(store.baselineRows(until)),
    now: () => RESTART,
    audit: () => {},
    log: (l) => said.push(l),
  });
  await damaged.rebuilt;
  damaged.close();
  assert.match(
    said.join("\n"),
    /^warning: anomaly state file .*damaged\.json: profiles\["x"\]\.identity is not an object; it is not used: baselines are rebuilt from the roll-ups$/m,
  );
  assert.match(said.join("\n"), /anomaly baselines rebuilt from the roll-ups: 2 identities/);
});
