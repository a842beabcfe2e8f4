// The names journal (docs/dns.md, "Restart and upgrade"): the DNS proxy's store, one entry per
// name of a binding (identity, address, name) with the name's expiry, in a pinned map of its own
// (`names` group). tbl_names holds classes of one policy, which a new daemon cannot read back
// into names; this map holds the names, so a daemon started after a crash or an upgrade seeds
// its store from it before its first policy goes live. Only user space touches it.
import { NAME_LEN, nameJournalKey } from "./abi.ts";
import { decodeKey, keyOf, type NameIdentity } from "./name-maps.ts";
import type { BpfMap } from "./native.d.ts";

/** One name of one binding, and until when it lives (CLOCK_MONOTONIC ns). */
export interface JournaledName {
  identity: NameIdentity;
  ip: string;
  name: string;
  expiresNs: bigint;
}

export type JournalKey = Omit<JournaledName, "expiresNs">;

/** The key, or null for a name longer than the key holds (never a DNS name: <= 253). */
function journalKey(k: JournalKey): Buffer | null {
  const name = Buffer.from(k.name, "utf8");
  if (name.length >= NAME_LEN) return null;
  const key = Buffer.alloc(nameJournalKey.size);
  keyOf(k.identity, k.ip).copy(key, 0);
  name.copy(key, nameJournalKey.fields.name.offset);
  return key;
}

export class NameJournal {
  private readonly map: BpfMap;
  /** Names the full map did not take (they live, but would not outlive this daemon). */
  full = 0;

  constructor(map: BpfMap) {
    this.map = map;
  }

  /** Writes names made or refreshed (replacing an entry of the same key). */
  record(names: readonly JournaledName[]): void {
    const value = Buffer.alloc(8);
    for (const n of names) {
      const key = journalKey(n);
      if (!key) continue;
      value.writeBigUInt64LE(n.expiresNs);
      try {
        this.map.update(key, value);
      } catch (err) {
        // E2BIG: no room for a new key
        if ((err as { code?: string }).code !== "E2BIG") throw err;
        this.full++;
      }
    }
  }

  /** Deletes names (expired, or gone from the store). */
  forget(keys: readonly JournalKey[]): void {
    for (const k of keys) {
      const key = journalKey(k);
      if (key) this.map.delete(key);
    }
  }

  /** Every entry still live at `now`; those already expired are deleted. */
  read(now: bigint): JournaledName[] {
    const live: JournaledName[] = [];
    const expired: Buffer[] = [];
    const nameAt = nameJournalKey.fields.name.offset;
    for (let k = this.map.nextKey(null); k; k = this.map.nextKey(k)) {
      const raw = this.map.lookup(k);
      if (!raw) continue;
      const expiresNs = raw.readBigUInt64LE(0);
      if (expiresNs <= now) {
        expired.push(Buffer.from(k));
        continue;
      }
      const nameBytes = k.subarray(nameAt, nameAt + NAME_LEN);
      const end = nameBytes.indexOf(0);
      const name = nameBytes.subarray(0, end < 0 ? NAME_LEN : end).toString("utf8");
      live.push({ ...decodeKey(k.subarray(0, nameAt)), name, expiresNs });
    }
    for (const k of expired) this.map.delete(k);
    return live;
  }
}
