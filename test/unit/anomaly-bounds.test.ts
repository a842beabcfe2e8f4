// The anomaly engine's bounds hold whatever the traffic: identities past the profile limit push
// out the least recently seen (a new identity is still watched), report times older than the
// cooldown go, the least-recently-used trims remove exactly their share when times tie, a DNS
// window holds a bounded number of domains and still sees a tunnel, and a record that arrives
// after its hour (or day) closed does not close the current one.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  AnomalyDetector,
  MAX_IDENTITIES,
  type AnomalyReport,
} from "../../src/observe/anomaly/detector.ts";
import { DEFAULT_ANOMALY_SETTINGS } from "../../src/observe/anomaly/types.ts";
import {
  newDestinationState,
  observeDestination,
} from "../../src/observe/anomaly/new-destination.ts";
import { observeBeacon, type BeaconState } from "../../src/observe/anomaly/beacon.ts";
import { seriesKeysOf } from "../../src/observe/anomaly/series-key.ts";
import { dnsState, MAX_DNS_DOMAINS, observeDns } from "../../src/observe/anomaly/dns-oddities.ts";
import { observeVolume, volumeState } from "../../src/observe/anomaly/volume.ts";
import type { FlowRecord } from "../../src/observe/flows/record.ts";
import type { Observation } from "../../src/observe/anomaly/finding.ts";
import type { MoatEvent } from "../../src/datapath/event.ts";

const T0 = Date.parse("2026-11-01T00:00:00Z");
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

const proc = (cgroup: string, path = "/usr/bin/agent") => ({
  pid: 1,
  name: path.slice(path.lastIndexOf("/") + 1),
  path,
  user: 0,
  cgroup,
  container: null,
});

const record = (timeMs: number, ip: string, port: number, process: unknown): FlowRecord =>
  ({
    timeMs,
    connection: {
      mode: "detect",
      rule: "default",
      direction: "egress",
      protocol: "tcp",
      local: { ip: "10.0.0.2", port: 40000 },
      remote: { ip, port },
      interface: null,
      process,
      verdict: "allowed",
      hook: "connect",
      generation: 1,
    },
    packets: 2,
    bytes: 100,
    durationMs: 10,
    first: true,
    end: "fin",
  }) as unknown as FlowRecord;

const observation = (timeMs: number, ip: string, port = 443): Observation => ({
  timeMs,
  first: true,
  ended: true,
  egress: true,
  destination: "",
  remote: ip,
  name: undefined,
  port,
  protocol: "tcp",
  bytes: 100,
  durationMs: 10,
});

const query = (timeMs: number, name: string, process: unknown): MoatEvent =>
  ({
    time: new Date(timeMs).toISOString(),
    type: "dns",
    process,
    remote: { ip: "10.0.0.53", port: 53 },
    dns: { query: name, rcode: "NOERROR" },
  }) as unknown as MoatEvent;

test("anomaly: past the identity limit the least recently seen go, a new identity is watched", () => {
  const reports: AnomalyReport[] = [];
  const d = new AnomalyDetector(DEFAULT_ANOMALY_SETTINGS, (r) => reports.push(r));
  // short-lived cgroups, one record each
  for (let i = 0; i < MAX_IDENTITIES; i++)
    d.flow(record(T0 + i, "10.0.0.9", 443, proc(`/user.slice/session-${i}.scope`)));
  const implant = proc("/user.slice/session-x.scope", "/tmp/implant");
  for (let day = 0; day < 10; day++) d.flow(record(T0 + day * DAY, "10.0.0.9", 443, implant));
  for (let i = 0; i < 20; i++)
    d.flow(record(T0 + 10 * DAY + i * MINUTE, `203.0.${i}.1`, 4444, implant));
  assert.ok(d.profiles.size <= MAX_IDENTITIES);
  assert.ok(
    [...d.profiles.values()].some((p) => p.identity.exe === "/tmp/implant"),
    "the new identity is profiled",
  );
  assert.ok(
    reports.some((r) => r.facts.identity.exe === "/tmp/implant"),
    "and reported once learned",
  );
});

test("anomaly: report times older than the cooldown are forgotten", () => {
  const d = new AnomalyDetector(DEFAULT_ANOMALY_SETTINGS, () => {});
  const p = proc("/system.slice/x.service");
  d.flow(record(T0, "10.0.0.9", 443, p));
  // one tunnelling-looking domain an hour for 10 days: each an anomaly
  let t = T0 + 2 * DAY;
  for (let i = 0; i < 240; i++) {
    for (let k = 0; k < 10; k++) d.dns(query(t + k, `a8f3k2j9x${k}q7w1e5r${i}.example${i}.com`, p));
    t += HOUR;
  }
  assert.ok(d.recent.length >= 200, `${d.recent.length} reported`);
  // a day's worth of them is within the cooldown
  assert.ok(d.reportedAt.size <= 25, `${d.reportedAt.size} kept`);
});

test("anomaly: the least-recently-used trims remove exactly their share when times tie", () => {
  const s = newDestinationState();
  for (let i = 0; i < 10_000; i++) {
    const ip = `10.${(i >> 8) & 255}.${i & 255}.1`;
    // a scan's records share a timestamp
    observeDestination(s, observation(T0, ip), seriesKeysOf({ ip }, "tcp", 443), 14 * DAY, true);
  }
  assert.ok(s.known.size <= 4096, `${s.known.size} destinations`);
  const beacons: BeaconState = new Map();
  for (let i = 0; i < 5000; i++) {
    const ip = `10.${(i >> 8) & 255}.${i & 255}.7`;
    observeBeacon(beacons, observation(T0, ip), seriesKeysOf({ ip }, "tcp", 443), {
      score: 0.8,
      minConnections: 20,
      learnedAt: 0,
    });
  }
  assert.ok(beacons.size <= 1024, `${beacons.size} series`);
});

test("anomaly: a DNS window holds a bounded number of domains and still sees a tunnel", () => {
  const s = dnsState();
  const limits = { windowMs: 10 * MINUTE, names: 10, nxdomains: 20, minWindows: 6 };
  const t = T0 + 5 * MINUTE;
  for (let i = 0; i < 20_000; i++)
    observeDns(
      s,
      { timeMs: t, name: `a8f3k2j9xq7w1e5r${i}.zz${i}.net`, rcode: "NOERROR", server: "" },
      limits,
    );
  assert.ok(s.random.size <= MAX_DNS_DOMAINS, `${s.random.size} domains`);
  const found = [];
  for (let k = 0; k < 10; k++)
    found.push(
      ...observeDns(
        s,
        { timeMs: t, name: `q7w1e5ra8f3k2j9x${k}.tunnel.net`, rcode: "NOERROR", server: "" },
        limits,
      ),
    );
  assert.deepEqual(
    found.map((f) => [f.kind, f.key]),
    [["dns_entropy", "tunnel.net"]],
  );
  // past the threshold a domain's names tell nothing more: a window keeps no more of them
  for (let k = 0; k < 300; k++)
    observeDns(
      s,
      { timeMs: t, name: `q7w1e5ra8f3k2j9x${k}.tunnel.net`, rcode: "NOERROR", server: "" },
      limits,
    );
  assert.equal(s.random.get("tunnel.net")?.size, limits.names);
});

test("anomaly: a DNS window filled with decoy domains of two names each still sees a tunnel", () => {
  const s = dnsState();
  const limits = { windowMs: 10 * MINUTE, names: 10, nxdomains: 20, minWindows: 6 };
  const t = T0 + 5 * MINUTE;
  const ask = (name: string) =>
    observeDns(s, { timeMs: t, name, rcode: "NOERROR", server: "" }, limits);
  // every slot taken by a domain with more than one name, under the threshold
  for (let i = 0; i < MAX_DNS_DOMAINS; i++)
    for (const k of [1, 2]) ask(`a8f3k2j9xq7w1e5r${k}.zz${i}.net`);
  const found = [];
  for (let k = 0; k < 10; k++) found.push(...ask(`q7w1e5ra8f3k2j9x${k}.tunnel.net`));
  assert.deepEqual(
    found.map((f) => [f.kind, f.key]),
    [["dns_entropy", "tunnel.net"]],
  );
  assert.ok(s.random.size <= MAX_DNS_DOMAINS, `${s.random.size} domains`);
});

test("anomaly: DNS windows' names are bounded over all identities together", () => {
  // lowered bound: the default needs about a million random names in one window to reach
  const d = new AnomalyDetector({ ...DEFAULT_ANOMALY_SETTINGS, detectors: ["dns"] }, () => {}, {
    series: 4096,
    destinations: 2048,
    dnsNames: 4096,
  });
  for (let id = 0; id < 16; id++) {
    const p = proc(`/user.slice/run-${id}.scope`, "/tmp/spray");
    for (let i = 0; i < 512; i++)
      for (const k of [1, 2]) d.dns(query(T0 + i, `a8f3k2j9xq7w1e5r${k}.zz${i}.net`, p));
  }
  let names = 0;
  for (const p of d.profiles.values()) for (const n of p.dns.random.values()) names += n.size;
  assert.ok(names <= 4096, `${names} names`);
});

test("anomaly: a record after its hour closed does not close the current one", () => {
  const s = volumeState();
  const limits = { z: 5, minHours: 24, minDays: 5 };
  for (let h = 0; h < 48; h++)
    for (let i = 0; i < 100; i++)
      observeVolume(s, observation(T0 + h * HOUR + i * 30_000, "10.0.0.9"), limits);
  assert.equal(s.hours.length, 47);
  // records 1 ms either side of an hour's start, interleaved (a close stamped with the kernel's
  // time handled after a later scan record)
  const b = T0 + 49 * HOUR;
  for (let i = 0; i < 20; i++)
    observeVolume(s, observation(i % 2 ? b + 1 : b - 1, "10.0.0.9"), limits);
  // hour 47 closed by the first, hour 48 by the second; none after
  assert.equal(s.hours.length, 49);
  assert.equal(s.hour?.start, b);
  assert.equal(s.hour?.connections, 10);
  // a day is not closed going backwards either
  const day = T0 + 3 * DAY;
  observeVolume(s, observation(day + 1, "10.0.0.9"), limits);
  const days = s.days.length;
  observeVolume(s, observation(day - 1, "10.0.0.9"), limits);
  observeVolume(s, observation(day + 2, "10.0.0.9"), limits);
  assert.equal(s.days.length, days);
  assert.equal(s.day?.start, day);
});

test("anomaly: after the clock is set back, a burst is still reported", () => {
  const reports: AnomalyReport[] = [];
  const d = new AnomalyDetector(DEFAULT_ANOMALY_SETTINGS, (r) => reports.push(r));
  const p = proc("/system.slice/sync.service");
  // 100 connections an hour, then 1000 more in half an hour
  const usual = (from: number, hours: number) => {
    for (let i = 0; i < hours * 100; i++) d.flow(record(from + i * 36_000, "10.0.0.9", 443, p));
  };
  const burst = (from: number) => {
    for (let i = 0; i < 1000; i++) d.flow(record(from + i * 1800, "10.0.0.9", 443, p));
  };
  // an identity first seen just before the clock is corrected
  const q = proc("/system.slice/new.service", "/usr/bin/new");
  usual(T0, 72);
  burst(T0 + 72 * HOUR);
  d.flow(record(T0 + 72 * HOUR, "10.0.0.9", 443, q));
  // the clock is set back a day and a half (a wrong clock corrected): the same again
  usual(T0 + 36 * HOUR, 2);
  burst(T0 + 38 * HOUR);
  // learned a day after it was first seen, not a day after the time the clock showed then
  d.flow(record(T0 + 36 * HOUR, "10.0.0.9", 443, q));
  d.flow(record(T0 + 61 * HOUR, "198.51.100.7", 22, q));
  assert.deepEqual(
    reports.filter((r) => r.facts.identity.exe === "/usr/bin/new").map((r) => r.facts.key),
    ["198.51.100.0/24 tcp/22"],
  );
  const burstOf = (r: AnomalyReport) =>
    Date.parse(r.time) >= T0 + 72 * HOUR ? "first burst" : "after the clock was set back";
  assert.deepEqual(
    reports.filter((r) => r.facts.kind === "volume").map((r) => [burstOf(r), r.facts.key]),
    [
      ["first burst", "connections/hour"],
      ["after the clock was set back", "connections/hour"],
    ],
  );
});

test("anomaly: beacon series and destinations are bounded over all identities together", () => {
  // lowered bounds: the defaults need hundreds of thousands of records to reach
  const d = new AnomalyDetector(DEFAULT_ANOMALY_SETTINGS, () => {}, {
    series: 4096,
    destinations: 2048,
    dnsNames: 4096,
  });
  const busy = proc("/user.slice/browser.scope", "/usr/bin/browser");
  // many identities (cgroups are cheap), each to many peers of its own
  for (let id = 0; id < 16; id++) {
    const p = proc(`/user.slice/run-${id}.scope`, "/tmp/spray");
    for (let i = 0; i < 1024; i++) d.flow(record(T0 + i, `10.${id}.${i >> 2}.${i & 3}`, 443, p));
    d.flow(record(T0 + 2000, "192.0.2.80", 443, busy));
  }
  let series = 0;
  let destinations = 0;
  for (const p of d.profiles.values()) {
    series += p.beacons.size;
    destinations += p.destinations.known.size;
  }
  assert.ok(series <= 4096, `${series} series`);
  assert.ok(destinations <= 2048, `${destinations} destinations`);
  // the identities that spread widest give up theirs: the one with one peer keeps it
  const kept = [...d.profiles.values()].find((p) => p.identity.exe === "/usr/bin/browser");
  assert.equal(kept?.beacons.size, 1);
});
