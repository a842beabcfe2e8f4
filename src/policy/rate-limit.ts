// Rate limits (docs/policy.md, "rate_limit"): what a rule's limit means, in words and as numbers.
// `LimitMeter` is the reference model of the four algorithms: the kernel (bpf/include/ratelimit.h)
// keeps the same state with the same integer arithmetic, and the property test runs both on the
// same packets and times. A limit depends on the packets before, so the evaluator does not judge
// it per connection: it says the limit that applies.
import type { RateLimit } from "../config/model.ts";

const NSEC = 1_000_000_000n;

const ALGORITHM_WORDS: Record<RateLimit["algorithm"], string> = {
  token_bucket: "token bucket",
  fixed_window: "fixed window",
  sliding_window: "sliding window",
  leaky_bucket: "leaky bucket",
};

/** "100/s per source (token bucket, burst 100); over it: dropped". */
export function describeRateLimit(l: RateLimit, mode: "detect" | "prevent"): string {
  const whole = l.prefix4 === 32 && l.prefix6 === 128;
  const per = whole ? "per source address" : `per source /${l.prefix4} (IPv6 /${l.prefix6})`;
  const port = l.perPort ? " and server port" : "";
  const bucket =
    l.algorithm === "token_bucket" || l.algorithm === "leaky_bucket" ? `, burst ${l.burst}` : "";
  const over = mode === "prevent" ? "dropped" : "reported, not dropped (detect)";
  return `${l.text} ${per}${port} (${ALGORITHM_WORDS[l.algorithm]}${bucket}); over it: ${over}`;
}

/** The kernel's numbers of a limit (struct moat_limit), nanoseconds as bigint. */
export interface LimitParams {
  algorithm: RateLimit["algorithm"];
  count: number;
  burst: number;
  periodNs: bigint;
  /** Buckets: the time an empty bucket takes to fill, rounded up. */
  fillNs: bigint;
  reportNs: bigint;
}

export function limitParams(l: RateLimit): LimitParams {
  const periodNs = BigInt(l.periodSeconds) * NSEC;
  const full = BigInt(l.burst) * periodNs;
  const count = BigInt(l.count);
  return {
    algorithm: l.algorithm,
    count: l.count,
    burst: l.burst,
    periodNs,
    fillNs: (full + count - 1n) / count,
    reportNs: BigInt(l.reportSeconds) * NSEC,
  };
}

/**
 * A limit's id: the same while the rule's name and limit are the same, so a reload that leaves
 * them alone keeps every source's state (FNV-1a of both; never 0, which means "no limit").
 */
export function limitId(ruleName: string, l: RateLimit): number {
  const text = [
    ruleName,
    l.algorithm,
    l.count,
    l.periodSeconds,
    l.burst,
    l.prefix4,
    l.prefix6,
    l.perPort,
  ].join("|");
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h || 1;
}

/**
 * One source's shared state under one limit, as the kernel keeps it: token bucket `a` = credit,
 * leaky bucket `a` = level (both in ns * count units: one packet is periodNs), `t` = last update;
 * windows: `a` = packets in window `t`, `b` = packets in window t - 1.
 */
export class LimitMeter {
  private a = 0n;
  private b = 0n;
  private t = 0n;
  private readonly p: LimitParams;

  /** `firstNs`: the time of the source's first packet (a token bucket starts full then). */
  constructor(p: LimitParams, firstNs: bigint) {
    this.p = p;
    if (p.algorithm === "token_bucket") {
      this.a = BigInt(p.burst) * p.periodNs;
      this.t = firstNs;
    }
  }

  /** Whether a packet at `now` (ns) is within the limit; takes its share if it is. */
  admit(now: bigint): boolean {
    return this.grant(now, 1n).granted === 1n;
  }

  /**
   * Up to `want` packets within the limit at `now`; none when over it, with `retry` the earliest
   * time one could be within (only time refills the state).
   */
  grant(now: bigint, want: bigint): { granted: bigint; retry: bigint } {
    const { periodNs: period } = this.p;
    const count = BigInt(this.p.count);
    const full = BigInt(this.p.burst) * period;
    const elapsed = now > this.t ? now - this.t : 0n;
    const min = (n: bigint) => (n > want ? want : n);
    switch (this.p.algorithm) {
      case "token_bucket": {
        if (now > this.t) this.t = now;
        this.a =
          elapsed >= this.p.fillNs || this.a + elapsed * count > full
            ? full
            : this.a + elapsed * count;
        const n = min(this.a / period);
        if (n === 0n) return { granted: 0n, retry: now + (period - this.a + count - 1n) / count };
        this.a -= n * period;
        return { granted: n, retry: 0n };
      }
      case "leaky_bucket": {
        if (now > this.t) this.t = now;
        const drained = elapsed * count;
        this.a = elapsed >= this.p.fillNs || this.a < drained ? 0n : this.a - drained;
        const n = min(this.a < full ? (full - this.a) / period : 0n);
        if (n === 0n)
          return { granted: 0n, retry: now + (this.a + period - full + count - 1n) / count };
        this.a += n * period;
        return { granted: n, retry: 0n };
      }
      case "fixed_window": {
        const win = now / period;
        if (win !== this.t) {
          this.t = win;
          this.a = 0n;
        }
        const n = min(count > this.a ? count - this.a : 0n);
        if (n === 0n) return { granted: 0n, retry: (win + 1n) * period };
        this.a += n;
        return { granted: n, retry: 0n };
      }
      case "sliding_window": {
        const win = now / period;
        const off = now - win * period;
        if (win !== this.t) {
          this.b = win === this.t + 1n ? this.a : 0n;
          this.a = 0n;
          this.t = win;
        }
        const x = this.b * (period - off);
        const room = count * period > x ? (count * period - x) / period : 0n;
        const n = min(room > this.a ? room - this.a : 0n);
        if (n === 0n) {
          // the previous window's weight falls by b per ns; a new window at the latest
          const need = x + (this.a + 1n) * period - count * period;
          const wait = this.b ? (need + this.b - 1n) / this.b : period;
          return {
            granted: 0n,
            retry: this.b && wait < period - off ? now + wait : (win + 1n) * period,
          };
        }
        this.a += n;
        return { granted: n, retry: 0n };
      }
    }
  }
}

/** How many packets a CPU takes at once (struct moat_limit.lease), and how long a lease lasts. */
export interface Lease {
  packets: number;
  /** Buckets: how long the credit lasts (windows: a lease ends with its window). */
  ns: bigint;
}

/**
 * The shortest life of a bucket's lease. Its credit was taken from the shared state when the
 * bucket had it, so keeping it longer admits nothing more (the bound below holds at any moment);
 * a short life only threw credit away and sent a source that comes back every few milliseconds
 * to the shared state (its hash and its lock) on every packet.
 */
export const LEASE_MIN_NS = 1_000_000_000n;

/**
 * A limit's lease on a host with `cpus` CPUs: a quarter of the burst (windows: of the count)
 * shared out among them, at most 64, at least 1 (then every packet asks the shared state), unless
 * `forced`. A bucket's lease lasts the time its packets take to refill, at least LEASE_MIN_NS.
 * The error this allows is at most cpus * (packets - 1) packets (docs/policy.md).
 */
export function leaseFor(p: LimitParams, cpus: number, forced?: number): Lease {
  const size =
    p.algorithm === "fixed_window" || p.algorithm === "sliding_window" ? p.count : p.burst;
  const packets = forced ?? Math.max(1, Math.min(64, Math.floor(size / (4 * Math.max(1, cpus)))));
  const refill = (BigInt(packets) * p.periodNs + BigInt(p.count) - 1n) / BigInt(p.count);
  return { packets, ns: refill > LEASE_MIN_NS ? refill : LEASE_MIN_NS };
}

/**
 * A connection's share of its source's lease (the kernel keeps it in the connection's conntrack
 * entry): the packets it has sent, and the credit a lease handed it, until a time.
 */
export interface LimitConnection {
  sent: number;
  credit: bigint;
  until: bigint;
}

/**
 * A connection takes credit from its CPU's lease once it has sent this many, this many at most
 * (MOAT_LIMIT_CT_CHUNK of the kernel's enum moat_abi_const).
 */
export const LIMIT_CONNECTION_CHUNK = 32;

export const newLimitConnection = (): LimitConnection => ({ sent: 0, credit: 0n, until: 0n });

/**
 * One source under one limit on one CPU, with its reports, as the kernel's limit_over() handles
 * it: the CPU's lease (credit until a time, or a denial until the earliest time the shared state
 * could admit), the shared state, and a report of the packets over when the source's previous
 * report is `reportNs` old (or there is none). A packet's connection, when given, passes on
 * credit the lease handed it, and is handed some when it has sent LIMIT_CONNECTION_CHUNK.
 */
export class LimitSourceModel {
  private readonly meter: LimitMeter;
  private readonly p: LimitParams;
  private readonly lease: Lease;
  private reportedNs = 0n;
  private sharedOver = 0n;
  private leased = false;
  private credit = 0n;
  private until = 0n;
  private deniedUntil = 0n;
  private reportAfter = 0n;
  private localOver = 0n;

  constructor(p: LimitParams, firstNs: bigint, lease: Lease = { packets: 1, ns: 0n }) {
    this.p = p;
    this.lease = lease;
    this.meter = new LimitMeter(p, firstNs);
  }

  packet(now: bigint, conn?: LimitConnection): { within: boolean; report?: number } {
    if (conn) {
      conn.sent++;
      if (conn.credit > 0n && now < conn.until) {
        conn.credit -= 1n;
        return { within: true };
      }
    }
    if (this.leased) {
      if (this.credit > 0n && now < this.until) {
        this.credit -= 1n;
        this.handOver(conn, now);
        return { within: true };
      }
      if (now < this.deniedUntil && now < this.reportAfter) {
        this.localOver += 1n;
        return { within: false };
      }
    }
    const want = BigInt(Math.max(1, this.lease.packets));
    const { granted, retry } = this.meter.grant(now, want);
    this.sharedOver += this.localOver;
    let report: number | undefined;
    if (granted === 0n) {
      this.sharedOver += 1n;
      if (this.reportedNs === 0n || now - this.reportedNs >= this.p.reportNs) {
        report = Number(this.sharedOver);
        this.sharedOver = 0n;
        this.reportedNs = now;
      }
    }
    this.leased = true;
    this.credit = granted > 0n ? granted - 1n : 0n;
    const windowed = this.p.algorithm === "fixed_window" || this.p.algorithm === "sliding_window";
    this.until = windowed ? (now / this.p.periodNs + 1n) * this.p.periodNs : now + this.lease.ns;
    this.deniedUntil = granted > 0n ? 0n : retry;
    this.reportAfter = this.reportedNs ? this.reportedNs + this.p.reportNs : 0n;
    this.localOver = 0n;
    this.handOver(conn, now);
    return report === undefined ? { within: granted > 0n } : { within: false, report };
  }

  private handOver(conn: LimitConnection | undefined, now: bigint): void {
    if (!conn || conn.sent < LIMIT_CONNECTION_CHUNK || this.credit === 0n || this.until <= now)
      return;
    const chunk = BigInt(LIMIT_CONNECTION_CHUNK);
    const n = this.credit < chunk ? this.credit : chunk;
    conn.credit = n;
    conn.until = this.until;
    this.credit -= n;
  }
}

/** The source key text of an address under a limit: the address masked to the limit's prefix. */
export function limitSource(l: RateLimit, bytes: Uint8Array, family: 4 | 6): Uint8Array {
  const out = Uint8Array.from(bytes);
  const bits = family === 4 ? l.prefix4 : l.prefix6;
  for (let i = 0; i < out.length; i++) {
    const lo = i * 8;
    if (bits <= lo) out[i] = 0;
    else if (bits < lo + 8) out[i] = out[i]! & (0xff << (8 - (bits - lo)));
  }
  return out;
}
