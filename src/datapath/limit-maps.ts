// The rate limits' state (limit_state, bpf/include/ratelimit.h): each limit's overflow bucket,
// written before a policy that has the limit goes live, and the sweep that removes the state of
// idle sources and of limits no live policy has.
import { LimitKeyFlag, limitKey as keyCodec, limitState as stateCodec } from "./abi.ts";
import type { BpfMap, BpfObject } from "./native.d.ts";
import type { ImageLimit } from "../policy/compile/image.ts";

const BPF_NOEXIST = 1;
const ID = keyCodec.fields.id.offset;
const FLAGS = keyCodec.fields.flags.offset;
const LAST_NS = stateCodec.fields.last_ns.offset;
const EEXIST = 17;

/** What a sweep found and removed. */
export interface LimitSweep {
  entries: number;
  removed: number;
}

export class LimitMaps {
  private readonly state: BpfMap;
  private readonly leases: BpfMap;

  constructor(object: BpfObject) {
    this.state = object.map("limit_state");
    this.leases = object.map("limit_leases");
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
   * (CLOCK_MONOTONIC, the kernel's bpf_ktime_get_ns). Overflow buckets of live limits stay.
   */
  sweep(live: ReadonlyMap<number, ImageLimit>, nowNs: bigint): LimitSweep {
    const stale: Buffer[] = [];
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
        stale.push(Buffer.from(batch.keys.subarray(at, at + keyCodec.size)));
      }
      cursor = batch.next;
    } while (cursor);
    let removed = 0;
    for (const key of stale) {
      if (this.state.delete(key)) removed += 1;
      this.leases.delete(key);
    }
    return { entries, removed };
  }

  close(): void {
    this.state.close();
    this.leases.close();
  }
}

/**
 * A source idle this long has a full bucket (empty, leaky) or a past window, and its report
 * interval is over: as if new. Forgotten sooner, its packets over the limit since its last report
 * would go unreported, and its next report would come before `report_every`.
 */
export function forgetAfter(l: ImageLimit): bigint {
  const longest = l.fillNs > 2n * l.periodNs ? l.fillNs : 2n * l.periodNs;
  return longest > l.reportNs ? longest : l.reportNs;
}
