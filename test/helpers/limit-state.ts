// The rate limits' kernel state, emptied between the cases of a test that moves the limits'
// clock back: the shared states, the per-CPU leases in their hash, and the per-CPU lease cache
// (an array, so its slots are zeroed: a slot whose source id is 0 is empty).
import type { BpfObject } from "../../src/datapath/native.d.ts";

export function clearLimitState(object: BpfObject): void {
  for (const m of [object.map("limit_state"), object.map("limit_leases")])
    for (let k = m.nextKey(null); k; k = m.nextKey(null)) m.delete(k);
  const cache = object.map("limit_lease_cache");
  const keys = Buffer.alloc(4 * cache.maxEntries);
  for (let i = 0; i < cache.maxEntries; i++) keys.writeUInt32LE(i, 4 * i);
  cache.updateBatch(keys, Buffer.alloc(cache.valueBufferSize * cache.maxEntries), cache.maxEntries);
}

/**
 * Sets the time the limits read (the object loaded with limit_test_clock = 1), in ms; `ns` for a
 * time that is not a whole ms.
 */
export function limitClock(object: BpfObject): {
  at: (ms: number) => void;
  ns: (t: bigint) => void;
} {
  const clock = object.map("limit_clock");
  const ns = (t: bigint) => {
    const v = Buffer.alloc(8);
    v.writeBigUInt64LE(t);
    clock.update(Buffer.alloc(4), v);
  };
  return { at: (ms) => ns(BigInt(ms) * 1_000_000n), ns };
}
