// What the accept worker sends back, made cheap to send. A message is copied value by value (the
// structured clone): for a 100k-rule policy that was ~600k position objects with a path string
// each. Here every position of the file's table (src/config/positions.ts) goes as its one number,
// the table as a few typed arrays, and the image's tables and the positions' arrays are moved
// (transferred), not copied. The daemon's thread puts the positions back in place.
import {
  PositionTable,
  positionsReader,
  TablePos,
  type PositionTableParts,
} from "../config/index.ts";
import type { Acceptance } from "./accept-policy.ts";

/** Lists at least this long are noted when walked, so a shared one is walked once. */
const SHARED_LENGTH = 16;
/** A bound on the walk (the model and image hold no cycles; this makes sure one cannot hang it). */
const MAX_OBJECTS = 200_000_000;

/** An acceptance as it crosses: its positions as numbers, with their table. */
export interface PackedAcceptance {
  acceptance: Acceptance;
  table?: PositionTableParts;
}

/**
 * Calls `visit` on every plain object and `view` on every typed array reachable from `root`. Lists
 * of many items and maps are walked once (a set's entries are shared by the rules that name it);
 * a small object reached twice is visited twice, which costs less than noting every one.
 */
function walk(
  root: unknown,
  visit: (obj: Record<string, unknown>) => void,
  view?: (v: ArrayBufferView) => void,
): void {
  const seen = new Set<object>();
  const stack: unknown[] = [root];
  let objects = 0;
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== "object" || v === null || v instanceof TablePos) continue;
    if (ArrayBuffer.isView(v)) {
      view?.(v);
      continue;
    }
    if (v instanceof ArrayBuffer) continue;
    if (Array.isArray(v)) {
      if (v.length >= SHARED_LENGTH) {
        if (seen.has(v)) continue;
        seen.add(v);
      }
      for (const item of v) if (typeof item === "object" && item !== null) stack.push(item);
    } else if (v instanceof Map || v instanceof Set) {
      if (seen.has(v)) continue;
      seen.add(v);
      for (const item of v.values()) stack.push(item);
      if (v instanceof Map) for (const k of v.keys()) stack.push(k);
    } else {
      if (++objects > MAX_OBJECTS) throw new Error("the accepted policy is too large to hand back");
      const obj = v as Record<string, unknown>;
      visit(obj);
      for (const key in obj) {
        const item = obj[key];
        if (typeof item === "object" && item !== null) stack.push(item);
      }
    }
  }
}

/**
 * The acceptance ready for postMessage (its positions replaced in place: it is not used after)
 * and what to transfer with it.
 */
export function packAcceptance(acceptance: Acceptance): {
  packed: PackedAcceptance;
  transfer: ArrayBuffer[];
  /** The table the positions went with, when its offsets are still to be worked out. */
  unlocated?: PositionTable;
} {
  let table: PositionTable | undefined;
  const buffers = new Set<ArrayBuffer>();
  walk(
    acceptance.policy,
    (obj) => {
      const pos = obj.pos;
      if (!(pos instanceof TablePos)) return;
      table ??= pos.table;
      // one table per acceptance; a position of another goes as the plain object it stands for
      obj.pos = pos.table === table ? pos.code : pos.toJSON();
    },
    (v) => {
      // a whole buffer of its own (not a slice of Node's shared pool) can be moved
      if (
        v.buffer instanceof ArrayBuffer &&
        v.byteOffset === 0 &&
        v.byteLength === v.buffer.byteLength &&
        v.byteLength > 0
      )
        buffers.add(v.buffer);
    },
  );
  const parts = table?.parts();
  if (parts)
    for (const a of [parts.lineStarts, parts.parent, parts.segment, parts.located])
      if (a && a.buffer instanceof ArrayBuffer) buffers.add(a.buffer);
  return {
    packed: { acceptance, ...(parts ? { table: parts } : {}) },
    transfer: [...buffers],
    ...(table && !table.located ? { unlocated: table } : {}),
  };
}

/** Strings up to this long are kept once each ("allow", "ingress", a mode, a set's name). */
const INTERN_LENGTH = 32;
/**
 * Distinct strings noted for that. The ones that repeat (a direction, an action, a mode, an entry's
 * kind) are among the first seen; past this many, the rest are unique (rule names, addresses), and
 * noting each cost more than it saved: a 1M-entry set noted 2M strings, ~1 s of the daemon's thread.
 */
const INTERN_MAX = 4096;

/**
 * The message's copy gives every string value its own copy (a 100k-rule model arrived with
 * 100k "ingress", 200k "prevent", ...: ~19 MB): `obj`'s short ones are replaced by the first
 * copy of each seen.
 */
function internStrings(obj: Record<string, unknown>, strings: Map<string, string>): void {
  for (const key in obj) {
    const v = obj[key];
    if (typeof v !== "string" || v.length > INTERN_LENGTH) continue;
    const kept = strings.get(v);
    if (kept !== undefined) obj[key] = kept;
    else if (strings.size < INTERN_MAX) strings.set(v, v);
  }
}

/**
 * The acceptance with its positions back in place, and their table. `text` is the policy's text,
 * which a table whose offsets were not worked out yet (a file read the lean way) works them out
 * from when one is read, unless the sender's offsets come first (PositionTable.adoptOffsets).
 */
export function unpackAcceptance(
  packed: PackedAcceptance,
  text?: string,
): { acceptance: Acceptance; table?: PositionTable } {
  const { acceptance, table: parts } = packed;
  if (!parts) return { acceptance };
  const file = parts.file;
  const table = new PositionTable(
    parts,
    undefined,
    text === undefined
      ? undefined
      : { text, locator: () => positionsReader(file, text), sealed: true },
  );
  const strings = new Map<string, string>();
  walk(acceptance.policy, (obj) => {
    if (typeof obj.pos === "number") obj.pos = new TablePos(table, obj.pos);
    internStrings(obj, strings);
  });
  return { acceptance, table };
}
