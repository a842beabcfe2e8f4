// The anomaly engine: keeps a profile per identity (executable, user, cgroup, container), feeds
// each flow record and DNS query to the detectors, and reports what they find unless the
// identity is still in its learning period, the same anomaly was reported within the cooldown,
// or a person accepted it as normal (docs/anomaly.md). Pure: time is the records' own, so a
// week of history replays in seconds.
import { createHash } from "node:crypto";
import type { MoatEvent } from "../../datapath/event.ts";
import {
  identityOf,
  nameOnly,
  serverPort,
  type FlowConnection,
  type FlowIdentity,
  type FlowRecord,
} from "../flows/record.ts";
import { forgetIdle, observeBeacon, type BeaconLimits, type BeaconState } from "./beacon.ts";
import { Budget, DEFAULT_BUDGET, type BudgetBounds } from "./budget.ts";
import {
  dnsNamesHeld,
  dnsState,
  forgetDnsNames,
  observeDns,
  type DnsState,
} from "./dns-oddities.ts";
import type { Finding, Observation } from "./finding.ts";
import {
  forgetOldest,
  newDestinationState,
  observeDestination,
  oldestCut,
  type NewDestinationState,
} from "./new-destination.ts";
import { destinationOf } from "./destination.ts";
import { seriesKeysOf } from "./series-key.ts";
import { observeVolume, volumeState, type VolumeLimits, type VolumeState } from "./volume.ts";
import type { AnomalyFacts, AnomalySettings, DetectorName } from "./types.ts";

/** Identities profiled; past this, the least recently seen sixteenth is forgotten. */
export const MAX_IDENTITIES = 4096;
/** Report times kept at most (those older than the cooldown go first). */
export const MAX_REPORTED = 16_384;
/** Anomalies kept for `moat anomalies`. */
export const MAX_RECENT = 1000;
/** An accepted value stands for values up to this many times it. */
export const ACCEPT_MARGIN = 1.5;
const HOUR = 3_600_000;
/** NXDOMAIN windows an identity needs before its bursts are judged. */
const MIN_DNS_WINDOWS = 6;

export interface Profile {
  identity: AnomalyIdentity;
  firstMs: number;
  lastMs: number;
  destinations: NewDestinationState;
  volume: VolumeState;
  beacons: BeaconState;
  dns: DnsState;
}

/** An anomaly as reported: its facts and the connection (or query event) it came from. */
export interface AnomalyReport {
  time: string;
  facts: AnomalyFacts;
  /** The flow that tipped it (null for DNS anomalies). */
  connection: FlowConnection | null;
  /** The query event that tipped a DNS anomaly. */
  query: MoatEvent | null;
}

/** "Accept as normal": this anomaly's value (and less) is part of the identity's baseline. */
export interface Acceptance {
  id: string;
  kind: AnomalyFacts["kind"];
  identity: AnomalyIdentity;
  key: string;
  value: number;
  /** ISO time. */
  at: string;
  by: string;
}

export interface RecentAnomaly extends AnomalyReport {
  accepted: boolean;
}

/**
 * An identity as the detectors key it: a process known by its name only (its executable unread,
 * a name any process can take, a slash included) is apart from the executable whose path reads
 * the same, so what it does never becomes that executable's usual.
 */
export interface AnomalyIdentity extends FlowIdentity {
  nameOnly?: true;
}

export const identityKey = (i: AnomalyIdentity): string =>
  `${i.exe}\u0000${i.user}\u0000${i.cgroup}\u0000${i.container}${i.nameOnly ? "\u0000name" : ""}`;

/** The identity of a connection's process, marked when it is known by its name only. */
export function anomalyIdentityOf(process: FlowConnection["process"]): AnomalyIdentity {
  const identity = identityOf({ process });
  return nameOnly({ process }) ? { ...identity, nameOnly: true } : identity;
}

export function anomalyId(kind: string, identity: AnomalyIdentity, key: string): string {
  return createHash("sha256")
    .update(`${kind}\u0000${identityKey(identity)}\u0000${key}`)
    .digest("hex")
    .slice(0, 12);
}

const beaconLimitsOf = (s: AnomalySettings): BeaconLimits => ({
  score: s.beaconScore,
  minConnections: s.minConnections,
  learnedAt: 0,
});

const detectorsOn = (s: AnomalySettings): Record<DetectorName, boolean> => ({
  new_destination: s.detectors.includes("new_destination"),
  volume: s.detectors.includes("volume"),
  beacon: s.detectors.includes("beacon"),
  dns: s.detectors.includes("dns"),
});

export class AnomalyDetector {
  #settings: AnomalySettings;
  /** Per record, read from the settings once. */
  #on: Record<DetectorName, boolean>;
  #volumeLimits: VolumeLimits;
  /** The beacon limits; the learning period's end is set per record. */
  #beaconLimits: BeaconLimits;
  readonly profiles = new Map<string, Profile>();
  readonly accepted = new Map<string, Acceptance>();
  /** id -> when last reported (ms, record time), oldest report first. */
  readonly reportedAt = new Map<string, number>();
  recent: RecentAnomaly[] = [];
  /** Profiles forgotten to make room for new identities (the least recently seen). */
  forgotten = 0;
  readonly #report: (r: AnomalyReport) => void;
  readonly #keys = new WeakMap<object, string>();
  /** Beacon series, destinations and DNS windows' names over all identities together (budget.ts). */
  readonly #series: Budget<Profile>;
  readonly #destinations: Budget<Profile>;
  readonly #dnsNames: Budget<Profile>;

  constructor(
    settings: AnomalySettings,
    report: (r: AnomalyReport) => void,
    /** Totals over all identities (tests lower them). */
    bounds: BudgetBounds = DEFAULT_BUDGET,
  ) {
    this.#series = new Budget<Profile>(
      bounds.series,
      (p) => p.beacons.size,
      (p, n) => forgetIdle(p.beacons, n),
    );
    this.#destinations = new Budget<Profile>(
      bounds.destinations,
      (p) => p.destinations.known.size,
      (p, n) => forgetOldest(p.destinations.known, n),
    );
    this.#dnsNames = new Budget<Profile>(
      bounds.dnsNames,
      (p) => dnsNamesHeld(p.dns),
      (p, n) => forgetDnsNames(p.dns, n),
    );
    this.#settings = settings;
    this.#on = detectorsOn(settings);
    this.#volumeLimits = {
      z: settings.volumeZ,
      minHours: settings.minHours,
      minDays: settings.minDays,
    };
    this.#beaconLimits = beaconLimitsOf(settings);
    this.#report = report;
  }

  get settings(): AnomalySettings {
    return this.#settings;
  }

  set settings(s: AnomalySettings) {
    this.#settings = s;
    this.#on = detectorsOn(s);
    this.#volumeLimits = { z: s.volumeZ, minHours: s.minHours, minDays: s.minDays };
    this.#beaconLimits = beaconLimitsOf(s);
  }

  /** One flow record (the flow ledger's output). */
  flow(r: FlowRecord): void {
    const c = r.connection;
    const p = this.#profile(c.process, r.timeMs);
    const egress = c.direction === "egress";
    const port = serverPort(c);
    // the series detectors look at egress connections' first records only
    const keys = egress && r.first ? seriesKeysOf(c.remote, c.protocol, port) : null;
    const o: Observation = {
      timeMs: r.timeMs,
      first: r.first,
      ended: r.end !== "open",
      egress,
      destination: keys ? keys.destination : destinationOf(c.remote),
      remote: c.remote.ip,
      name: c.remote.names?.[0],
      port,
      protocol: c.protocol,
      bytes: r.bytes,
      durationMs: r.durationMs,
    };
    const s = this.settings;
    const learnedAt = p.firstMs + s.minBaselineMs;
    const learned = r.timeMs >= learnedAt;
    const on = this.#on;
    if (on.new_destination) {
      // everything is new in an identity's first moments; after them, what is new counts
      const countNovelty = r.timeMs >= p.firstMs + Math.min(HOUR, s.minBaselineMs / 10);
      const known = p.destinations.known.size;
      const f = observeDestination(p.destinations, o, keys, s.baselineMs, countNovelty);
      this.#destinations.grew(p.destinations.known.size - known, this.profiles);
      if (f && learned) this.#found(p, f, r.timeMs, c, null);
    }
    if (on.volume) {
      const limits = this.#volumeLimits;
      for (const f of observeVolume(p.volume, o, limits))
        if (learned) this.#found(p, f, r.timeMs, c, null);
    }
    if (on.beacon) {
      const limits = this.#beaconLimits;
      limits.learnedAt = learnedAt;
      const series = p.beacons.size;
      const f = observeBeacon(p.beacons, o, keys, limits);
      this.#series.grew(p.beacons.size - series, this.profiles);
      if (f) this.#found(p, f, r.timeMs, c, null);
    }
  }

  /** A "dns" event from moat's DNS proxy. */
  dns(ev: MoatEvent): void {
    const d = ev.dns;
    if (!d || !this.#on.dns) return;
    const timeMs = Date.parse(ev.time);
    const p = this.#profile(ev.process, timeMs);
    const s = this.settings;
    const limits = {
      windowMs: s.dnsWindowMs,
      names: s.dnsNames,
      nxdomains: s.nxdomains,
      minWindows: MIN_DNS_WINDOWS,
    };
    const q = { timeMs, name: d.query, rcode: d.rcode, server: ev.remote.ip };
    const held = dnsNamesHeld(p.dns);
    const found = observeDns(p.dns, q, limits);
    this.#dnsNames.grew(dnsNamesHeld(p.dns) - held, this.profiles);
    for (const f of found)
      if (timeMs >= p.firstMs + s.minBaselineMs) this.#found(p, f, timeMs, null, ev);
  }

  /** Accepts the anomaly `id` as normal; null when no reported anomaly has that id. */
  accept(id: string, by: string, now = Date.now()): Acceptance | null {
    const found = this.recent.findLast((a) => a.facts.id === id);
    if (!found) return this.accepted.get(id) ?? null;
    const f = found.facts;
    const prev = this.accepted.get(id);
    const acceptance: Acceptance = {
      id,
      kind: f.kind,
      identity: f.identity,
      key: f.key,
      value: Math.max(prev?.value ?? 0, f.value),
      at: new Date(now).toISOString(),
      by,
    };
    this.accepted.set(id, acceptance);
    for (const a of this.recent) if (a.facts.id === id) a.accepted = true;
    return acceptance;
  }

  /** Takes an acceptance back; false when there was none. */
  unaccept(id: string): boolean {
    return this.accepted.delete(id);
  }

  #found(
    p: Profile,
    f: Finding,
    timeMs: number,
    connection: FlowConnection | null,
    query: MoatEvent | null,
  ): void {
    const id = anomalyId(f.kind, p.identity, f.key);
    const accepted = this.accepted.get(id);
    if (accepted && f.value <= accepted.value * ACCEPT_MARGIN) return;
    const last = this.reportedAt.get(id);
    // either way: after the clock was set back, a report "in the future" holds back only as long
    if (last !== undefined && Math.abs(timeMs - last) < this.settings.cooldownMs) return;
    // re-inserted, so the map stays in report order and the old ones are at its front
    this.reportedAt.delete(id);
    this.reportedAt.set(id, timeMs);
    this.#forgetReports(timeMs);
    const baseline = accepted ? { ...f.baseline, acceptedValue: accepted.value } : f.baseline;
    const facts: AnomalyFacts = { id, identity: p.identity, ...f, baseline };
    const report: AnomalyReport = {
      time: new Date(timeMs).toISOString(),
      facts,
      connection,
      query,
    };
    this.recent.push({ ...report, accepted: false });
    if (this.recent.length > MAX_RECENT) this.recent.splice(0, this.recent.length - MAX_RECENT);
    this.#report(report);
  }

  /** Drops report times past the cooldown (they no longer hold anything back), and past the cap. */
  #forgetReports(timeMs: number): void {
    const cut = timeMs - this.settings.cooldownMs;
    for (const [id, at] of this.reportedAt) {
      if (at > cut && this.reportedAt.size <= MAX_REPORTED) break;
      this.reportedAt.delete(id);
    }
  }

  /** Forgets the least recently seen sixteenth of the profiles (ties in map order). */
  #forgetProfiles(): void {
    const keys = [...this.profiles.keys()];
    const last = new Float64Array(keys.length);
    keys.forEach((k, i) => (last[i] = this.profiles.get(k)!.lastMs));
    const { cut, ties: atCut } = oldestCut(last, MAX_IDENTITIES / 16);
    let ties = atCut;
    keys.forEach((k, i) => {
      const t = last[i]!;
      if (t > cut) return;
      if (t === cut) {
        if (ties === 0) return;
        ties--;
      }
      this.profiles.delete(k);
      this.forgotten++;
    });
  }

  #profile(process: FlowConnection["process"], timeMs: number): Profile {
    // no process: the key "" (state files keep it)
    let key = "";
    if (process) {
      const known = this.#keys.get(process);
      key = known ?? identityKey(anomalyIdentityOf(process));
      if (known === undefined) this.#keys.set(process, key);
    }
    let p = this.profiles.get(key);
    if (!p) {
      if (this.profiles.size >= MAX_IDENTITIES) this.#forgetProfiles();
      p = {
        identity: anomalyIdentityOf(process),
        firstMs: timeMs,
        lastMs: timeMs,
        destinations: newDestinationState(),
        volume: volumeState(),
        beacons: new Map(),
        dns: dnsState(),
      };
      this.profiles.set(key, p);
    }
    p.lastMs = Math.max(p.lastMs, timeMs);
    // the clock set back: it is learned from now, not from a time the clock has yet to reach
    if (timeMs < p.firstMs) p.firstMs = timeMs;
    return p;
  }
}
