// The table floor of B1/B2 (bpf/test/ct_floor.bpf.c): the connection table alone, one lookup of
// a 40-byte key in an LRU hash of moat's entry size (and an insert for a new connection), with the
// source rotated as moat's bench knobs rotate it. Three loaded copies, anchored as the bench's
// datapaths are: one making every run a new connection, one keeping what it saw, and one that
// fills its table with new connections and then only looks new ones up (the lookup's share of
// NEW: a miss in a full table).
import { native } from "../src/datapath/addon.ts";
import type { BpfObject, BpfProgram } from "../src/datapath/native.d.ts";
import { anchorXdp } from "../test/helpers/xdp-anchor.ts";
import { ROOT } from "../test/helpers/paths.ts";

export interface TableFloor {
  fresh: BpfProgram;
  tracked: BpfProgram;
  /** New connections looked up, not inserted, once FILL runs have filled the table. */
  lookup: BpfProgram;
  /** Empties the tracked copy's table. */
  clear(): void;
  stop(): void;
}

/** Runs of the lookup copy that insert: twice the table's 65,536 entries, so it is full. */
export const FILL = 131_072;

/** Test programs of the table floor, each with its own kind of table (bpf/include/ct_floor.h). */
export type TableObject = "ct_floor" | "ct_floor_no_common_lru" | "ct_floor_hash";

/** A table floor loaded: `object`'s table, resized to `maxEntries` when given. */
export function load(
  keys: number,
  fresh: boolean,
  fill = 0,
  object: TableObject = "ct_floor",
  maxEntries?: number,
): BpfObject {
  const o = native().BpfObject.open(`${ROOT}build/bpf/test/${object}.bpf.o`);
  if (maxEntries) o.setMaxEntries("table", maxEntries);
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    return b;
  };
  o.setGlobal("keys", u32(keys));
  o.setGlobal("fresh", u32(fresh ? 1 : 0));
  o.setGlobal("fill", u32(fill));
  o.load();
  return o;
}

export function tableFloor(keys: number): TableFloor {
  const objects = [load(keys, true), load(keys, false), load(keys, true, FILL)] as const;
  const [fresh, tracked, lookup] = objects.map((o) => o.program("ct_floor")) as [
    BpfProgram,
    BpfProgram,
    BpfProgram,
  ];
  const anchors = [anchorXdp(fresh), anchorXdp(tracked), anchorXdp(lookup)];
  return {
    fresh,
    tracked,
    lookup,
    clear() {
      const table = objects[1].map("table");
      for (let k = table.nextKey(null); k; k = table.nextKey(null)) table.delete(k);
    },
    stop() {
      for (const a of anchors) a.release();
      for (const o of objects) o.close();
    },
  };
}
