// The pins a daemon of conntrack layout 6 of the default size leaves: its connection table of
// exactly the connections it is sized for, 65,536 entries (layout 7 holds one more), its entries
// in the same layout as this build's, the fragment records and counters as they are. For the
// migration tests: plantLayout6 turns this build's pins into those.
import { native } from "../../src/datapath/addon.ts";

export const LAYOUT6 = 6;
/** The connection table's entries in layout 6 at the default size. */
export const LAYOUT6_ENTRIES = 65536;

/** Replaces the pinned conntrack table with a layout 6 one holding its entries; returns them. */
export function plantLayout6(pinRoot: string): number {
  const path = `${pinRoot}/maps/conntrack`;
  const current = native().BpfMap.openPinned(path);
  const old = native().BpfMap.create({
    type: current.type,
    keySize: current.keySize,
    valueSize: current.valueSize,
    maxEntries: LAYOUT6_ENTRIES,
    name: "conntrack",
  });
  let n = 0;
  for (let k = current.nextKey(null); k; k = current.nextKey(k)) {
    const v = current.lookup(k);
    if (!v) continue;
    old.update(k, v);
    n++;
  }
  current.unpin(path);
  current.close();
  old.pin(path);
  old.close();
  const record = native().BpfMap.openPinned(`${pinRoot}/abi`);
  const key = Buffer.alloc(16);
  key.write("conntrack");
  const version = Buffer.alloc(8);
  version.writeBigUInt64LE(BigInt(LAYOUT6));
  record.update(key, version);
  record.close();
  return n;
}
