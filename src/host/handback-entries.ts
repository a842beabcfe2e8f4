// Big lists of address entries (a set file's CIDRs) as columns in the accept worker's hand-back. A
// message copies an object at a time with its property names: a set of 1M entries took ~120 MB
// and 2.6-4 s of the daemon's thread to receive. As columns they move (transferred), and the
// daemon's thread makes an entry from them only when something reads it (lazyEntries).
import { markAddressOnly, type IntervalEntry, type SourcePos } from "../config/index.ts";
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
const TWO64 = 1n << 64n;
const TWO128 = 1n << 128n;

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
    x.start < TWO128 &&
    x.end < TWO128
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
      // (an IPv4 bound needs no shift: the shifts' bigints were a third of packing 1M entries)
      if (e.start < TWO64) bounds[4 * i + 1] = e.start;
      else {
        bounds[4 * i] = e.start >> 64n;
        bounds[4 * i + 1] = e.start & LOW64;
      }
      if (e.end < TWO64) bounds[4 * i + 3] = e.end;
      else {
        bounds[4 * i + 2] = e.end >> 64n;
        bounds[4 * i + 3] = e.end & LOW64;
      }
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

/**
 * The list of a packed list's entries, each made when it is first read. The daemon writes its
 * kernel maps from the compiled image and judges with the index that came with the list, so a
 * reload reads none of a 1M-entry set's entries: making them all took ~0.5 s of the daemon's
 * thread and as much again of garbage collection, and ~150 MB more to hold them. It is an array
 * to every reader (Array.isArray, its methods, iteration, JSON); what would see its holes (its
 * keys, a property's descriptor, a write, freezing) makes every entry first.
 */
export function lazyEntries(
  columns: EntryColumns,
  pos: (code: number) => SourcePos,
): IntervalEntry[] {
  const n = columns.negate.length;
  const target = new Array<IntervalEntry>(n);
  let from: EntryColumns | undefined = columns;
  let posOf: ((code: number) => SourcePos) | undefined = pos;
  let textStarts: Int32Array | undefined;
  let made = 0;

  const make = (i: number): IntervalEntry => {
    const c = from!;
    textStarts ??= lineStarts(c.texts, n);
    const { bounds } = c;
    const sh = bounds[4 * i]!;
    const eh = bounds[4 * i + 2]!;
    const entry: IntervalEntry = {
      kind: "interval",
      text: c.texts.slice(textStarts[i]!, textStarts[i + 1]! - 1),
      negate: c.negate[i] === 1,
      pos: posOf!(c.pos[i]!),
      family: c.family[i] === 6 ? 6 : 4,
      start: sh === 0n ? bounds[4 * i + 1]! : (sh << 64n) | bounds[4 * i + 1]!,
      end: eh === 0n ? bounds[4 * i + 3]! : (eh << 64n) | bounds[4 * i + 3]!,
    };
    target[i] = entry;
    if (++made === n) from = posOf = textStarts = undefined; // all made: the columns can go
    return entry;
  };
  const makeAll = (): void => {
    for (let i = 0; from && i < n; i++) if (target[i] === undefined) make(i);
  };
  const indexOf = (key: string | symbol): number => {
    if (typeof key !== "string") return -1;
    const c = key.charCodeAt(0);
    if (c < 48 || c > 57 || (c === 48 && key.length > 1)) return -1;
    const i = Number(key);
    return Number.isInteger(i) && i < n ? i : -1;
  };
  const whole =
    <A extends unknown[], R>(op: (t: IntervalEntry[], ...a: A) => R) =>
    (t: IntervalEntry[], ...a: A): R => {
      makeAll();
      return op(t, ...a);
    };
  const list = new Proxy(target, {
    get(t, key, receiver) {
      if (from) {
        const i = indexOf(key);
        if (i >= 0) return t[i] ?? make(i);
      }
      return Reflect.get(t, key, receiver);
    },
    has(t, key) {
      return (from !== undefined && indexOf(key) >= 0) || Reflect.has(t, key);
    },
    ownKeys: whole((t) => Reflect.ownKeys(t)),
    getOwnPropertyDescriptor: whole((t, key: string | symbol) =>
      Reflect.getOwnPropertyDescriptor(t, key),
    ),
    defineProperty: whole((t, key: string | symbol, d: PropertyDescriptor) =>
      Reflect.defineProperty(t, key, d),
    ),
    deleteProperty: whole((t, key: string | symbol) => Reflect.deleteProperty(t, key)),
    set: whole((t, key: string | symbol, v: unknown, receiver: unknown) =>
      Reflect.set(t, key, v, receiver),
    ),
    preventExtensions: whole((t) => Reflect.preventExtensions(t)),
  });
  if (columns.index) adoptAddressIndex(list, columns.index);
  markAddressOnly(list);
  return list;
}

/** Where each of the n texts joined by "\n" starts, and one past the last's end + 1. */
function lineStarts(texts: string, n: number): Int32Array {
  const starts = new Int32Array(n + 1);
  let at = 0;
  for (let i = 1; i < n; i++) {
    at = texts.indexOf("\n", at) + 1;
    starts[i] = at;
  }
  starts[n] = texts.length + 1;
  return starts;
}
