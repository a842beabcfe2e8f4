// Rate limits (docs/policy.md, "Rate limits"): what a rule's limit means, in words and as numbers.
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
 * One source's state under one limit, as the kernel keeps it: token bucket `a` = credit, leaky
 * bucket `a` = level (both in ns * count units: one packet is periodNs), `t` = last update;
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
    const { periodNs, count: c, burst } = this.p;
    const count = BigInt(c);
    const full = BigInt(burst) * periodNs;
    const elapsed = now > this.t ? now - this.t : 0n;
    switch (this.p.algorithm) {
      case "token_bucket": {
        if (now > this.t) this.t = now;
        const credit = elapsed >= this.p.fillNs ? full : this.a + elapsed * count;
        this.a = credit > full ? full : credit;
        if (this.a < periodNs) return false;
        this.a -= periodNs;
        return true;
      }
      case "leaky_bucket": {
        if (now > this.t) this.t = now;
        const drained = elapsed * count;
        this.a = elapsed >= this.p.fillNs || this.a < drained ? 0n : this.a - drained;
        if (this.a + periodNs > full) return false;
        this.a += periodNs;
        return true;
      }
      case "fixed_window": {
        const win = now / periodNs;
        if (win !== this.t) {
          this.t = win;
          this.a = 0n;
        }
        if (this.a >= count) return false;
        this.a += 1n;
        return true;
      }
      case "sliding_window": {
        const win = now / periodNs;
        const off = now - win * periodNs;
        if (win !== this.t) {
          this.b = win === this.t + 1n ? this.a : 0n;
          this.a = 0n;
          this.t = win;
        }
        if (this.b * (periodNs - off) + (this.a + 1n) * periodNs > count * periodNs) return false;
        this.a += 1n;
        return true;
      }
    }
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

/**
 * One source under one limit with its reports: a packet's verdict, and when it is over the limit
 * and the source's previous report is `reportNs` old (or there is none), a report of the packets
 * over since then (the kernel's limit_over()).
 */
export class LimitSourceModel {
  private readonly meter: LimitMeter;
  private readonly p: LimitParams;
  private reportedNs = 0n;
  private over = 0;

  constructor(p: LimitParams, firstNs: bigint) {
    this.p = p;
    this.meter = new LimitMeter(p, firstNs);
  }

  packet(now: bigint): { within: boolean; report?: number } {
    if (this.meter.admit(now)) return { within: true };
    this.over += 1;
    if (this.reportedNs !== 0n && now - this.reportedNs < this.p.reportNs) return { within: false };
    const report = this.over;
    this.over = 0;
    this.reportedNs = now;
    return { within: false, report };
  }
}
