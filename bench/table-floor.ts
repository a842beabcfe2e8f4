// The table floor of B1/B2 (bpf/test/ct_floor.bpf.c): the connection table alone, one lookup of
// a 40-byte key in an LRU hash of moat's entry size (and an insert for a new connection), with the
// source rotated as moat's bench knobs rotate it. Two loaded copies, anchored as the bench's
// datapaths are: one making every run a new connection, one keeping what it saw.
import { native } from "../src/datapath/addon.ts";
import type { BpfObject, BpfProgram } from "../src/datapath/native.d.ts";
import { anchorXdp } from "../test/helpers/xdp-anchor.ts";
import { ROOT } from "../test/helpers/paths.ts";

export interface TableFloor {
  fresh: BpfProgram;
  tracked: BpfProgram;
  /** Empties the tracked copy's table. */
  clear(): void;
  stop(): void;
}

function load(keys: number, fresh: boolean): BpfObject {
  const o = native().BpfObject.open(`${ROOT}build/bpf/test/ct_floor.bpf.o`);
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    return b;
  };
  o.setGlobal("keys", u32(keys));
  o.setGlobal("fresh", u32(fresh ? 1 : 0));
  o.load();
  return o;
}

export function tableFloor(keys: number): TableFloor {
  const objects = [load(keys, true), load(keys, false)] as const;
  const [fresh, tracked] = objects.map((o) => o.program("ct_floor")) as [BpfProgram, BpfProgram];
  const anchors = [anchorXdp(fresh), anchorXdp(tracked)];
  return {
    fresh,
    tracked,
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
