// DNS oddities of one identity, over short windows: many distinct random-looking names under one
// registrable domain (data carried in names: DNS tunnelling), and many NXDOMAIN answers (a
// domain-generation algorithm trying its names), the latter against the identity's own usual
// count a window. A few random names (a browser probing for a hijacking resolver) are not enough.
import { MAX_DNS_NAMES } from "../../config/anomaly-settings.ts";
import { registrableDomain } from "../registrable-domain.ts";
import { subdomainOf } from "./destination.ts";
import { entropy, median } from "./robust.ts";
import type { AnomalySample } from "./types.ts";
import type { Finding } from "./finding.ts";

/** Past windows' NXDOMAIN counts kept. */
const KEEP_WINDOWS = 1008;
/** Domains with random-looking names remembered per window. */
export const MAX_DNS_DOMAINS = 1024;
/** Names remembered per domain and window at most (the policy's `dns_names` is at most this):
 * past the threshold more names tell nothing, so a domain keeps only that many. */
const MAX_NAMES = MAX_DNS_NAMES;
/** The usual NXDOMAIN count of a window times this is the least a burst is. */
const NX_FACTOR = 10;

export interface DnsState {
  windowStart: number;
  /** domain -> distinct random-looking names in the window. */
  random: Map<string, Set<string>>;
  nx: number;
  nxNames: string[];
  /** NXDOMAIN counts of past windows with queries. */
  pastNx: number[];
  reported: string[];
}

export function dnsState(): DnsState {
  return { windowStart: 0, random: new Map(), nx: 0, nxNames: [], pastNx: [], reported: [] };
}

/** Names a state's window holds, counted beside it (not in the state file). */
const held = new WeakMap<DnsState, number>();

/** The names a state's window holds, over its domains. */
export function dnsNamesHeld(s: DnsState): number {
  let n = held.get(s);
  if (n === undefined) {
    n = 0;
    for (const names of s.random.values()) n += names.size;
    held.set(s, n);
  }
  return n;
}

/**
 * Drops the window's domains with the fewest names (ties: the earliest first) until `done`: a
 * domain that keeps gaining names, as a tunnel's does, outlasts those that do not, so decoy
 * domains of a few names each cannot keep it out of the window.
 */
function dropSmallest(s: DnsState, done: (domains: number, names: number) => boolean): void {
  const before = dnsNamesHeld(s);
  const bySize = [...s.random].sort((a, b) => a[1].size - b[1].size);
  let domains = 0;
  let names = 0;
  for (const [domain, set] of bySize) {
    if (done(domains, names)) break;
    s.random.delete(domain);
    domains++;
    names += set.size;
  }
  held.set(s, before - names);
}

/** Gives up at least `count` of the window's names, the smallest domains' first. */
export function forgetDnsNames(s: DnsState, count: number): void {
  dropSmallest(s, (_, names) => names >= count);
}

/**
 * Whether the labels below a name's registrable domain look generated: a long run of characters
 * with high entropy and digits mixed into letters, as encoded data or generated names are, and
 * as hostnames people choose (and most CDN edge names) are not.
 */
export function randomLooking(name: string): boolean {
  const sub = subdomainOf(name);
  for (const label of sub.split(".")) {
    if (label.length < 12) continue;
    const compact = label.replace(/-/g, "");
    const digits = (compact.match(/[0-9]/g) ?? []).length;
    const h = entropy(compact);
    // base32/base64/hex chunks: long, most characters distinct, digits among letters
    if (compact.length >= 12 && h >= 3.5 && digits >= 2 && digits < compact.length * 0.8)
      return true;
    if (compact.length >= 24 && h >= 4) return true;
  }
  return false;
}

export interface DnsQuery {
  timeMs: number;
  name: string;
  rcode: string;
  server: string;
}

export interface DnsLimits {
  windowMs: number;
  names: number;
  nxdomains: number;
  minWindows: number;
}

/**
 * The median of a state's past windows, kept while they stay the same: they change only when a
 * window closes, and sorting up to a week of windows for every NXDOMAIN cost ~75 µs each.
 */
const pastMedians = new WeakMap<DnsState, { of: number[]; length: number; value: number }>();

function pastNxMedian(s: DnsState): number {
  const kept = pastMedians.get(s);
  if (kept?.of === s.pastNx && kept.length === s.pastNx.length) return kept.value;
  const value = median(s.pastNx);
  pastMedians.set(s, { of: s.pastNx, length: s.pastNx.length, value });
  return value;
}

export function observeDns(s: DnsState, q: DnsQuery, limits: DnsLimits): Finding[] {
  const window = q.timeMs - (q.timeMs % limits.windowMs);
  if (window !== s.windowStart) {
    if (s.windowStart) {
      s.pastNx.push(s.nx);
      if (s.pastNx.length > KEEP_WINDOWS) s.pastNx.shift();
      pastMedians.delete(s);
    }
    s.windowStart = window;
    s.random = new Map();
    held.set(s, 0);
    s.nx = 0;
    s.nxNames = [];
    s.reported = [];
  }
  const out: Finding[] = [];
  const sample = (name: string): AnomalySample => ({
    time: new Date(q.timeMs).toISOString(),
    remote: q.server,
    name,
    port: 53,
    protocol: "udp",
    bytes: 0,
    durationMs: 0,
  });
  const domain = registrableDomain(q.name);
  if (randomLooking(q.name)) {
    let names = s.random.get(domain);
    // full: the quarter with the fewest names go
    if (!names && s.random.size >= MAX_DNS_DOMAINS)
      dropSmallest(s, (domains) => domains >= MAX_DNS_DOMAINS / 4);
    if (!names) s.random.set(domain, (names = new Set()));
    if (names.size < Math.min(limits.names, MAX_NAMES)) {
      const size = names.size;
      names.add(q.name.toLowerCase());
      held.set(s, dnsNamesHeld(s) + names.size - size);
    }
    if (names.size >= limits.names && !s.reported.includes(`entropy ${domain}`)) {
      s.reported.push(`entropy ${domain}`);
      out.push({
        kind: "dns_entropy",
        key: domain,
        summary: `${names.size} distinct random-looking names under ${domain} in ${limits.windowMs / 60_000} min (threshold ${limits.names})`,
        metric: "random-looking names under one domain in a window",
        value: names.size,
        threshold: limits.names,
        baseline: { windowMinutes: limits.windowMs / 60_000 },
        samples: [...names].slice(-5).map(sample),
      });
    }
  }
  if (q.rcode === "NXDOMAIN") {
    s.nx++;
    if (s.nxNames.length < 5) s.nxNames.push(q.name);
    const usual = s.pastNx.length >= limits.minWindows ? pastNxMedian(s) : null;
    const threshold = Math.max(limits.nxdomains, (usual ?? 0) * NX_FACTOR);
    if (usual !== null && s.nx >= threshold && !s.reported.includes("nxdomain")) {
      s.reported.push("nxdomain");
      out.push({
        kind: "dns_nxdomain",
        key: "nxdomain",
        summary: `${s.nx} NXDOMAIN answers in ${limits.windowMs / 60_000} min, usually ${usual} (threshold ${threshold})`,
        metric: "NXDOMAIN answers in a window",
        value: s.nx,
        threshold,
        baseline: {
          median: usual,
          windows: s.pastNx.length,
          windowMinutes: limits.windowMs / 60_000,
        },
        samples: s.nxNames.map(sample),
      });
    }
  }
  return out;
}
