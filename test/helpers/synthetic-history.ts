// Synthetic flow history for the anomaly detectors: a week (or any span) of flow records and DNS
// queries for a few identities, generated from a seed with injected timestamps, so a week
// replays in well under a second. Benign traffic: a person's browser (working hours, many sites,
// heavy-tailed gaps and sizes), an NTP client, a package-update timer, a Prometheus server
// scraping every 15 s, a client re-connecting every 30 s (keep-alive), a web server's clients.
// Attacks are added on top by the scenario functions.
import type { ProcessFacts } from "../../src/attribution/types.ts";
import type { MoatEvent } from "../../src/datapath/event.ts";
import type { FlowConnection, FlowRecord } from "../../src/observe/flows/record.ts";

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;
/** Monday 2026-11-02 00:00 UTC: where synthetic weeks start. */
export const EPOCH = Date.UTC(2026, 10, 2);

/** A seeded generator (mulberry32): the same seed, the same history. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Rand = () => number;
export const uniform = (r: Rand, lo: number, hi: number): number => lo + (hi - lo) * r();
export const exponential = (r: Rand, mean: number): number => -Math.log(1 - r()) * mean;
export function normal(r: Rand): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}
export const logNormal = (r: Rand, median: number, sigma: number): number =>
  median * Math.exp(sigma * normal(r));

export function processOf(path: string, user = 1000, cgroup = "/user.slice"): ProcessFacts {
  const name = path.split("/").pop()?.slice(0, 15) ?? path;
  return { pid: 1000 + path.length, name, path, user, cgroup, container: null };
}

export interface FlowSpec {
  timeMs: number;
  process: ProcessFacts;
  remote: string;
  name?: string;
  port: number;
  protocol?: "tcp" | "udp";
  bytes: number;
  durationMs?: number;
  direction?: "egress" | "ingress";
}

/** One short connection as its close record. */
export function flow(s: FlowSpec): FlowRecord {
  const egress = (s.direction ?? "egress") === "egress";
  const connection: FlowConnection = {
    mode: "detect",
    rule: "default",
    direction: s.direction ?? "egress",
    protocol: s.protocol ?? "tcp",
    local: { ip: "10.0.0.2", port: egress ? 40000 : s.port },
    remote: {
      ip: s.remote,
      port: egress ? s.port : 40000,
      ...(s.name ? { names: [s.name] } : {}),
    },
    interface: "eth0",
    process: s.process,
    verdict: "allowed",
    hook: "tc",
    generation: 1,
  };
  const durationMs = s.durationMs ?? 200;
  return {
    timeMs: Math.round(s.timeMs + durationMs),
    connection,
    packets: Math.max(2, Math.round(s.bytes / 1000)),
    bytes: Math.round(s.bytes),
    durationMs,
    first: true,
    end: "fin",
  };
}

export function dnsQuery(
  timeMs: number,
  process: ProcessFacts,
  query: string,
  rcode = "NOERROR",
): MoatEvent {
  return {
    time: new Date(timeMs).toISOString(),
    type: "dns",
    mode: "detect",
    rule: "default",
    direction: "egress",
    protocol: "udp",
    local: { ip: "10.0.0.2", port: 53000 },
    remote: { ip: "10.0.0.53", port: 53 },
    interface: null,
    process,
    layer7: null,
    connection: null,
    reason: "new",
    verdict: "allowed",
    hook: "dns_proxy",
    generation: 1,
    dns: { query, qtype: "A", rcode, answers: [], trusted: true },
  };
}

/** What a generator adds: flow records and DNS query events, in any order. */
export interface History {
  flows: FlowRecord[];
  queries: MoatEvent[];
}

export const emptyHistory = (): History => ({ flows: [], queries: [] });

const SITES = Array.from({ length: 400 }, (_, i) => `site${i}.example${i % 37}.com`);

/** An address for a name, stable across the history. */
export function addressOf(name: string): string {
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `198.${18 + (h % 2)}.${(h >>> 8) % 256}.${1 + ((h >>> 16) % 250)}`;
}

/**
 * A person's browser: on weekdays 8-18 h, sessions of page loads to popular sites (Zipf-like),
 * each load several connections; heavy-tailed gaps and sizes; now and then a site never visited.
 */
export function browser(h: History, r: Rand, p: ProcessFacts, from: number, to: number): void {
  for (let day = from - (from % DAY); day < to; day += DAY) {
    const weekday = new Date(day).getUTCDay();
    if (weekday === 0 || weekday === 6) continue;
    let t = day + 8 * HOUR + uniform(r, 0, HOUR);
    while (t < day + 18 * HOUR && t < to) {
      if (t >= from) {
        const site =
          r() < 0.05
            ? `new${Math.floor(r() * 1e9)}.example-${Math.floor(r() * 1e6)}.org`
            : zipf(r, SITES);
        const n = 1 + Math.floor(exponential(r, 4));
        for (let i = 0; i < n; i++) {
          const at = t + exponential(r, 800);
          const name = i === 0 ? site : `cdn${i % 3}.${site.split(".").slice(-2).join(".")}`;
          h.flows.push(
            flow({
              timeMs: at,
              process: p,
              remote: addressOf(name),
              name,
              port: 443,
              bytes: logNormal(r, 40_000, 1.5),
              durationMs: exponential(r, 3000),
            }),
          );
          h.queries.push(dnsQuery(at - 20, p, name));
        }
      }
      t += exponential(r, 90_000);
    }
  }
}

function zipf<T>(r: Rand, items: readonly T[]): T {
  const i = Math.min(items.length - 1, Math.floor(Math.pow(items.length, r()) - 1));
  return items[i] as T;
}

/** A service that connects every `periodMs` (± jitter) with steady sizes: benign when it always did. */
export function periodic(
  h: History,
  r: Rand,
  p: ProcessFacts,
  o: {
    from: number;
    to: number;
    periodMs: number;
    jitter: number;
    name?: string;
    remote: string;
    port: number;
    protocol?: "tcp" | "udp";
    bytes: number;
    sizeSigma?: number;
  },
): void {
  let t = o.from + uniform(r, 0, o.periodMs);
  while (t < o.to) {
    h.flows.push(
      flow({
        timeMs: t,
        process: p,
        remote: o.remote,
        ...(o.name ? { name: o.name } : {}),
        port: o.port,
        protocol: o.protocol ?? "tcp",
        bytes: logNormal(r, o.bytes, o.sizeSigma ?? 0.05),
        durationMs: 50,
      }),
    );
    t += o.periodMs * (1 + uniform(r, -o.jitter, o.jitter));
  }
}

/** A host's usual identities and what they do between `from` and `to`. */
export const IDENTITIES = {
  browser: processOf("/usr/lib/firefox/firefox"),
  ntp: processOf("/usr/sbin/chronyd", 101, "/system.slice/chrony.service"),
  apt: processOf("/usr/lib/apt/methods/https", 42, "/system.slice/apt-daily.service"),
  prometheus: processOf("/usr/bin/prometheus", 110, "/system.slice/prometheus.service"),
  agent: processOf("/usr/bin/sync-agent", 1000, "/user.slice/sync.service"),
  web: processOf("/usr/sbin/nginx", 33, "/system.slice/nginx.service"),
};

export function benignHost(seed: number, from: number, to: number): History {
  const r = rng(seed);
  const h = emptyHistory();
  const id = IDENTITIES;
  browser(h, r, id.browser, from, to);
  for (const server of ["162.159.200.1", "162.159.200.123"])
    periodic(h, r, id.ntp, {
      from,
      to,
      periodMs: 1024_000,
      jitter: 0.02,
      remote: server,
      port: 123,
      protocol: "udp",
      bytes: 152,
      sizeSigma: 0,
    });
  // apt-daily: twice a day with a randomised delay of up to 12 h
  for (let t = from - (from % (12 * HOUR)); t < to; t += 12 * HOUR) {
    const at = t + uniform(r, 0, 12 * HOUR);
    if (at < from || at >= to) continue;
    for (const name of ["deb.debian.org", "security.debian.org"]) {
      h.flows.push(
        flow({
          timeMs: at,
          process: id.apt,
          remote: addressOf(name),
          name,
          port: 443,
          bytes: r() < 0.3 ? logNormal(r, 20e6, 1) : logNormal(r, 60_000, 0.3),
          durationMs: uniform(r, 500, 20_000),
        }),
      );
      h.queries.push(dnsQuery(at - 10, id.apt, name));
    }
  }
  for (const target of ["10.1.0.11", "10.1.0.12", "10.1.0.13"])
    periodic(h, r, id.prometheus, {
      from,
      to,
      periodMs: 15_000,
      jitter: 0.01,
      remote: target,
      port: 9100,
      bytes: 45_000,
      sizeSigma: 0.1,
    });
  periodic(h, r, id.agent, {
    from,
    to,
    periodMs: 30_000,
    jitter: 0.05,
    name: "sync.example.net",
    remote: addressOf("sync.example.net"),
    port: 443,
    bytes: 900,
    sizeSigma: 0.02,
  });
  // a web server's visitors (inbound)
  let t = from;
  while (t < to) {
    const hourOfDay = (t % DAY) / HOUR;
    const busy = hourOfDay > 7 && hourOfDay < 22 ? 1 : 0.2;
    t += exponential(r, 20_000 / busy);
    h.flows.push(
      flow({
        timeMs: t,
        process: id.web,
        remote: `203.0.${Math.floor(r() * 256)}.${1 + Math.floor(r() * 250)}`,
        port: 443,
        direction: "ingress",
        bytes: logNormal(r, 30_000, 1.2),
        durationMs: exponential(r, 1500),
      }),
    );
  }
  return h;
}

/** Feeds a history to `sink` in time order (flows and queries interleaved). */
export function replay(
  h: History,
  sink: { flow(r: FlowRecord): void; dns(e: MoatEvent): void },
): void {
  h.flows.sort((a, b) => a.timeMs - b.timeMs);
  const qs = h.queries.map((q) => ({ t: Date.parse(q.time), q })).sort((a, b) => a.t - b.t);
  let j = 0;
  for (const f of h.flows) {
    while (j < qs.length && (qs[j]?.t ?? 0) <= f.timeMs) sink.dns((qs[j++] as { q: MoatEvent }).q);
    sink.flow(f);
  }
  while (j < qs.length) sink.dns((qs[j++] as { q: MoatEvent }).q);
}
