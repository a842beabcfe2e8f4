// The rate limits' state (limit_state, bpf/include/ratelimit.h): each limit's overflow bucket,
// written before a policy that has the limit goes live, and the sweep that removes the state of
// idle sources and of limits no live policy has, reporting the packets over the limit each had
// counted since its last report.
import {
  Direction,
  EventType,
  LimitKeyFlag,
  Mode,
  Reason,
  event as eventCodec,
  limitKey as keyCodec,
  limitLease as leaseCodec,
  limitState as stateCodec,
} from "./abi.ts";
import type { BpfMap, BpfObject } from "./native.d.ts";
import type { ImageLimit } from "../policy/compile/image.ts";

const BPF_NOEXIST = 1;
const ID = keyCodec.fields.id.offset;
const FLAGS = keyCodec.fields.flags.offset;
const LAST_NS = stateCodec.fields.last_ns.offset;
const REPORTED_NS = stateCodec.fields.reported_ns.offset;
const OVER = stateCodec.fields.over.offset;
const LEASE_OVER = leaseCodec.fields.over.offset;
const EEXIST = 17;
/** limit_lease_cache (bpf/include/maps.h): a cpu's sets, a set's slots (a key, then its lease). */
const CACHE_SET_BITS = 11n;
const CACHE_SETS = 1 << Number(CACHE_SET_BITS);
const CACHE_WAYS = 4;
const CACHE_SLOT = 64;
const M64 = (1n << 64n) - 1n;

/**
 * The packets over a limit that a source removed by the sweep had counted since its last report
 * (the end of its flood): the kernel reports a source at its next packet over the limit, which an
 * idle source does not send.
 */
export interface LimitTail {
  limit: ImageLimit;
  /** struct moat_limit_key: the source's address cut to the limit's prefix, its server port */
  key: Buffer;
  packets: number;
}

/** What a sweep found and removed. */
export interface LimitSweep {
  entries: number;
  removed: number;
}

export class LimitMaps {
  private readonly state: BpfMap;
  private readonly leases: BpfMap;
  private readonly cache: BpfMap;

  constructor(object: BpfObject) {
    this.state = object.map("limit_state");
    this.leases = object.map("limit_leases");
    this.cache = object.map("limit_lease_cache");
  }

  get capacity(): number {
    return this.state.maxEntries;
  }

  /**
   * Each limit's overflow bucket (the sources that find no room in the table share it), made
   * before the policy goes live; one already there (the limit is unchanged) is kept. Returns the
   * limits that found no room for theirs either (their full-table sources pass, counted).
   */
  overflowBuckets(limits: readonly ImageLimit[]): number {
    let missing = 0;
    for (const l of limits) {
      const key = keyCodec.encode({ id: l.id, flags: LimitKeyFlag.overflow });
      try {
        this.state.update(key, Buffer.alloc(stateCodec.size), BPF_NOEXIST);
      } catch (err) {
        if ((err as { errno?: number }).errno !== EEXIST) missing += 1;
      }
    }
    return missing;
  }

  /**
   * Removes the state of limits not in `live` (by id), and of sources idle for longer than their
   * limit could remember them (a full bucket, an empty one, a window past), as of `nowNs`
   * (CLOCK_MONOTONIC, the kernel's bpf_ktime_get_ns). Overflow buckets of live limits stay. A
   * removed source of a live limit that was ever over it goes to `report` with the packets over
   * it since its last report, if any.
   */
  sweep(
    live: ReadonlyMap<number, ImageLimit>,
    nowNs: bigint,
    report?: (tail: LimitTail) => void,
  ): LimitSweep {
    const stale: Buffer[] = [];
    // the stale sources ever over their limit, with the count of their shared state
    const overs = new Map<Buffer, bigint>();
    // idle since before this, by limit id (one BigInt subtraction a limit, not one a source)
    const keepSince = new Map<number, bigint>();
    for (const [id, l] of live) keepSince.set(id, nowNs - forgetAfter(l));
    let entries = 0;
    let cursor: Buffer | null = null;
    do {
      // the three fields a source's fate needs, read in place (a table of 65,536 sources is
      // swept every few seconds: decoding each key and state was ~100 ms of the loop)
      const batch = this.state.lookupBatch(cursor, 4096);
      for (let i = 0; i < batch.count; i++) {
        entries += 1;
        const at = i * keyCodec.size;
        const since = keepSince.get(batch.keys.readUInt32LE(at + ID));
        if (since !== undefined) {
          if (batch.keys[at + FLAGS]! & LimitKeyFlag.overflow) continue;
          if (batch.values.readBigUInt64LE(i * stateCodec.size + LAST_NS) > since) continue;
        }
        const key = Buffer.from(batch.keys.subarray(at, at + keyCodec.size));
        stale.push(key);
        const value = i * stateCodec.size;
        if (since !== undefined && batch.values.readBigUInt64LE(value + REPORTED_NS) !== 0n)
          overs.set(key, batch.values.readBigUInt64LE(value + OVER));
      }
      cursor = batch.next;
    } while (cursor);
    let removed = 0;
    for (const key of stale) {
      const over = overs.get(key);
      // what the cpus counted and have not handed to the shared state, taken before it goes
      const packets = over === undefined ? 0n : over + this.takeCached(key) + this.leased(key);
      if (this.state.delete(key)) removed += 1;
      this.leases.delete(key);
      const limit = live.get(key.readUInt32LE(ID));
      if (packets > 0n && limit) report?.({ limit, key, packets: Number(packets) });
    }
    return { entries, removed };
  }

  /** The packets over the limit the cpus' leases of source `key` in limit_leases counted. */
  private leased(key: Buffer): bigint {
    const values = this.leases.lookup(key);
    if (!values) return 0n;
    const stride = this.leases.valueBufferSize / this.leases.valuesPerKey;
    let sum = 0n;
    for (let at = 0; at < values.length; at += stride)
      sum += values.readBigUInt64LE(at + LEASE_OVER);
    return sum;
  }

  /**
   * The packets over the limit the cpus' cached leases of source `key` counted, taken from them
   * (else the source's next state would count them again). A set is written back only when it
   * has such a count, and only if no packet changed it since it was read (the whole set is one
   * value); one a packet changed keeps its count, for the source's next state.
   */
  private takeCached(key: Buffer): bigint {
    const set = cacheSet(key);
    const index = Buffer.alloc(4);
    let sum = 0n;
    for (let cpu = 0; cpu * CACHE_SETS < this.cache.maxEntries; cpu++) {
      index.writeUInt32LE(cpu * CACHE_SETS + set);
      const slots = this.cache.lookup(index);
      if (!slots) continue;
      let taken = 0n;
      const copy = Buffer.from(slots);
      for (let way = 0; way < CACHE_WAYS; way++) {
        const at = way * CACHE_SLOT;
        if (!copy.subarray(at, at + keyCodec.size).equals(key)) continue;
        taken += copy.readBigUInt64LE(at + keyCodec.size + LEASE_OVER);
        copy.writeBigUInt64LE(0n, at + keyCodec.size + LEASE_OVER);
      }
      if (taken === 0n || !this.cache.lookup(index)?.equals(slots)) continue;
      this.cache.update(index, copy);
      sum += taken;
    }
    return sum;
  }

  close(): void {
    this.state.close();
    this.leases.close();
    this.cache.close();
  }
}

/** ratelimit.h's limit_cache_set: the set of limit_lease_cache a source's leases are in. */
function cacheSet(key: Buffer): number {
  const [w0, w1, w2] = [0, 8, 16].map((at) => key.readBigUInt64LE(at)) as [bigint, bigint, bigint];
  let h = ((w0 ^ ((w1 * 0x9e3779b97f4a7c15n) & M64)) * 0xc2b2ae3d27d4eb4fn) & M64;
  h = ((h ^ w2) * 0x9e3779b97f4a7c15n) & M64;
  return Number(h >> (64n - CACHE_SET_BITS));
}

/**
 * The report of a swept source's packets over the limit, as the kernel's limit_report writes it
 * (struct moat_event, reason rate_limit) for rule `rule` of policy `generation`: the remote is the
 * source (its address cut to the limit's prefix), the local port its server port when the limit
 * is per port; what only a packet tells (protocol, local address, ports, interface) is 0.
 */
export function limitTailRecord(
  tail: LimitTail,
  rule: { index: number; generation: number; prevent: boolean },
  nowNs: bigint,
): Buffer {
  const addr = tail.key.subarray(keyCodec.fields.addr.offset);
  const mapped = addr.readBigUInt64BE(0) === 0n && addr.readUInt32BE(8) === 0xffff;
  const type = rule.prevent ? EventType.blocked : EventType.detected;
  return eventCodec.encode({
    ts_ns: nowNs,
    packets: BigInt(tail.packets),
    remote: Buffer.from(addr),
    local_port: tail.key.readUInt16LE(keyCodec.fields.port.offset),
    rule: rule.index,
    generation: rule.generation,
    type,
    family: mapped ? 4 : 6,
    direction: Direction.ingress,
    mode: rule.prevent ? Mode.prevent : Mode.detect,
    verdict: type,
    reason: Reason.rateLimit,
  });
}

/**
 * A source idle this long has a full bucket (empty, leaky) or a past window, and its report
 * interval is over: as if new. Forgotten sooner, its next report would come before `report_every`
 * (the sweep's report of its packets over the limit since its last one, or the kernel's).
 */
export function forgetAfter(l: ImageLimit): bigint {
  const longest = l.fillNs > 2n * l.periodNs ? l.fillNs : 2n * l.periodNs;
  return longest > l.reportNs ? longest : l.reportNs;
}
