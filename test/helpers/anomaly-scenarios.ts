// Attacks and look-alikes added to a synthetic host's day (synthetic-history.ts), for the
// anomaly detectors' evaluation (bench/anomaly-eval.ts): beacons with jitter, slow-drip and
// burst exfiltration to a destination the identity already uses, DNS tunnelling with generated
// names, a domain-generation algorithm's NXDOMAIN burst, and a browser resolving many real
// CDN-style names (a negative).
import type { ProcessFacts } from "../../src/attribution/types.ts";
import {
  addressOf,
  dnsQuery,
  flow,
  HOUR,
  MINUTE,
  periodic,
  uniform,
  type History,
  type Rand,
} from "./synthetic-history.ts";

/** A beacon every `periodMs` ± jitter (a fraction) to a new address, for `hours`. */
export function beacon(
  h: History,
  r: Rand,
  p: ProcessFacts,
  at: number,
  o: { periodMs: number; jitter: number; hours: number },
): void {
  periodic(h, r, p, {
    from: at,
    to: at + o.hours * HOUR,
    periodMs: o.periodMs,
    jitter: o.jitter,
    remote: `45.${Math.floor(uniform(r, 1, 250))}.${Math.floor(uniform(r, 1, 250))}.17`,
    port: 443,
    bytes: uniform(r, 300, 3000),
    sizeSigma: 0.1,
  });
}

/** `totalBytes` uploaded to a destination the identity already uses, over `hours`, in chunks
 * every few minutes (its own connections, so they count as connections too). */
export function drip(
  h: History,
  r: Rand,
  p: ProcessFacts,
  at: number,
  o: { name: string; totalBytes: number; hours: number; chunkEveryMs?: number },
): void {
  const every = o.chunkEveryMs ?? 10 * MINUTE;
  const chunks = Math.max(1, Math.round((o.hours * HOUR) / every));
  for (let i = 0; i < chunks; i++)
    h.flows.push(
      flow({
        timeMs: at + i * every + uniform(r, 0, every / 2),
        process: p,
        remote: addressOf(o.name),
        name: o.name,
        port: 443,
        bytes: (o.totalBytes / chunks) * uniform(r, 0.8, 1.2),
        durationMs: uniform(r, 200, 2000),
      }),
    );
}

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";
const HEX = "0123456789abcdef";
const pick = (r: Rand, alphabet: string, n: number): string =>
  Array.from({ length: n }, () => alphabet[Math.floor(r() * alphabet.length)]).join("");

export type TunnelEncoding = "base32" | "hex";

/** DNS tunnelling: `perMinute` queries of encoded data under one new domain, for `minutes`. */
export function tunnel(
  h: History,
  r: Rand,
  p: ProcessFacts,
  at: number,
  o: { encoding: TunnelEncoding; perMinute: number; minutes: number },
): void {
  const domain = `${pick(r, "abcdefghijklmnopqrstuvwxyz", 8)}.net`;
  const label = () => (o.encoding === "base32" ? pick(r, BASE32, 40) : pick(r, HEX, 32));
  for (let i = 0; i < o.perMinute * o.minutes; i++)
    h.queries.push(
      dnsQuery(at + (i / o.perMinute) * MINUTE, p, `${label()}.${pick(r, HEX, 4)}.${domain}`),
    );
}

/** A domain-generation algorithm: `count` random .com/.net names, NXDOMAIN, within minutes. */
export function dga(h: History, r: Rand, p: ProcessFacts, at: number, count: number): void {
  for (let i = 0; i < count; i++)
    h.queries.push(
      dnsQuery(
        at + i * uniform(r, 2000, 8000),
        p,
        `${pick(r, "abcdefghijklmnopqrstuvwxyz", Math.floor(uniform(r, 10, 18)))}.${r() < 0.5 ? "com" : "net"}`,
        "NXDOMAIN",
      ),
    );
}

/** Real-looking CDN and cloud names (edge hosts, load balancers, video caches, buckets). */
export function cdnName(r: Rand): string {
  const n = Math.floor(r() * 8);
  const d = () => Math.floor(r() * 10);
  switch (n) {
    case 0:
      return `${pick(r, "abcdefghijklmnopqrstuvwxyz0123456789", 13)}.cloudfront.net`;
    case 1:
      return `e${d()}${d()}${d()}${d()}.${["a", "b", "dscb", "dsca"][d() % 4]}.akamaiedge.net`;
    case 2:
      return `rr${d() + 1}---sn-${pick(r, "abcdefghijklmnopqrstuvwxyz0123456789", 8)}.googlevideo.com`;
    case 3:
      return `${["web", "api", "app"][d() % 3]}-prod-${d()}${d()}${d()}${d()}${d()}${d()}${d()}${d()}.${["us-east-1", "eu-west-1"][d() % 2]}.elb.amazonaws.com`;
    case 4:
      return `${pick(r, "abcdefghijklmnopqrstuvwxyz", 6)}-assets.s3.amazonaws.com`;
    case 5:
      return `scontent-${pick(r, "abcdefghijklmnopqrstuvwxyz", 3)}${d()}-${d()}.xx.fbcdn.net`;
    case 6:
      return `i${d()}.ytimg.com`;
    default:
      return `${pick(r, HEX, 8)}.edgekey.net`;
  }
}

/** A browser resolving `count` CDN-style names in an hour (a negative for the DNS detector). */
export function cdnBrowsing(h: History, r: Rand, p: ProcessFacts, at: number, count: number): void {
  for (let i = 0; i < count; i++) h.queries.push(dnsQuery(at + uniform(r, 0, HOUR), p, cdnName(r)));
}
