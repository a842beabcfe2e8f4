// A process known by its name only (its executable unread, the name any process can set, a
// slash included) is an identity of its own for the anomaly detectors, apart from the executable
// whose path reads the same: what it does is not learnt as that executable's usual, live or
// rebuilt from the roll-ups, and its anomalies say it is a name.
import { test } from "node:test";
import assert from "node:assert/strict";
import { AnomalyDetector, type AnomalyReport } from "../../src/observe/anomaly/detector.ts";
import { seedFromRollups } from "../../src/observe/anomaly/from-rollups.ts";
import { DEFAULT_ANOMALY_SETTINGS } from "../../src/observe/anomaly/types.ts";
import { FlowAggregator } from "../../src/observe/flows/aggregate.ts";
import type { FlowRecord } from "../../src/observe/flows/record.ts";
import { HistoryStore } from "../../src/observe/history/store.ts";
import {
  addressOf,
  DAY,
  EPOCH,
  flow,
  HOUR,
  MINUTE,
  processOf,
} from "../helpers/synthetic-history.ts";

const ssh = processOf("/usr/bin/ssh");
/** A short-lived process that called itself "/usr/bin/ssh" (prctl) and exited before moat read it. */
const impostor = { ...ssh, pid: 4242, name: "/usr/bin/ssh", path: "" };
const LEARNT = EPOCH + 3 * DAY;

/** Three days: ssh to its git server, the impostor to its drop, each every 6 hours. */
function days(): FlowRecord[] {
  const flows: FlowRecord[] = [];
  for (let t = EPOCH; t < LEARNT; t += 6 * HOUR)
    flows.push(
      flow({
        timeMs: t,
        process: ssh,
        remote: addressOf("git.example.org"),
        name: "git.example.org",
        port: 22,
        bytes: 5000,
      }),
      flow({
        timeMs: t + MINUTE,
        process: impostor,
        remote: addressOf("drop.example"),
        name: "drop.example",
        port: 22,
        bytes: 5000,
      }),
    );
  return flows;
}

/** ssh itself reaching the impostor's drop, after both were learnt. */
const sshToDrop = flow({
  timeMs: LEARNT + HOUR,
  process: ssh,
  remote: addressOf("drop.example"),
  name: "drop.example",
  port: 22,
  bytes: 5000,
});

const newDestinations = (found: AnomalyReport[]) =>
  found
    .filter((a) => a.facts.kind === "new_destination")
    .map((a) => [a.facts.identity.exe, a.facts.identity.nameOnly ?? false, a.facts.key]);

test("anomaly: the name '/usr/bin/ssh' is no part of the executable /usr/bin/ssh's baseline", () => {
  const found: AnomalyReport[] = [];
  const d = new AnomalyDetector(DEFAULT_ANOMALY_SETTINGS, (a) => found.push(a));
  for (const f of days()) d.flow(f);
  assert.equal(d.profiles.size, 2, "two identities");
  found.length = 0;
  d.flow(sshToDrop);
  assert.deepEqual(newDestinations(found), [["/usr/bin/ssh", false, "drop.example tcp/22"]]);
});

test("anomaly: rebuilt from the roll-ups, the name and the executable stay two identities", () => {
  const store = new HistoryStore(":memory:");
  const aggregator = new FlowAggregator();
  for (const f of days()) {
    aggregator.add(f);
    store.insertFlows(aggregator.flush());
  }
  const found: AnomalyReport[] = [];
  const d = new AnomalyDetector(DEFAULT_ANOMALY_SETTINGS, (a) => found.push(a));
  assert.equal(seedFromRollups(d, store.baselineRows(LEARNT), LEARNT).identities, 2);
  const named = [...d.profiles.values()].filter((p) => p.identity.nameOnly);
  assert.deepEqual(
    named.map((p) => p.identity.exe),
    ["/usr/bin/ssh"],
  );
  d.flow(sshToDrop);
  assert.deepEqual(newDestinations(found), [["/usr/bin/ssh", false, "drop.example tcp/22"]]);
  store.close();
});
