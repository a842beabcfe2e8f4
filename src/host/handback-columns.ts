// Long lists of objects in the accept worker's hand-back (a big policy's rules) as columns. A
// structured clone writes every object with its property names and reads it back a property at a
// time: the 100k rules of a model and of its image took the daemon's thread ~0.5 s to read, and the
// worker as long to write. Here the objects of a list are grouped by their keys (a shape, sent
// once), and their values go into a few typed arrays a part (PART_ITEMS items): numbers, string
// indices, bigints, positions' codes. A part moves as one buffer, with the strings first met in
// it; the daemon's thread makes the objects back from them, a part a turn of its event loop.
//
// A value the columns do not know (a Map, a class's instance, a DataView) makes the list go as
// before (handback-lists.ts: serialized in parts). What the daemon's thread makes is what a copy
// would give: the same values, keys in the same order, a Buffer a Uint8Array, a typed array in a
// buffer of the list's own. An array reached twice within a list is one array (across its parts
// too): a set's entries, which every rule naming the set holds. An object reached twice arrives
// as two (none is, in a model or an image): noting every object cost the worker more than the
// rest of the writing. An array's own items are what it carries (not other properties of it).
import { deserialize, serialize } from "node:v8";
import { KEPT_POS, TablePos, type PositionTable } from "../config/index.ts";
import { posMaker, type Maker as PosMaker, type PosKit } from "./handback-pos-maker.ts";

/** What a value of a column is, one byte each (or one for the whole column). */
const UNDEF = 0;
const NULL = 1;
const FALSE = 2;
const TRUE = 3;
/** a number (nums) */
const NUM = 4;
/** a string (ints: i >= 0 the i-th noted across parts, else the part's own -(i + 1)-th) */
const STR = 5;
/** a bigint of 64 bits, signed (bigs) */
const BIG = 6;
/** a bigint of up to 128 bits, unsigned (wide: its high and low 64 bits) */
const WIDE = 7;
/** a position (nums: its code, accept-handback.ts) */
const POS = 8;
/** a plain object (shapes: its shape; its values in the shape's columns) */
const OBJ = 9;
/** an array (lens: its length; its items in the column's `items`) */
const ARR = 10;
/** an array met before in the list (ints: its number, in the order met) */
const REF = 11;
/** a list of address entries sent as columns (ints: its index, handback-entries.ts) */
const ENTRIES = 12;
/** a typed array (ints: its kind, its offset in the part's views, its length) */
const VIEW = 13;
/** a number that is an int32 (ints) */
const INT = 14;
/** a position whose code is an int32 (ints) */
const POS32 = 15;
/** no item there (an array's hole) */
const HOLE = 16;
/** (an array's first item, as Met notes it) */
const ITEM = 17;
/** a name (ints: as STR's, a part's own string), numbered in the order written across lists */
const NAME = 18;
/** a name written before, the same string (ints: its number) */
const NAME_AGAIN = 19;

/** The typed arrays a VIEW can be, by kind. */
const VIEWS = [
  Uint8Array,
  Int8Array,
  Uint8ClampedArray,
  Uint16Array,
  Int16Array,
  Uint32Array,
  Int32Array,
  Float32Array,
  Float64Array,
  BigUint64Array,
  BigInt64Array,
] as const;

/** Strings up to this long are sent once each (a direction, an action, a mode, a set's name)... */
const SHORT_STRING = 32;
/**
 * ...those among the first this many distinct ones met: the ones that repeat are among them, and
 * past them the rest are unique (rules' names, addresses), whose noting costs more than it saves.
 */
const STRINGS_NOTED = 4096;
const LOW64 = (1n << 64n) - 1n;
/**
 * Objects and arrays nested deeper go serialized: the writer and the reader recurse (an object
 * holding itself would recurse without end).
 */
const MAX_DEPTH = 1000;

/** Where a column's arrays are in its part's buffer: [offset, length] each. */
export interface ColumnLayout {
  /** values in the column */
  n: number;
  /** every value's tag, when they all have the same one; else -1 and `tags` */
  tag: number;
  tags?: number;
  nums?: [number, number];
  ints?: [number, number];
  /** the objects' shapes: all the same one, or each */
  shape?: number;
  shapes?: [number, number];
  /** the arrays' lengths: all the same, or each */
  len?: number;
  lens?: [number, number];
  bigs?: [number, number];
  wide?: [number, number];
  /** by shape: the columns of its keys' values (null: no object of that shape here) */
  fields?: (ColumnLayout[] | null)[];
  /** the items of the arrays in this column, one after the other */
  items?: ColumnLayout;
}

/** A part of a list: up to PART_ITEMS items. */
export interface ColumnPart {
  count: number;
  root: ColumnLayout;
  /**
   * the columns' arrays in one buffer, each at an 8-byte boundary (which a copy of a Float64Array
   * keeps)
   */
  bytes: Float64Array;
  /**
   * node:v8 serialized [noted, own]: the strings noted first in this part (they stand for
   * themselves in the parts after it too), and the part's other strings
   */
  strings?: Uint8Array;
  /** the shapes first met in this part: each its keys, in order */
  shapes?: string[][];
  /** the bytes of its typed arrays, each at an 8-byte boundary */
  views?: ArrayBuffer;
}

/** A list as columns. */
export interface ColumnList {
  length: number;
  parts: ColumnPart[];
  /** the numbers (in the order met, ascending) of the arrays a REF names */
  kept?: Int32Array;
}

/** What the writer asks of its user. */
export interface ColumnHooks {
  /** The code of a position (undefined: not one). */
  pos(v: unknown): number | undefined;
  /** The index of an "entries" list that goes as columns of its own (undefined: it does not). */
  entries(v: unknown): number | undefined;
}

/** A value the columns do not carry: the list goes serialized. */
class Unsupported extends Error {}

/**
 * Strings a column looks up before it is taken for one of unique strings (a rule's name, an
 * address), whose later strings are not looked up (hashing each cost the worker more than the
 * rest of the writing).
 */
const UNIQUE_AFTER = 64;

/** One column while it is written. */
class ColumnWriter {
  /** every value's tag, once two differ (until then `first`, `n` times) */
  tags: number[] | null = null;
  first = -1;
  n = 0;
  readonly nums: number[] = [];
  readonly ints: number[] = [];
  readonly shapes: number[] = [];
  readonly lens: number[] = [];
  readonly bigs: bigint[] = [];
  readonly wide: bigint[] = [];
  /** by shape */
  readonly fields: (ColumnWriter[] | undefined)[] = [];
  items: ColumnWriter | undefined;
  /** the shape of the last object written here, the likeliest next */
  last = -1;
  /** strings looked up, and found */
  looked = 0;
  found = 0;

  tag(t: number): void {
    if (this.tags !== null) this.tags.push(t);
    else if (t !== this.first) {
      if (this.n === 0) this.first = t;
      else {
        const tags = new Array<number>(this.n).fill(this.first);
        tags.push(t);
        this.tags = tags;
      }
    }
    this.n++;
  }
}

/**
 * Stands in place of an array's first item while its list is written, to know the array when it
 * is met again (a Map of every array cost as much as the rest of the writing).
 */
class Met {
  readonly first: unknown;
  readonly n: number;
  /** what was there: an item (ITEM), a hole (HOLE) or nothing, the array empty (UNDEF) */
  readonly was: number;
  constructor(first: unknown, n: number, was: number) {
    this.first = first;
    this.n = n;
    this.was = was;
  }
}

const align = (n: number): number => (n + 7) & ~7;

/** Whether `v` goes in an Int32Array as it is (-0 does not). */
const isInt32 = (v: number): boolean => (v | 0) === v && (v !== 0 || 1 / v > 0);

/**
 * Writes lists as columns, on the worker. Strings and shapes are numbered across every list it
 * writes, so the lists must be read in the order written (ColumnsReader does).
 */
export class ColumnsWriter {
  private readonly hooks: ColumnHooks;
  private readonly shapeKeys: string[][] = [];
  private readonly shapeIds = new Map<string, number>();
  private newShapes: string[][] = [];
  /** strings that repeat, noted (the first STRINGS_NOTED met), by number */
  private readonly stringIds = new Map<string, number>();
  private newNoted: string[] = [];
  /**
   * the values of "name" keys written as NAME, in order: a rule's name is in its image's rules and
   * in the model's (two lists of 100k unique strings), in the same order
   */
  private readonly names: string[] = [];
  /** the name a list's next name is likeliest to be (its index in `names`) */
  private nextName = 0;
  /** an object's values while its own are written: [base, top) */
  private readonly scratch: unknown[] = [];
  private top = 0;
  // per list
  /** the arrays met, their first item a Met until the list is written */
  private marked: unknown[][] = [];
  /** arrays that cannot be marked (frozen), by number */
  private frozen = new Map<unknown[], number>();
  private kept = new Set<number>();
  private met = 0;
  private depth = 0;
  // per part
  private ownStrings: string[] = [];
  private views: ArrayBufferView[] = [];
  private viewBytes = 0;

  constructor(hooks: ColumnHooks) {
    this.hooks = hooks;
  }

  /** `list` as columns in parts of `partItems`, or undefined if it holds what they do not carry. */
  list(list: unknown[], partItems: number): ColumnList | undefined {
    this.kept = new Set();
    this.met = 0;
    this.nextName = 0;
    const parts: ColumnPart[] = [];
    const strings = this.stringIds.size;
    const names = this.names.length;
    const shapes = this.shapeKeys.length;
    try {
      for (let at = 0; at < list.length; at += partItems) {
        const end = Math.min(list.length, at + partItems);
        const root = new ColumnWriter();
        this.ownStrings = [];
        this.views = [];
        this.viewBytes = 0;
        for (let i = at; i < end; i++) this.value(root, list[i], null);
        parts.push(this.part(root, end - at));
      }
    } catch (err) {
      if (!(err instanceof Unsupported)) throw err;
      // the parts written are dropped, and with them the strings and shapes they brought
      this.forget(strings, shapes, names);
      return undefined;
    } finally {
      for (const a of this.marked) {
        const met = a[0] as Met;
        if (met.was === ITEM) a[0] = met.first;
        else if (met.was === HOLE) delete a[0];
        else a.length = 0;
      }
      this.marked = [];
      this.depth = 0;
      this.frozen = new Map();
      this.scratch.length = 0;
      this.top = 0;
    }
    const kept = this.kept.size ? Int32Array.from(this.kept).sort() : undefined;
    return { length: list.length, parts, ...(kept ? { kept } : {}) };
  }

  /** Forgets the strings, shapes and names numbered from these counts on: none was sent. */
  private forget(strings: number, shapes: number, names: number): void {
    for (const [s, id] of this.stringIds) if (id >= strings) this.stringIds.delete(s);
    this.names.length = names;
    for (const keys of this.shapeKeys.splice(shapes)) this.shapeIds.delete(JSON.stringify(keys));
    this.newNoted = [];
    this.newShapes = [];
  }

  private string(col: ColumnWriter, s: string): number {
    if (s.length <= SHORT_STRING && col.found + UNIQUE_AFTER > col.looked) {
      col.looked++;
      const known = this.stringIds.get(s);
      if (known !== undefined) {
        col.found++;
        return known;
      }
      const noted = this.stringIds.size;
      if (noted < STRINGS_NOTED) {
        this.stringIds.set(s, noted);
        this.newNoted.push(s);
        return noted;
      }
    }
    // a string of the part's own: a list of them is read as is (appended one by one to one of
    // every part's, each was a slow store of a new string into an old array)
    return -this.ownStrings.push(s);
  }

  /**
   * A name: one the list before had at the same place (or the next) is sent as that one, so the
   * reader keeps one copy of it. Only there is it looked for: a Map of every name cost the worker
   * ~100 ms at 100k rules, where a rule's name in the model is the one in its image (the image's
   * rules are the model's, in order, then its defaults).
   */
  private name(col: ColumnWriter, s: string): void {
    const names = this.names;
    let at = this.nextName;
    if (names[at] !== s && names[at + 1] === s) at++;
    if (at < names.length && names[at] === s) {
      this.nextName = at + 1;
      col.tag(NAME_AGAIN);
      col.ints.push(at);
      return;
    }
    names.push(s);
    col.tag(NAME);
    col.ints.push(-this.ownStrings.push(s));
  }

  private value(col: ColumnWriter, v: unknown, key: string | null): void {
    switch (typeof v) {
      case "string":
        if (key === "name") return this.name(col, v);
        col.tag(STR);
        col.ints.push(this.string(col, v));
        return;
      case "number":
        // under "pos": a position packed already (an object shared with what was packed in place)
        if (isInt32(v)) {
          col.tag(key === "pos" ? POS32 : INT);
          col.ints.push(v);
        } else {
          col.tag(key === "pos" ? POS : NUM);
          col.nums.push(v);
        }
        return;
      case "boolean":
        col.tag(v ? TRUE : FALSE);
        return;
      case "undefined":
        col.tag(UNDEF);
        return;
      case "bigint":
        if (BigInt.asIntN(64, v) === v) {
          col.tag(BIG);
          col.bigs.push(v);
        } else if (v > 0n && v >> 128n === 0n) {
          col.tag(WIDE);
          col.wide.push(v >> 64n, v & LOW64);
        } else throw new Unsupported();
        return;
      case "object":
        if (v === null) col.tag(NULL);
        else if (v instanceof TablePos) this.pos(col, v);
        else if (Array.isArray(v)) this.array(col, v, key);
        else if (Object.getPrototypeOf(v) === Object.prototype) this.object(col, v, key);
        else if (ArrayBuffer.isView(v)) this.view(col, v);
        else throw new Unsupported();
        return;
      default:
        throw new Unsupported();
    }
  }

  private array(col: ColumnWriter, v: unknown[], key: string | null): void {
    const n = v.length;
    const first = v[0];
    const met = first instanceof Met ? first.n : this.frozen.size ? this.frozen.get(v) : undefined;
    if (met !== undefined) {
      col.tag(REF);
      col.ints.push(met);
      this.kept.add(met);
      return;
    }
    if (key === "entries" && this.entries(col, v)) return;
    const number = this.met++;
    const was = n === 0 ? UNDEF : first === undefined && !(0 in v) ? HOLE : ITEM;
    try {
      v[0] = new Met(first, number, was);
      this.marked.push(v);
    } catch {
      this.frozen.set(v, number);
    }
    col.tag(ARR);
    col.lens.push(n);
    if (n === 0) return;
    if (++this.depth > MAX_DEPTH) throw new Unsupported();
    const items = (col.items ??= new ColumnWriter());
    if (was === HOLE) items.tag(HOLE);
    else this.value(items, first, null);
    for (let i = 1; i < n; i++) {
      const item = v[i];
      if (item === undefined && !(i in v)) items.tag(HOLE);
      else this.value(items, item, null);
    }
    this.depth--;
  }

  private object(col: ColumnWriter, v: object, key: string | null): void {
    if (key === "pos") {
      const code = this.hooks.pos(v);
      if (code !== undefined) return this.code(col, code);
    }
    if (key === "entries" && this.entries(col, v)) return;
    // the values read as the keys are checked against the last shape here (a read in the loop
    // over the keys is the engine's quickest)
    const last = col.last;
    const keys = last >= 0 ? this.shapeKeys[last]! : undefined;
    const scratch = this.scratch;
    const base = this.top;
    let same = keys !== undefined;
    let n = 0;
    for (const k in v) {
      if (same && keys![n] !== k) same = false;
      scratch[base + n++] = (v as Record<string, unknown>)[k];
    }
    const shape = same && n === keys!.length ? last : this.shapeOf(col, v);
    col.tag(OBJ);
    col.shapes.push(shape);
    const shapeKeys = this.shapeKeys[shape]!;
    let fields = col.fields[shape];
    if (!fields) {
      fields = shapeKeys.map(() => new ColumnWriter());
      col.fields[shape] = fields;
    }
    if (++this.depth > MAX_DEPTH) throw new Unsupported();
    this.top = base + n;
    for (let i = 0; i < n; i++) this.value(fields[i]!, scratch[base + i], shapeKeys[i]!);
    this.top = base;
    this.depth--;
  }

  private pos(col: ColumnWriter, v: object): void {
    const code = this.hooks.pos(v);
    if (code === undefined) throw new Unsupported();
    this.code(col, code);
  }

  private code(col: ColumnWriter, code: number): void {
    if (isInt32(code)) {
      col.tag(POS32);
      col.ints.push(code);
    } else {
      col.tag(POS);
      col.nums.push(code);
    }
  }

  private entries(col: ColumnWriter, v: object): boolean {
    const index = this.hooks.entries(v);
    if (index === undefined) return false;
    col.tag(ENTRIES);
    col.ints.push(index);
    return true;
  }

  private view(col: ColumnWriter, v: ArrayBufferView): void {
    const kind = VIEWS.findIndex((View) => v instanceof View);
    if (kind < 0 || !(v.buffer instanceof ArrayBuffer)) throw new Unsupported();
    const per = VIEWS[kind]!.BYTES_PER_ELEMENT;
    const at = align(this.viewBytes);
    this.views.push(v);
    this.viewBytes = at + v.byteLength;
    col.tag(VIEW);
    col.ints.push(kind, at, v.byteLength / per);
  }

  /** The shape of `v` (its keys in order), numbered when first met. */
  private shapeOf(col: ColumnWriter, v: object): number {
    const keys: string[] = [];
    for (const k in v) keys.push(k);
    // an own "__proto__" would be the prototype where the reader sets it
    if (keys.includes("__proto__")) throw new Unsupported();
    const sig = JSON.stringify(keys);
    let shape = this.shapeIds.get(sig);
    if (shape === undefined) {
      shape = this.shapeKeys.length;
      this.shapeKeys.push(keys);
      this.shapeIds.set(sig, shape);
      this.newShapes.push(keys);
    }
    col.last = shape;
    return shape;
  }

  /** The part of `count` items written into `root`: its columns in one buffer. */
  private part(root: ColumnWriter, count: number): ColumnPart {
    // where each array goes, then the buffer, then the copies
    let size = 0;
    const place = (bytes: number): number => {
      const at = align(size);
      size = at + bytes;
      return at;
    };
    const copies: [number, ArrayLike<number> | ArrayLike<bigint>, number][] = [];
    const layout = (col: ColumnWriter): ColumnLayout => {
      const out: ColumnLayout = { n: col.n, tag: col.tags ? -1 : col.first };
      if (col.tags) copies.push([0, col.tags, (out.tags = place(col.n))]);
      const column = (kind: number, values: ArrayLike<unknown>, per: number) => {
        if (values.length === 0) return undefined;
        const at = place(per * values.length);
        copies.push([kind, values as ArrayLike<number>, at]);
        return [at, values.length] as [number, number];
      };
      const nums = column(1, col.nums, 8);
      if (nums) out.nums = nums;
      const ints = column(2, col.ints, 4);
      if (ints) out.ints = ints;
      const same = (values: number[]) => values.every((v) => v === values[0]);
      if (col.shapes.length && same(col.shapes)) out.shape = col.shapes[0]!;
      else if (col.shapes.length) out.shapes = column(2, col.shapes, 4)!;
      if (col.lens.length && same(col.lens)) out.len = col.lens[0]!;
      else if (col.lens.length) out.lens = column(2, col.lens, 4)!;
      const bigs = column(3, col.bigs, 8);
      if (bigs) out.bigs = bigs;
      const wide = column(4, col.wide, 8);
      if (wide) out.wide = wide;
      if (col.fields.length) {
        const fields: (ColumnLayout[] | null)[] = [];
        for (let s = 0; s < col.fields.length; s++) {
          const f = col.fields[s];
          fields.push(f ? f.map(layout) : null);
        }
        out.fields = fields;
      }
      if (col.items) out.items = layout(col.items);
      return out;
    };
    const rootLayout = layout(root);
    const bytes = new ArrayBuffer(align(size));
    for (const [kind, values, at] of copies) {
      const n = values.length;
      if (kind === 0) new Uint8Array(bytes, at, n).set(values as ArrayLike<number>);
      else if (kind === 1) new Float64Array(bytes, at, n).set(values as ArrayLike<number>);
      else if (kind === 2) new Int32Array(bytes, at, n).set(values as ArrayLike<number>);
      else if (kind === 3) new BigInt64Array(bytes, at, n).set(values as ArrayLike<bigint>);
      else new BigUint64Array(bytes, at, n).set(values as ArrayLike<bigint>);
    }
    const part: ColumnPart = { count, root: rootLayout, bytes: new Float64Array(bytes) };
    if (this.newNoted.length || this.ownStrings.length) {
      part.strings = new Uint8Array(own(serialize([this.newNoted, this.ownStrings])));
      this.newNoted = [];
    }
    if (this.newShapes.length) {
      part.shapes = this.newShapes;
      this.newShapes = [];
    }
    if (this.views.length) {
      const views = new Uint8Array(align(this.viewBytes));
      let at = 0;
      for (const v of this.views) {
        at = align(at);
        views.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), at);
        at += v.byteLength;
      }
      part.views = views.buffer;
    }
    return part;
  }
}

/** A buffer of its own (a serialized value may be a view of a bigger one): one that can move. */
export function own(bytes: Buffer): ArrayBuffer {
  if (
    bytes.buffer instanceof ArrayBuffer &&
    bytes.byteOffset === 0 &&
    bytes.byteLength === bytes.buffer.byteLength
  )
    return bytes.buffer;
  return new Uint8Array(bytes).buffer;
}

/** The buffers of a list that move with the message. */
export function columnBuffers(list: ColumnList): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  for (const p of list.parts) {
    out.push(p.bytes.buffer as ArrayBuffer);
    if (p.strings) out.push(p.strings.buffer as ArrayBuffer);
    if (p.views) out.push(p.views);
  }
  if (list.kept) out.push(list.kept.buffer as ArrayBuffer);
  return out;
}

/** What the reader asks of its user. */
export interface ColumnReadHooks {
  /** The position a code stands for. */
  pos(code: number): unknown;
  /**
   * Positions kept as their numbers (positions.ts: PositionTable.keepPos): their table, and which
   * numbers are kept so (a position in another file is made).
   */
  keptPos?: { table: PositionTable; keeps(code: number): boolean };
  /** The list of entries `index` stands for. */
  entries(index: number): unknown;
}

/** What the reader makes of a hole: the array's item is left out. */
const NO_ITEM = Symbol("hole");

const EMPTY_F64 = new Float64Array(0);
const EMPTY_I32 = new Int32Array(0);
const EMPTY_U8 = new Uint8Array(0);
const EMPTY_BIGS = new BigInt64Array(0);
const EMPTY_WIDE = new BigUint64Array(0);

/** One column while it is read. */
class ColumnReader {
  readonly tag: number;
  readonly tags: Uint8Array;
  readonly nums: Float64Array;
  readonly ints: Int32Array;
  readonly shape: number;
  readonly shapes: Int32Array;
  readonly len: number;
  readonly lens: Int32Array;
  readonly bigs: BigInt64Array;
  readonly wide: BigUint64Array;
  readonly fields: (ColumnReader[] | null)[];
  readonly items: ColumnReader | null;
  t = 0;
  f = 0;
  i = 0;
  s = 0;
  l = 0;
  b = 0;
  w = 0;

  constructor(layout: ColumnLayout, buffer: ArrayBuffer, offset: number) {
    const at = (column: [number, number]): [ArrayBuffer, number, number] => [
      buffer,
      offset + column[0],
      column[1],
    ];
    this.tag = layout.tag;
    this.tags =
      layout.tags === undefined ? EMPTY_U8 : new Uint8Array(...at([layout.tags, layout.n]));
    this.nums = layout.nums ? new Float64Array(...at(layout.nums)) : EMPTY_F64;
    this.ints = layout.ints ? new Int32Array(...at(layout.ints)) : EMPTY_I32;
    this.shape = layout.shape ?? -1;
    this.shapes = layout.shapes ? new Int32Array(...at(layout.shapes)) : EMPTY_I32;
    this.len = layout.len ?? -1;
    this.lens = layout.lens ? new Int32Array(...at(layout.lens)) : EMPTY_I32;
    this.bigs = layout.bigs ? new BigInt64Array(...at(layout.bigs)) : EMPTY_BIGS;
    this.wide = layout.wide ? new BigUint64Array(...at(layout.wide)) : EMPTY_WIDE;
    this.fields = layout.fields
      ? layout.fields.map((f) => (f ? f.map((c) => new ColumnReader(c, buffer, offset)) : null))
      : [];
    this.items = layout.items ? new ColumnReader(layout.items, buffer, offset) : null;
  }
}

/** Makes an object of one shape, its values read from their columns in the order of its keys. */
type Maker = PosMaker<ColumnReader>;

/**
 * Objects of a shape are made from a literal of its keys once this many were made a key at a time
 * (a literal is compiled once for its shape; a policy with thousands of shapes of a few objects
 * each would compile thousands).
 */
const LITERAL_AFTER = 4;
/** A shape of more keys is made a key at a time (V8 keeps no more than this many in an object). */
const LITERAL_KEYS_MAX = 128;

/**
 * A maker that builds each object from one object literal of `keys`, or undefined if one cannot
 * (too many keys; `__proto__`, which a literal takes for the prototype; Node run with code from
 * strings disallowed). An object made `{}` then a key at a time has room for 4 properties in
 * itself and keeps the rest in an array of their own (16-40 bytes more an object: the rules of a
 * model and of its image, their address entries); one made from a literal has room for all of
 * them, and no more. The values are read as the literal's properties are evaluated, in order: the
 * same order as a key at a time. A shape with a `pos` gets its maker from handback-pos-maker.ts.
 */
function literalMaker(keys: string[]): Maker | undefined {
  if (keys.length > LITERAL_KEYS_MAX || keys.includes("__proto__")) return undefined;
  if (keys.includes("pos")) return posMaker(keys);
  const props = keys.map((k, i) => `${JSON.stringify(k)}: read(fields[${i}])`).join(", ");
  try {
    return new Function("read", "fields", `"use strict"; return { ${props} };`) as Maker;
  } catch {
    return undefined;
  }
}

/** Appends `from`'s items to `to` (a spread of a long list would overflow the call's stack). */
function copyInto<T>(to: T[], from: readonly T[]): void {
  for (const item of from) to.push(item);
}

/**
 * Makes lists back from their columns, on the daemon's thread, in the order they were written
 * (their strings and shapes are numbered across them).
 */
export class ColumnsReader {
  private readonly hooks: ColumnReadHooks;
  /** the strings noted */
  private readonly strings: string[] = [];
  private readonly shapes: string[][] = [];
  /** the names met (NAME), in order */
  private readonly names: string[] = [];
  /** by shape: its maker, once LITERAL_AFTER objects of it were made a key at a time */
  private readonly makers: (Maker | undefined)[] = [];
  private readonly uses: number[] = [];
  private readonly read = (col: ColumnReader): unknown => this.value(col);
  private readonly kit: PosKit<ColumnReader> = {
    code: (col) => {
      const kept = this.hooks.keptPos;
      if (!kept) return undefined;
      const tag = col.tag >= 0 ? col.tag : col.tags[col.t]!;
      let code: number;
      if (tag === POS32 && kept.keeps((code = col.ints[col.i]!))) col.i++;
      else if (tag === POS && kept.keeps((code = col.nums[col.f]!))) col.f++;
      else return undefined;
      if (col.tag < 0) col.t++;
      return code;
    },
    key: () => this.hooks.keptPos!.table.posKey,
    keep: (obj) => Object.defineProperty(obj, "pos", KEPT_POS),
    put: (obj, col) => {
      const code = this.kit.code(col);
      if (code === undefined) obj.pos = this.value(col);
      else this.hooks.keptPos!.table.keepPos(obj, code);
    },
  };
  // per list
  private kept: Int32Array = EMPTY_I32;
  private nextKept = 0;
  private met = 0;
  private made = new Map<number, unknown>();
  // per part
  private ownStrings: string[] = [];
  private views: ArrayBuffer | undefined;

  constructor(hooks: ColumnReadHooks) {
    this.hooks = hooks;
  }

  /**
   * A reader standing where this one stands: a list started on it reads as one started here now
   * would (the strings, shapes and names noted so far are its own copies), and this one goes on
   * as it was. A list whose parts are kept is read again from one made before it was started.
   */
  fork(): ColumnsReader {
    const r = new ColumnsReader(this.hooks);
    copyInto(r.strings, this.strings);
    copyInto(r.shapes, this.shapes);
    copyInto(r.names, this.names);
    copyInto(r.makers, this.makers);
    copyInto(r.uses, this.uses);
    return r;
  }

  /** Starts list `list`, to be read into `into` a part at a time (part()). */
  start(list: ColumnList): void {
    this.kept = list.kept ?? EMPTY_I32;
    this.nextKept = 0;
    this.met = 0;
    this.made = new Map();
  }

  /** Reads a part of the list started, its items into `into` from `at`; the index after them. */
  part(part: ColumnPart, into: unknown[], at: number): number {
    if (part.strings) {
      const [noted, strings] = deserialize(part.strings) as [string[], string[]];
      for (const s of noted) this.strings.push(s);
      this.ownStrings = strings;
    }
    if (part.shapes)
      for (const keys of part.shapes) {
        // the keys as the engine keeps property names (a copied string is looked up every use)
        this.shapes.push(keys.map((k) => Object.keys({ [k]: 0 })[0] ?? k));
        this.makers.push(undefined);
        this.uses.push(0);
      }
    this.views = part.views;
    const { buffer, byteOffset } = part.bytes;
    const root = new ColumnReader(part.root, buffer as ArrayBuffer, byteOffset);
    for (let i = 0; i < part.count; i++) into[at++] = this.value(root);
    this.views = undefined;
    this.ownStrings = [];
    return at;
  }

  private note(v: unknown): void {
    const n = this.met++;
    if (n === this.kept[this.nextKept]) {
      this.made.set(n, v);
      this.nextKept++;
    }
  }

  private value(col: ColumnReader): unknown {
    const tag = col.tag >= 0 ? col.tag : col.tags[col.t++]!;
    switch (tag) {
      case STR: {
        const i = col.ints[col.i++]!;
        return i >= 0 ? this.strings[i] : this.ownStrings[-i - 1];
      }
      case NAME: {
        const name = this.ownStrings[-col.ints[col.i++]! - 1]!;
        this.names.push(name);
        return name;
      }
      case NAME_AGAIN:
        return this.names[col.ints[col.i++]!];
      case INT:
        return col.ints[col.i++];
      case POS32:
        return this.hooks.pos(col.ints[col.i++]!);
      case NUM:
        return col.nums[col.f++];
      case POS:
        return this.hooks.pos(col.nums[col.f++]!);
      case OBJ: {
        const shape = col.shape >= 0 ? col.shape : col.shapes[col.s++]!;
        const fields = col.fields[shape]!;
        const make = this.makers[shape];
        if (make) return make(this.read, fields, this.kit);
        const keys = this.shapes[shape]!;
        if (++this.uses[shape]! === LITERAL_AFTER) this.makers[shape] = literalMaker(keys);
        const o: Record<string, unknown> = {};
        for (let k = 0; k < keys.length; k++)
          if (keys[k] === "pos") this.kit.put(o, fields[k]!);
          else o[keys[k]!] = this.value(fields[k]!);
        return o;
      }
      case ARR: {
        const n = col.len >= 0 ? col.len : col.lens[col.l++]!;
        const a = new Array<unknown>(n);
        this.note(a);
        const items = col.items!;
        for (let k = 0; k < n; k++) {
          const item = this.value(items);
          if (item !== NO_ITEM) a[k] = item;
        }
        return a;
      }
      case FALSE:
        return false;
      case TRUE:
        return true;
      case UNDEF:
        return undefined;
      case NULL:
        return null;
      case BIG:
        return col.bigs[col.b++];
      case WIDE: {
        const hi = col.wide[col.w++]!;
        const lo = col.wide[col.w++]!;
        return (hi << 64n) | lo;
      }
      case REF:
        return this.made.get(col.ints[col.i++]!);
      case HOLE:
        return NO_ITEM;
      case ENTRIES:
        return this.hooks.entries(col.ints[col.i++]!);
      case VIEW: {
        const View = VIEWS[col.ints[col.i++]!]!;
        const at = col.ints[col.i++]!;
        const length = col.ints[col.i++]!;
        return new View(this.views ?? new ArrayBuffer(0), at, length);
      }
      default:
        throw new Error(`the hand-back's columns hold an unknown value (${tag})`);
    }
  }
}
