// A position table's arrays packed small, for the daemon to keep while no position is read
// (positions.ts: PositionTable.keepPacked). At 100k rules they are 13 MB (700k entries' parents,
// keys or indexes and offsets, 500k line starts); deflated after each is turned into its steps
// from one value to the next (they grow by small steps, in file order), ~1.2 MB. The worker packs
// them (~0.2-0.3 s of its time), the daemon's thread unpacks them when a position is read
// (~30-80 ms).
import { deflateRawSync, inflateRawSync } from "node:zlib";
import type { PackedTable } from "../config/index.ts";

type Arrays = ReturnType<PackedTable["unpack"]>;

/** The arrays in the order they are packed, and whether each is packed as its steps. */
const ORDER = [
  ["parent", true],
  ["segment", false], // indexes and keys: no order to step through
  ["offsets", true],
  ["lineStarts", true],
] as const;

/** Ahead of the deflated arrays: how many entries, then each array's length and packed bytes. */
const HEADER_INTS = 1 + 2 * ORDER.length;

/**
 * The arrays packed (a table's, with every offset: PositionTable.withArrays), each deflated apart
 * through one scratch array: the worker's memory a policy's change leaves behind is the C heap's
 * to trim, and the less it is, the less a daemon's reading taken before the trim shows it.
 */
export function packTable(arrays: Arrays): Uint8Array {
  const scratch = new Int32Array(Math.max(...ORDER.map(([name]) => arrays[name].length)));
  const bodies = ORDER.map(([name, steps]) => {
    const a = arrays[name];
    const view = scratch.subarray(0, a.length);
    if (steps)
      for (let i = 0, before = 0; i < a.length; before = a[i++] ?? 0)
        view[i] = (a[i] ?? 0) - before;
    else view.set(a);
    return deflateRawSync(new Uint8Array(view.buffer, 0, view.byteLength), { level: 1 });
  });
  const header = new Int32Array(HEADER_INTS);
  header[0] = arrays.parent.length;
  ORDER.forEach(([name], k) => {
    header[1 + 2 * k] = arrays[name].length;
    header[2 + 2 * k] = bodies[k]?.length ?? 0;
  });
  const out = new Uint8Array(header.byteLength + bodies.reduce((n, b) => n + b.length, 0));
  out.set(new Uint8Array(header.buffer), 0);
  let at = header.byteLength;
  for (const b of bodies) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

/** The table `bytes` (packTable's) stands for, made when asked. */
export function packedTable(bytes: Uint8Array): PackedTable {
  const header = new Int32Array(bytes.slice(0, HEADER_INTS * 4).buffer);
  return {
    entries: header[0] ?? 0,
    unpack() {
      const out: Partial<Record<keyof Arrays, Int32Array>> = {};
      let at = HEADER_INTS * 4;
      ORDER.forEach(([name, steps], k) => {
        const length = header[1 + 2 * k] ?? 0;
        const size = header[2 + 2 * k] ?? 0;
        const raw = inflateRawSync(bytes.subarray(at, at + size));
        at += size;
        if (raw.byteLength !== 4 * length) throw new Error("a packed position table is damaged");
        // an array of its own (a Buffer may be a slice of a shared one, at any alignment)
        const a = new Int32Array(length);
        new Uint8Array(a.buffer).set(raw);
        if (steps) for (let i = 1; i < length; i++) a[i] = (a[i] ?? 0) + (a[i - 1] ?? 0);
        out[name] = a;
      });
      const { parent, segment, offsets, lineStarts } = out;
      if (!parent || !segment || !offsets || !lineStarts) throw new Error("unreachable");
      return { parent, segment, offsets, lineStarts };
    },
  };
}
