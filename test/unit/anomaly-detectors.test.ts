// The anomaly detectors over a week of synthetic history (timestamps injected): a beacon is
// flagged and a person's browsing is not; a burst upload is flagged with its baseline; a new
// destination is flagged for the identity that never used it and not for the one that always
// did; accepting an anomaly as normal keeps the next one quiet; nothing is said while an
// identity is still being learned.
import { test } from "node:test";
import assert from "node:assert/strict";
import { AnomalyDetector, type AnomalyReport } from "../../src/observe/anomaly/detector.ts";
import { DEFAULT_ANOMALY_SETTINGS } from "../../src/observe/anomaly/types.ts";
import { beaconScore } from "../../src/observe/anomaly/beacon.ts";
import { randomLooking } from "../../src/observe/anomaly/dns-oddities.ts";
import { prefixOf } from "../../src/observe/anomaly/destination.ts";
import { registrableDomain } from "../../src/observe/registrable-domain.ts";
import { logBaseline, logZ } from "../../src/observe/anomaly/robust.ts";
import {
  addressOf,
  browser,
  DAY,
  dnsQuery,
  emptyHistory,
  EPOCH,
  flow,
  HOUR,
  MINUTE,
  periodic,
  processOf,
  replay,
  rng,
  uniform,
  type History,
} from "../helpers/synthetic-history.ts";

const WEEK = 7 * DAY;
const sync = processOf("/usr/bin/sync-agent");
const python = processOf("/usr/bin/python3");
const firefox = processOf("/usr/lib/firefox/firefox");
const SYNC = "sync.example.net";

/** A week of a sync agent (every 2 min to sync.example.net), python fetching packages now and
 * then, and a person browsing; then what `after` adds. */
function week(seed: number, after: (h: History, r: () => number) => void): AnomalyReport[] {
  const r = rng(seed);
  const h = emptyHistory();
  periodic(h, r, sync, {
    from: EPOCH,
    to: EPOCH + WEEK + DAY,
    periodMs: 120_000,
    jitter: 0.05,
    name: SYNC,
    remote: addressOf(SYNC),
    port: 443,
    bytes: 3600,
  });
  for (let t = EPOCH; t < EPOCH + WEEK; t += uniform(r, 2, 6) * HOUR)
    h.flows.push(
      flow({
        timeMs: t,
        process: python,
        remote: addressOf("pypi.org"),
        name: "pypi.org",
        port: 443,
        bytes: 80_000,
      }),
    );
  browser(h, r, firefox, EPOCH, EPOCH + WEEK + DAY);
  after(h, r);
  const found: AnomalyReport[] = [];
  const d = new AnomalyDetector(DEFAULT_ANOMALY_SETTINGS, (a) => found.push(a));
  replay(h, d);
  return found;
}

const of = (found: AnomalyReport[], exe: string, kind?: string) =>
  found.filter((a) => a.facts.identity.exe === exe && (!kind || a.facts.kind === kind));

test("a beacon every 60 s ± 2 s is flagged; a person's browsing is not", () => {
  const found = week(1, (h, r) =>
    periodic(h, r, python, {
      from: EPOCH + WEEK,
      to: EPOCH + WEEK + 2 * HOUR,
      periodMs: 60_000,
      jitter: 2 / 60,
      remote: "192.0.2.77",
      port: 8443,
      bytes: 600,
    }),
  );
  const beacons = of(found, python.path, "beacon");
  assert.equal(beacons.length, 1, JSON.stringify(found.map((a) => a.facts.summary)));
  const b = beacons[0]?.facts;
  assert.ok(b && b.value >= b.threshold);
  assert.equal(b.key, "192.0.2.77 tcp/8443");
  assert.ok(Math.abs(Number(b.baseline.intervalMedianMs) - 60_000) < 3000);
  assert.equal(b.samples[0]?.remote, "192.0.2.77");
  // the browser over more than a week: no beacon, and its new sites are its habit
  assert.deepEqual(of(found, firefox.path), []);
  // the sync agent's 2 min connections were regular from the start: its baseline
  assert.deepEqual(of(found, sync.path, "beacon"), []);
});

test("a burst upload of 100x the usual bytes is flagged with its baseline", () => {
  const found = week(2, (h) => {
    const at = EPOCH + WEEK + 3 * HOUR;
    for (let i = 0; i < 100; i++)
      h.flows.push(
        flow({
          timeMs: at + i * 20_000,
          process: sync,
          remote: addressOf(SYNC),
          name: SYNC,
          port: 443,
          bytes: 108_000,
        }),
      );
  });
  const volume = of(found, sync.path, "volume");
  assert.equal(volume.length, 1, JSON.stringify(found.map((a) => a.facts.summary)));
  const v = volume[0]?.facts;
  assert.equal(v?.key, "bytes/hour");
  const median = Number(v?.baseline.median);
  // 30 connections of ~3600 bytes an hour
  assert.ok(median > 80_000 && median < 140_000, `median ${median}`);
  // reported as the hour's bytes pass the threshold, while the upload goes on
  assert.ok((v?.value ?? 0) > (v?.threshold ?? Infinity) && (v?.threshold ?? 0) > 5 * median);
  assert.ok(Number(v?.baseline.samples) >= 24 * 7);
  assert.equal(v?.samples[0]?.name, SYNC);
  assert.deepEqual(of(found, sync.path, "new_destination"), []);
});

test("a new destination is flagged for the identity that never used it, not for the one that always did", () => {
  const found = week(3, (h) => {
    const at = EPOCH + WEEK + HOUR;
    h.flows.push(
      flow({
        timeMs: at,
        process: python,
        remote: addressOf(SYNC),
        name: SYNC,
        port: 443,
        bytes: 2000,
      }),
    );
    h.flows.push(
      flow({
        timeMs: at,
        process: sync,
        remote: addressOf(SYNC),
        name: SYNC,
        port: 443,
        bytes: 2000,
      }),
    );
  });
  const fresh = of(found, python.path, "new_destination");
  assert.equal(fresh.length, 1);
  assert.equal(fresh[0]?.facts.key, "example.net tcp/443");
  assert.equal(fresh[0]?.facts.baseline.knownDestinations, 1);
  assert.deepEqual(of(found, sync.path), []);
});

test("accepting an anomaly as normal keeps the next one quiet; a larger one is still reported", () => {
  const r = rng(4);
  const h = emptyHistory();
  periodic(h, r, sync, {
    from: EPOCH,
    to: EPOCH + WEEK + 3 * DAY,
    periodMs: 120_000,
    jitter: 0.05,
    name: SYNC,
    remote: addressOf(SYNC),
    port: 443,
    bytes: 3600,
  });
  const burst = (day: number, bytes: number) => {
    for (let i = 0; i < 10; i++)
      h.flows.push(
        flow({
          timeMs: EPOCH + day * DAY + 3 * HOUR + i * MINUTE,
          process: sync,
          remote: addressOf(SYNC),
          name: SYNC,
          port: 443,
          bytes,
        }),
      );
  };
  const newPeer = (day: number) =>
    h.flows.push(
      flow({
        timeMs: EPOCH + day * DAY + 5 * HOUR,
        process: sync,
        remote: "192.0.2.9",
        port: 22,
        bytes: 5000,
      }),
    );
  burst(7, 2e6);
  newPeer(7);
  const found: AnomalyReport[] = [];
  const d = new AnomalyDetector(DEFAULT_ANOMALY_SETTINGS, (a) => found.push(a));
  replay(h, d);
  assert.deepEqual(
    found.map((a) => a.facts.kind),
    ["volume", "new_destination"],
  );
  for (const a of found) assert.ok(d.accept(a.facts.id, "test"));
  // the same again a day later (past the cooldown): accepted, so quiet
  const next = emptyHistory();
  periodic(next, r, sync, {
    from: EPOCH + WEEK + 3 * DAY,
    to: EPOCH + WEEK + 5 * DAY,
    periodMs: 120_000,
    jitter: 0.05,
    name: SYNC,
    remote: addressOf(SYNC),
    port: 443,
    bytes: 3600,
  });
  h.flows = [];
  Object.assign(h, next);
  burst(9, 2e6);
  newPeer(9);
  const before = found.length;
  replay(h, d);
  assert.equal(
    found.length,
    before,
    JSON.stringify(found.slice(before).map((a) => a.facts.summary)),
  );
  // ten times the accepted volume is not what was accepted (after the records above: an hour
  // already closed takes no late records)
  h.flows = [];
  burst(12, 2e7);
  replay(h, d);
  assert.equal(found.length, before + 1);
  assert.equal(found.at(-1)?.facts.kind, "volume");
  assert.equal(found.at(-1)?.facts.baseline.acceptedValue, found[0]?.facts.value);
});

test("nothing is reported while an identity is being learned", () => {
  const found: AnomalyReport[] = [];
  const d = new AnomalyDetector(DEFAULT_ANOMALY_SETTINGS, (a) => found.push(a));
  const h = emptyHistory();
  // its first hours: new destinations, bursts and a regular series, all its baseline
  for (let i = 0; i < 200; i++)
    h.flows.push(
      flow({
        timeMs: EPOCH + i * 60_000,
        process: python,
        remote: `192.0.2.${i % 50}`,
        port: 443,
        bytes: i * 1e5,
      }),
    );
  for (let i = 0; i < 60; i++)
    h.queries.push(dnsQuery(EPOCH + i * 1000, python, `x${i}q7k2m9z4v8.example.com`, "NXDOMAIN"));
  replay(h, d);
  assert.deepEqual(found, []);
});

test("DNS: many random-looking names under one domain, and an NXDOMAIN burst, are flagged", () => {
  const r = rng(5);
  const h = emptyHistory();
  // a week of ordinary lookups, now and then a typo
  for (let t = EPOCH; t < EPOCH + WEEK; t += uniform(r, 1, 10) * MINUTE) {
    h.queries.push(dnsQuery(t, python, "pypi.org"));
    if (r() < 0.05) h.queries.push(dnsQuery(t + 1, python, "pypi.ogr", "NXDOMAIN"));
  }
  const at = EPOCH + WEEK + HOUR;
  const label = () =>
    Array.from({ length: 26 }, () => "abcdefghijklmnopqrstuvwxyz234567"[Math.floor(r() * 32)]).join(
      "",
    );
  for (let i = 0; i < 30; i++)
    h.queries.push(dnsQuery(at + i * 5000, python, `${label()}.t.exfil.example`));
  for (let i = 0; i < 40; i++)
    h.queries.push(
      dnsQuery(at + HOUR + i * 3000, python, `${label().slice(0, 12)}.com`, "NXDOMAIN"),
    );
  const found: AnomalyReport[] = [];
  replay(h, new AnomalyDetector(DEFAULT_ANOMALY_SETTINGS, (a) => found.push(a)));
  assert.deepEqual(
    found.map((a) => [a.facts.kind, a.facts.key]),
    [
      ["dns_entropy", "exfil.example"],
      ["dns_nxdomain", "nxdomain"],
    ],
  );
  assert.equal(found[1]?.facts.baseline.median, 0);
  assert.equal(found[0]?.query?.dns?.query.endsWith(".t.exfil.example"), true);
});

test("the building blocks: beacon score, random-looking names, registrable domains, prefixes, log z", () => {
  const steady = Array.from({ length: 40 }, (_, i) => i * 60_000);
  assert.ok(
    beaconScore(
      steady,
      steady.map(() => 500),
    ).score > 0.95,
  );
  const r = rng(6);
  let t = 0;
  const human = Array.from({ length: 40 }, () => (t += -Math.log(1 - r()) * 60_000));
  assert.ok(
    beaconScore(
      human,
      human.map(() => 1000 * Math.exp(2 * r())),
    ).score < 0.6,
  );
  // connections opened together (a pool of 6) at irregular times: no interval, so no beacon
  t = 0;
  const pools = Array.from({ length: 7 }, () => (t += (10 + 40 * r()) * 60_000)).flatMap((at) =>
    [0, 2, 3, 5, 8, 9].map((ms) => at + ms),
  );
  const pooled = beaconScore(
    pools,
    pools.map(() => 5000),
  );
  assert.ok(
    pooled.score < DEFAULT_ANOMALY_SETTINGS.beaconScore,
    `pooled connections score ${pooled.score.toFixed(2)}`,
  );
  // nor a pool of 18 followed by three contacts an hour apart: mostly no intervals
  const afterPool = [
    ...Array.from({ length: 18 }, (_, i) => i * 5),
    ...[1, 2, 3].map((h) => 85 + h * 3_600_000),
  ];
  assert.ok(
    beaconScore(
      afterPool,
      afterPool.map(() => 500),
    ).score < 0.5,
  );
  // a beacon opening two connections at each check-in is still one
  const pairs = steady.flatMap((at) => [at, at + 40]);
  assert.ok(
    beaconScore(
      pairs,
      pairs.map(() => 500),
    ).score > 0.95,
  );
  assert.equal(randomLooking("mzxw6ytboi3dkmrqgq4tmnzy.t.example.com"), true);
  assert.equal(randomLooking("r3---sn-4g5e6nzz.googlevideo.com"), false);
  assert.equal(randomLooking("d3c33hcgiwev3.cloudfront.net"), false);
  assert.equal(randomLooking("www.example.com"), false);
  assert.equal(registrableDomain("a.b.example.co.uk"), "example.co.uk");
  assert.equal(registrableDomain("Api.GitHub.com."), "github.com");
  assert.equal(registrableDomain("user.github.io"), "user.github.io");
  assert.equal(prefixOf("203.0.113.9"), "203.0.113.0/24");
  assert.equal(prefixOf("2001:db8::1"), "2001:db8:0::/48");
  const b = logBaseline([100, 110, 90, 105, 95], 0.3);
  assert.ok(logZ(b, 100) < 0.1 && logZ(b, 10_000) > 10);
});
