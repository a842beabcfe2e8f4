// Big lists of address entries (a set file's CIDRs) as columns in the accept worker's hand-back. A
// message copies an object at a time with its property names: a set of 1M entries took ~120 MB
// and 2.6-4 s of the daemon's thread to receive. As columns they move (transferred), and the
// daemon's thread makes each entry once, with the bounds read from a typed array.
import type { IntervalEntry, SourcePos } from "../config/index.ts";
import { adoptAddressIndex, packAddressIndex, type PackedAddressIndex } from "../policy/index.ts";

/** A list of at least this many entries goes as columns (a shorter one costs less as it is). */
export const PACK_ENTRIES_MIN = 1024;

/** One list: entry i is text i, negate[i], family[i], bounds 4i..4i+3, position code pos[i]. */
export interface EntryColumns {
  /** the entries' texts, joined by "\n" (an address entry's text holds none) */
  texts: string;
  negate: Uint8Array;
  family: Uint8Array;
  /** start's high and low 64 bits, then end's */
  bounds: BigUint64Array;
  /** the entries' positions as the hand-back codes them (accept-handback.ts) */
  pos: Float64Array;
  /**
   * The list's lookup index (src/policy/address-index.ts), built on the worker when the policy is
   * judged in user space (the DNS proxy, the relay): the daemon's thread would build it at the
   * first judgement that reads the list, 0.6 s for a million entries.
   */
  index?: PackedAddressIndex;
}

/** What stands for a packed list in the message: lists[packedEntries]. */
export interface EntriesRef {
  packedEntries: number;
}

/** An interval entry's keys, in the order the checker makes them (a rebuilt entry has the same). */
const KEYS = ["kind", "text", "negate", "pos", "family", "start", "end"] as const;
const LOW64 = (1n << 64n) - 1n;

function isInterval(e: unknown): e is IntervalEntry {
  if (typeof e !== "object" || e === null || Array.isArray(e)) return false;
  let i = 0;
  for (const key in e) if (KEYS[i++] !== key) return false;
  if (i !== KEYS.length) return false;
  const x = e as IntervalEntry;
  return (
    x.kind === "interval" &&
    typeof x.text === "string" &&
    !x.text.includes("\n") &&
    typeof x.negate === "boolean" &&
    (x.family === 4 || x.family === 6) &&
    typeof x.start === "bigint" &&
    typeof x.end === "bigint" &&
    x.start >= 0n &&
    x.end >= 0n &&
    x.start >> 128n === 0n &&
    x.end >> 128n === 0n
  );
}

/**
 * Packs lists on the worker; `posCode` codes a position (undefined: not one it can code);
 * `indexed`: each list goes with its lookup index.
 */
export class EntriesWriter {
  readonly lists: EntryColumns[] = [];
  private readonly refs = new Map<unknown[], EntriesRef>();
  private readonly posCode: (pos: unknown) => number | undefined;
  private readonly indexed: boolean;

  constructor(posCode: (pos: unknown) => number | undefined, indexed = false) {
    this.posCode = posCode;
    this.indexed = indexed;
  }

  /** The ref that stands for `list` (the same for a list reached twice), or undefined. */
  ref(list: unknown): EntriesRef | undefined {
    if (!Array.isArray(list) || list.length < PACK_ENTRIES_MIN) return undefined;
    const known = this.refs.get(list);
    if (known) return known;
    if (!list.every(isInterval)) return undefined;
    const columns = this.columns(list);
    if (!columns) return undefined;
    const ref = { packedEntries: this.lists.length };
    this.lists.push(columns);
    this.refs.set(list, ref);
    return ref;
  }

  private columns(list: IntervalEntry[]): EntryColumns | undefined {
    const n = list.length;
    const pos = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const code = this.posCode(list[i]!.pos);
      if (code === undefined) return undefined;
      pos[i] = code;
    }
    const negate = new Uint8Array(n);
    const family = new Uint8Array(n);
    const bounds = new BigUint64Array(4 * n);
    const texts = new Array<string>(n);
    for (let i = 0; i < n; i++) {
      const e = list[i]!;
      texts[i] = e.text;
      negate[i] = e.negate ? 1 : 0;
      family[i] = e.family;
      bounds[4 * i] = e.start >> 64n;
      bounds[4 * i + 1] = e.start & LOW64;
      bounds[4 * i + 2] = e.end >> 64n;
      bounds[4 * i + 3] = e.end & LOW64;
    }
    const index = this.indexed ? packAddressIndex(list) : undefined;
    return { texts: texts.join("\n"), negate, family, bounds, pos, ...(index ? { index } : {}) };
  }
}

export function isEntriesRef(v: unknown): v is EntriesRef {
  return (
    typeof v === "object" &&
    v !== null &&
    typeof (v as { packedEntries?: unknown }).packedEntries === "number"
  );
}

/** Entries made between two pauses: a 1M-entry set file's list is made over ~16 turns. */
const UNPACK_STEP = 65536;

/** A list the size of `columns`' entries, for unpackEntries to fill (sized once: no spare room). */
export function entriesList(columns: EntryColumns): IntervalEntry[] {
  const list = new Array<IntervalEntry>(columns.negate.length);
  if (columns.index) adoptAddressIndex(list, columns.index);
  return list;
}

/**
 * Puts the entries of one packed list into `into` (from entriesList), their positions made by `pos`
 * from their codes, pausing (yielding) after each UNPACK_STEP.
 */
export function* unpackEntries(
  columns: EntryColumns,
  pos: (code: number) => SourcePos,
  into: IntervalEntry[],
): Generator<void, void> {
  const { negate, family, bounds } = columns;
  const texts = columns.texts.split("\n");
  for (let i = 0; i < negate.length; i++) {
    if (i > 0 && i % UNPACK_STEP === 0) yield;
    const sh = bounds[4 * i]!;
    const eh = bounds[4 * i + 2]!;
    into[i] = {
      kind: "interval",
      text: texts[i]!,
      negate: negate[i] === 1,
      pos: pos(columns.pos[i]!),
      family: family[i] === 6 ? 6 : 4,
      start: sh === 0n ? bounds[4 * i + 1]! : (sh << 64n) | bounds[4 * i + 1]!,
      end: eh === 0n ? bounds[4 * i + 3]! : (eh << 64n) | bounds[4 * i + 3]!,
    };
  }
}
