// The pins a daemon of conntrack layout 6 of the default size leaves: its connection table of
// exactly the connections it is sized for, 65,536 entries (layout 7 holds one more), its entries
// in the same layout as this build's, the fragment records and counters as they are. For the
// migration tests: plantLayout6 turns this build's pins into those, with plantConntrack, which
// plants any older layout's table.
import { native } from "../../src/datapath/addon.ts";

export const LAYOUT6 = 6;
/** The connection table's entries in layout 6 at the default size. */
export const LAYOUT6_ENTRIES = 65536;

/** How an older daemon's connection table differs from this build's. */
export interface OldConntrack {
  version: number;
  valueSize?: number;
  maxEntries?: number;
  /** An entry of this build's layout in the old one. */
  convert?: (value: Buffer) => Buffer;
}

/**
 * Replaces the pinned conntrack table with one in an older layout holding its entries, and
 * records that layout's version as the pins' own; returns the entries.
 */
export function plantConntrack(pinRoot: string, layout: OldConntrack): number {
  const path = `${pinRoot}/maps/conntrack`;
  const current = native().BpfMap.openPinned(path);
  const old = native().BpfMap.create({
    type: current.type,
    keySize: current.keySize,
    valueSize: layout.valueSize ?? current.valueSize,
    maxEntries: layout.maxEntries ?? current.maxEntries,
    name: "conntrack",
  });
  const convert = layout.convert ?? ((v: Buffer) => v);
  let n = 0;
  for (let k = current.nextKey(null); k; k = current.nextKey(k)) {
    const v = current.lookup(k);
    if (!v) continue;
    old.update(k, convert(v));
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
  version.writeBigUInt64LE(BigInt(layout.version));
  record.update(key, version);
  record.close();
  return n;
}

/** Replaces the pinned conntrack table with a layout 6 one holding its entries; returns them. */
export const plantLayout6 = (pinRoot: string): number =>
  plantConntrack(pinRoot, { version: LAYOUT6, maxEntries: LAYOUT6_ENTRIES });
