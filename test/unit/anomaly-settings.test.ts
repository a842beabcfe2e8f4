// The policy's `anomaly` section as the detectors get it, and the engine's state across a
// restart: an acceptance made before it still keeps the same anomaly quiet after it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkPolicySource, parsePolicy, textOnlyHost } from "../../src/config/index.ts";
import {
  AnomalyDetector,
  anomalySettingsOf,
  loadAnomalyState,
  saveAnomalyState,
  saveAnomalyStateInSlices,
  type AnomalyReport,
} from "../../src/observe/anomaly/index.ts";
import { DAY, EPOCH, HOUR, flow, processOf } from "../helpers/synthetic-history.ts";

const BASE = "version: 1\nmode: detect\n";

test("the anomaly section: defaults, durations, detectors, and errors at their line", () => {
  assert.equal(parsePolicy(BASE, "p.yaml").anomaly, undefined);
  assert.deepEqual(anomalySettingsOf(undefined).detectors, [
    "new_destination",
    "volume",
    "beacon",
    "dns",
  ]);
  const m = parsePolicy(
    `${BASE}anomaly: { baseline: 7d, min_baseline: 12h, detectors: [beacon], beacon_score: 0.9 }\n`,
    "p.yaml",
  ).anomaly;
  assert.equal(m?.baselineSeconds, 7 * 86400);
  assert.equal(m?.minBaselineSeconds, 12 * 3600);
  assert.deepEqual(m?.detectors, ["beacon"]);
  const s = anomalySettingsOf(m);
  assert.equal(s.beaconScore, 0.9);
  assert.equal(s.cooldownMs, DAY);
  const bad = checkPolicySource(
    `${BASE}anomaly:\n  min_baseline: soon\n  detectors: [psychic]\n`,
    "p.yaml",
    textOnlyHost,
  );
  assert.equal(bad.model, undefined);
  const lines = bad.diagnostics.map((d) => `${d.line} ${d.message}`).join("\n");
  assert.match(lines, /^5 must be one of new_destination, .*'psychic'/m);
  assert.match(lines, /^4 'soon' is not a duration/m);
  // a window keeps at most 256 names a domain: a higher threshold could never be reached
  const high = checkPolicySource(`${BASE}anomaly:\n  dns_names: 300\n`, "p.yaml", textOnlyHost);
  assert.equal(high.model, undefined, "dns_names past what a window keeps is refused");
  assert.match(high.diagnostics.map((d) => `${d.line} ${d.message}`).join("\n"), /^4 .*256/m);
});

test("baselines and acceptances survive a restart of the engine", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-anomaly-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "anomaly-state.json");
  const p = processOf("/usr/bin/backup");
  const found: AnomalyReport[] = [];
  const engine = () => new AnomalyDetector(anomalySettingsOf(undefined), (a) => found.push(a));
  const first = engine();
  for (let i = 0; i < 30; i++)
    first.flow(
      flow({ timeMs: EPOCH + i * HOUR, process: p, remote: "192.0.2.1", port: 443, bytes: 1000 }),
    );
  first.flow(
    flow({ timeMs: EPOCH + 2 * DAY, process: p, remote: "198.51.100.7", port: 22, bytes: 1000 }),
  );
  assert.deepEqual(
    found.map((a) => a.facts.kind),
    ["new_destination"],
  );
  assert.ok(first.accept(found[0]?.facts.id ?? "", "root"));
  saveAnomalyState(path, first);

  const second = engine();
  assert.equal(loadAnomalyState(path, second), true);
  assert.equal(second.accepted.size, 1);
  assert.equal(second.recent[0]?.accepted, true);
  // past the cooldown, the same destination: accepted before the restart, so quiet
  second.flow(
    flow({ timeMs: EPOCH + 20 * DAY, process: p, remote: "198.51.100.7", port: 22, bytes: 1000 }),
  );
  assert.equal(found.length, 1);
  // the profile came back too: a learned identity, so a new destination is reported at once
  second.flow(
    flow({ timeMs: EPOCH + 20 * DAY, process: p, remote: "203.0.113.5", port: 22, bytes: 1000 }),
  );
  assert.equal(found.length, 2);

  writeFileSync(path, "{not json");
  assert.throws(() => loadAnomalyState(path, engine()));
  assert.equal(loadAnomalyState(join(dir, "absent.json"), engine()), false);
});

test("the periodic save in slices writes the same file as a save at once, and never over a newer one", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-anomaly-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const d = new AnomalyDetector(anomalySettingsOf(undefined), () => {});
  for (let id = 0; id < 300; id++) {
    const p = processOf(`/usr/bin/worker-${id}`);
    for (let i = 0; i < 20; i++)
      d.flow(
        flow({
          timeMs: EPOCH + i * HOUR,
          process: p,
          remote: `192.0.2.${i}`,
          port: 443,
          bytes: 900 + i,
        }),
      );
  }
  assert.ok(d.profiles.size >= 300, `${d.profiles.size} profiles`);
  const once = join(dir, "once.json");
  const slices = join(dir, "slices.json");
  saveAnomalyState(once, d);
  await saveAnomalyStateInSlices(slices, d);
  assert.equal(readFileSync(slices, "utf8"), readFileSync(once, "utf8"));
  const back = new AnomalyDetector(anomalySettingsOf(undefined), () => {});
  assert.equal(loadAnomalyState(slices, back), true);
  assert.equal(back.profiles.size, d.profiles.size);
  // a save at once came while this one was made: it is dropped, the newer file stays
  writeFileSync(slices, "newer");
  await saveAnomalyStateInSlices(slices, d, () => true);
  assert.equal(readFileSync(slices, "utf8"), "newer");
  assert.deepEqual(readdirSync(dir).sort(), ["once.json", "slices.json"], "no file left behind");
});

test("a damaged or hostile state file is refused with a clear message, the engine unchanged", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-anomaly-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "anomaly-state.json");
  const p = processOf("/usr/bin/backup");
  const engine = () => new AnomalyDetector(anomalySettingsOf(undefined), () => {});
  const first = engine();
  for (let i = 0; i < 30; i++)
    first.flow(
      flow({ timeMs: EPOCH + i * HOUR, process: p, remote: "192.0.2.1", port: 443, bytes: 1000 }),
    );
  saveAnomalyState(path, first);
  const good = readFileSync(path, "utf8");
  type Json = Record<string, unknown>;
  const damaged: [string, (s: Json & { profiles: { $map: [string, Json][] } }) => void][] = [
    ["a profile without its fields", (s) => (s.profiles.$map[0]![1] = {})],
    ["hours that are not a list", (s) => ((s.profiles.$map[0]![1].volume as Json).hours = "x")],
    [
      "a beacon series without its times",
      (s) => (s.profiles.$map[0]![1].beacons = { $map: [["k", { starts: 5 }]] }),
    ],
    ["DNS names that are not a map", (s) => ((s.profiles.$map[0]![1].dns as Json).random = 7)],
    ["acceptances that are not a map", (s) => (s.accepted = 5)],
    ["another version", (s) => (s.version = 2)],
  ];
  for (const [what, damage] of damaged) {
    const s = JSON.parse(good) as Json & { profiles: { $map: [string, Json][] } };
    damage(s);
    writeFileSync(path, JSON.stringify(s));
    const d = engine();
    assert.throws(() => loadAnomalyState(path, d), /anomaly state/, what);
    assert.equal(d.profiles.size, 0, `${what}: nothing loaded`);
    assert.equal(d.accepted.size, 0, `${what}: nothing loaded`);
    // the engine still runs
    d.flow(flow({ timeMs: EPOCH, process: p, remote: "192.0.2.1", port: 443, bytes: 1000 }));
  }
  // a file others may write is not trusted: anyone could accept their own anomalies in it
  writeFileSync(path, good);
  chmodSync(path, 0o666);
  assert.throws(() => loadAnomalyState(path, engine()), /writable/);
  chmodSync(path, 0o600);
  assert.equal(loadAnomalyState(path, engine()), true);
});
