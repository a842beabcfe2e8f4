// Positions of a policy file read the fast way, kept compact: a position is one number (where its
// path is in the table, and the offset of its first character), and the table holds, for each node
// a position names or is under, its parent and its key or index, in typed arrays. LINE:COL and the
// path's text are worked out only when something reads them (a message, `moat explain`), so a
// 100k-rule file keeps no path string per node, and the table crosses between threads as a few
// buffers (src/host/accept-handback.ts).
//
// A table of a file read without its node offsets (src/config/lean-source.ts) is "lazy": a
// position's number holds its entry and which side of it it names (the value or the key), small
// enough for V8 to keep in the object itself (no heap number per position), and the offsets
// of every entry are worked out by one more read of the text (a Locator) the first time a line or
// column is asked for.
//
// A table whose every offset is known can keep its arrays packed (the daemon's: deflated, a tenth
// of their size; src/host/packed-table.ts) while no position is read: they are made again from the
// packed copy when one is (a message, `moat explain`, the API), and let go again once none has been
// read for a while.

import type { SourcePos } from "./diagnostics.ts";

/** Offsets below this fit in a position's number; a longer text gets plain positions. */
export const OFFSET_LIMIT = 2 ** 26;

/** What a table is made of, as it is handed to another thread (the arrays can be transferred). */
export interface PositionTableParts {
  file: string;
  /** Where each line starts; absent: worked out from the text when first needed. */
  lineStarts?: Int32Array;
  /** Per entry: the parent entry (-1: a child of the document's root). */
  parent: Int32Array;
  /** Per entry: a list index (>= 0), or -(k + 1) for the mapping key names[k]. */
  segment: Int32Array;
  names: string[];
  /** Positions' numbers are 2 * (entry + 1) + side (0: the value, 1: the key), not offsets. */
  lazy?: boolean;
  /** A lazy table's offsets, as far as worked out: value and key of the root at 0 and 1, of entry e at 2e + 2 and 2e + 3. */
  located?: Int32Array;
}

/** Works out a lazy table's offsets (a read of the text that notes where each node starts). */
export interface Locator {
  /** Fills `out` with the offsets of entries `from` to `to` - 1 (and the root's when `from` is 0). */
  locate(parts: PositionTableParts, from: number, to: number, out: Int32Array): void;
}

/** What a lazy table works its offsets out from. */
export interface LazySource {
  text: string;
  locator: () => Locator;
  /** No entry is added any more: the locator is let go once every offset is known. */
  sealed?: boolean;
}

/** A table's arrays in a smaller form, kept while no position is read (PositionTable.keepPacked). */
export interface PackedTable {
  /** How many entries the arrays hold. */
  readonly entries: number;
  /** The arrays made again (new ones each time). */
  unpack(): {
    parent: Int32Array;
    segment: Int32Array;
    /** Every entry's offsets (a lazy table's `located`). */
    offsets: Int32Array;
    lineStarts: Int32Array;
  };
}

/**
 * How long a table made from its packed copy stays made after its last read (ms): long enough that
 * judgements a few minutes apart, whose reasons name a rule's line, do not each pay the unpacking
 * (tens of ms at 100k rules).
 */
const HOLD_MADE_MS = 300_000;
let holdMadeMs = HOLD_MADE_MS;

/** Another hold of a table made from its packed copy (tests); undefined: the daemon's. */
export function setPackedHoldMs(ms: number | undefined): void {
  holdMadeMs = ms ?? HOLD_MADE_MS;
}

const NO_ENTRIES = new Int32Array(0);

export class PositionTable {
  readonly file: string;
  readonly lazy: boolean;
  private starts: Int32Array | undefined;
  private parent: Int32Array;
  private segment: Int32Array;
  private names: string[];
  private count: number;
  private readonly nameIndex = new Map<string, number>();
  private offsets: Int32Array | undefined;
  /** Entries below this have their offsets in `offsets`. */
  private locatedCount: number;
  private source: LazySource | undefined;
  private locator: Locator | undefined;
  /** This table's positions' class: the table is on its prototype, not in every position. */
  private readonly Pos: new (code: number) => TablePos;
  /** posKey, made when first asked for */
  private key: symbol | undefined;
  /** The arrays' packed copy (keepPacked); with `made` false, the arrays are not held. */
  private packed: PackedTable | undefined;
  private isMade = true;
  /** Reads since the hold's timer last looked (a made table with none since is let go). */
  private reads = 0;
  /** Whether a hold's timer is running (holdWhileRead). */
  private holding = false;

  constructor(parts: PositionTableParts, count = parts.parent.length, source?: LazySource) {
    this.file = parts.file;
    this.starts = parts.lineStarts;
    this.parent = parts.parent;
    this.segment = parts.segment;
    this.names = parts.names;
    this.count = count;
    this.lazy = parts.lazy === true;
    this.offsets = parts.located;
    this.locatedCount = parts.located ? parts.located.length / 2 - 1 : 0;
    this.source = source;
    parts.names.forEach((n, i) => this.nameIndex.set(n, i));
    this.Pos = positionClass(this);
  }

  /** A lazy table for `text`, with no entries yet. */
  static lazy(file: string, source: LazySource): PositionTable {
    const size = 1024;
    return new PositionTable(
      { file, parent: new Int32Array(size), segment: new Int32Array(size), names: [], lazy: true },
      0,
      source,
    );
  }

  private get lineStarts(): Int32Array {
    this.make();
    if (this.starts) return this.starts;
    const text = this.source?.text;
    if (text === undefined) throw new Error(`the positions of ${this.file} were not kept`);
    const starts = (this.starts = lineStartsOf(text));
    this.letTextGo();
    return starts;
  }

  /** No entry will be added: the locator (a read of the whole file) is let go once it has run. */
  seal(): void {
    // the entries made since the last lines were read are located while the node table is here
    if (this.locator && this.locatedCount < this.count) this.locateAll();
    if (this.source) this.source = { ...this.source, sealed: true };
    this.locator = undefined;
  }

  /** The offset a position's number stands for. */
  offsetOf(code: number): number {
    if (!this.lazy) return code % OFFSET_LIMIT;
    this.make();
    const entry = this.entryOf(code);
    if (!this.offsets || entry >= this.locatedCount) this.locateAll();
    return this.offsets?.[2 * entry + 2 + (code & 1)] ?? 0;
  }

  /** Whether every entry's offsets are known (a line or column is read without reading the text). */
  get located(): boolean {
    return !this.lazy || this.locatedCount === this.count;
  }

  /**
   * `use` given the table's arrays with every entry's offsets worked out now if they were not (to
   * hand to the thread whose table has the same entries, packed: keepPacked; not copies: `use`
   * reads them and keeps none), and its answer.
   */
  withArrays<T>(use: (arrays: ReturnType<PackedTable["unpack"]>) => T): T {
    this.make();
    if (!this.located) this.locateAll();
    return use({
      parent: this.parent.subarray(0, this.count),
      segment: this.segment.subarray(0, this.count),
      offsets: this.offsets ?? new Int32Array(2),
      lineStarts: this.lineStarts,
    });
  }

  /**
   * Keeps the table's arrays as `packed` (made by another thread from its copy of this table, with
   * every offset worked out) instead of holding them: they are made again when a position is read,
   * and let go once none has been read for a while. False (nothing changes) when `packed` is not
   * this table's (another count of entries) or entries may still be added.
   */
  keepPacked(packed: PackedTable): boolean {
    const adding = this.source !== undefined && this.source.sealed !== true;
    if (!this.lazy || packed.entries !== this.count || adding) return false;
    this.packed = packed;
    this.source = undefined;
    this.locatedCount = this.count;
    this.letMadeGo();
    return true;
  }

  /**
   * Whether the table holds its arrays (entries, offsets, line starts): always, unless they are
   * kept packed (keepPacked) and no position was read lately.
   */
  get made(): boolean {
    return this.isMade;
  }

  /** Lets the arrays go, if they can be made again from their packed copy. */
  letMadeGo(): void {
    if (!this.packed) return;
    this.parent = this.segment = NO_ENTRIES;
    this.offsets = this.starts = undefined;
    this.isMade = false;
  }

  /** The arrays made again from their packed copy, if they were let go; this read noted. */
  private make(): void {
    this.reads++;
    if (this.isMade || !this.packed) return;
    const { parent, segment, offsets, lineStarts } = this.packed.unpack();
    this.parent = parent;
    this.segment = segment;
    this.offsets = offsets;
    this.starts = lineStarts;
    this.isMade = true;
    this.holdWhileRead();
  }

  /** Lets the made arrays go once a hold's time has passed with no read (one timer at a time). */
  private holdWhileRead(): void {
    if (this.holding) return;
    this.holding = true;
    let seen = this.reads;
    const look = () => {
      if (this.isMade && this.reads !== seen) {
        seen = this.reads;
        setTimeout(look, holdMadeMs).unref?.();
        return;
      }
      this.holding = false;
      this.letMadeGo();
    };
    setTimeout(look, holdMadeMs).unref?.();
  }

  /**
   * A sealed table whose offsets and line starts are all known reads its text no more: it is let
   * go (a big policy's text is as large as its table; the running policy keeps its own copy).
   */
  private letTextGo(): void {
    if (this.source?.sealed && this.starts && this.located) this.source = undefined;
  }

  /** Works out the offsets of the entries not located yet. */
  private locateAll(): void {
    if (!this.source) throw new Error(`the positions of ${this.file} were not kept`);
    this.locator ??= this.source.locator();
    const out = new Int32Array(2 * this.count + 2);
    if (this.offsets) out.set(this.offsets);
    this.locator.locate(this.partsInUse(), this.locatedCount, this.count, out);
    this.offsets = out;
    this.locatedCount = this.count;
    if (this.source.sealed) {
      this.locator = undefined; // its node table is garbage now
      this.starts ??= lineStartsOf(this.source.text);
      this.letTextGo();
    }
  }

  /** A table for `text`, with no entries yet. */
  static of(file: string, text: string): PositionTable {
    const size = 1024;
    return new PositionTable(
      {
        file,
        lineStarts: lineStartsOf(text),
        parent: new Int32Array(size),
        segment: new Int32Array(size),
        names: [],
      },
      0,
    );
  }

  /** A new entry for the child `seg` of entry `parent` (-1: the root); its number. */
  add(parent: number, seg: string | number): number {
    this.make();
    const n = this.count++;
    if (n === this.parent.length) {
      const grow = (a: Int32Array) => {
        const b = new Int32Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.parent = grow(this.parent);
      this.segment = grow(this.segment);
    }
    this.parent[n] = parent;
    if (typeof seg === "number") this.segment[n] = seg;
    else {
      let k = this.nameIndex.get(seg);
      if (k === undefined) {
        k = this.names.length;
        this.names.push(seg);
        this.nameIndex.set(seg, k);
      }
      this.segment[n] = -(k + 1);
    }
    return n;
  }

  /** The position of `entry`'s path (-1: the root) at `offset` (in a lazy table: 0 its value, 1 its key). */
  at(entry: number, offset: number): TablePos {
    return new this.Pos(this.lazy ? 2 * (entry + 1) + offset : (entry + 1) * OFFSET_LIMIT + offset);
  }

  /** The position a number stands for. */
  pos(code: number): TablePos {
    return new this.Pos(code);
  }

  /**
   * Gives `obj` the position `code` stands for as its own `pos`, kept as the number: `pos` is a
   * getter that makes the position when read (600k positions at 100k rules were 19 MB of objects
   * kept for the odd message or `moat explain`). Reading, enumerating, spreading, JSON and
   * assigning `pos` go as they would for a plain property holding the position.
   */
  keepPos(obj: object, code: number): void {
    (obj as Record<symbol, number>)[this.posKey] = code;
    Object.defineProperty(obj, "pos", KEPT_POS);
  }

  /**
   * The key an object keeps its position's number of this table under (keepPos): a symbol of this
   * table's own, which finds the table (keptTables), and which the engine keeps in the objects'
   * shapes as long as one of them lives, and with it the table.
   */
  get posKey(): symbol {
    if (this.key === undefined) keptTables.set((this.key = Symbol(this.file)), this);
    return this.key;
  }

  /** The entry a position's number names (-1: the root). */
  entryOf(code: number): number {
    return Math.floor(code / (this.lazy ? 2 : OFFSET_LIMIT)) - 1;
  }

  private partsInUse(): PositionTableParts {
    return {
      file: this.file,
      parent: this.parent.subarray(0, this.count),
      segment: this.segment.subarray(0, this.count),
      names: this.names,
    };
  }

  /**
   * The parts, trimmed to the entries in use (fresh arrays: they may be transferred). A lazy
   * table's offsets go with them when its text has been read for them already.
   */
  parts(): PositionTableParts {
    this.make();
    if (this.lazy && this.locator && this.locatedCount < this.count) this.locateAll();
    return {
      file: this.file,
      ...(this.starts ? { lineStarts: this.starts.slice() } : {}),
      parent: this.parent.slice(0, this.count),
      segment: this.segment.slice(0, this.count),
      names: this.names,
      ...(this.lazy ? { lazy: true } : {}),
      ...(this.lazy && this.offsets && this.locatedCount === this.count
        ? { located: this.offsets.slice() }
        : {}),
    };
  }

  /** 1-based line and column of a position's number. */
  lineCol(code: number): { line: number; col: number } {
    return this.linePos(this.offsetOf(code));
  }

  /** 1-based line and column of an offset, as the yaml library's LineCounter gives them. */
  linePos(offset: number): { line: number; col: number } {
    const starts = this.lineStarts;
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((starts[mid] ?? 0) <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, col: offset - (starts[lo] ?? 0) + 1 };
  }

  /** The path of `entry` as formatPath writes it: "rules[2].layer4.port[0]"; "(root)". */
  path(entry: number): string {
    this.make();
    const segs: number[] = [];
    for (let e = entry; e >= 0; e = this.parent[e] ?? -1) segs.push(this.segment[e] ?? 0);
    let text = "";
    for (let i = segs.length - 1; i >= 0; i--) {
      const s = segs[i] ?? 0;
      text += s >= 0 ? `[${s}]` : text ? `.${this.names[-s - 1]}` : (this.names[-s - 1] ?? "");
    }
    return text || "(root)";
  }
}

/**
 * A position in a PositionTable: what it says is read from the table when asked. Each table has a
 * class of its own for its positions (positionClass), whose prototype holds the table: a position
 * is then its number alone (32 bytes, not 40 with the table in it: 600k positions at 100k rules).
 */
export class TablePos implements SourcePos {
  /** (on the prototype of the table's class) */
  declare readonly table: PositionTable;
  /** (entry + 1) * OFFSET_LIMIT + offset; in a lazy table 2 * (entry + 1) + side. */
  readonly code: number;

  /** A position of `table` (an instance of the table's own class). */
  constructor(table: PositionTable, code: number) {
    this.code = code;
    // (`new TablePos(table, code)` makes the table's own)
    if (new.target === TablePos) return table.pos(code);
  }

  get file(): string {
    return this.table.file;
  }

  get line(): number {
    return this.table.lineCol(this.code).line;
  }

  get col(): number {
    return this.table.lineCol(this.code).col;
  }

  get path(): string {
    return this.table.path(this.table.entryOf(this.code));
  }

  /** As a plain position (JSON, copies): what `{ ...pos }` would give for a plain one. */
  toJSON(): SourcePos {
    return plainPos(this);
  }
}

/** The table of each posKey. */
const keptTables = new WeakMap<symbol, PositionTable>();

/**
 * The `pos` property of an object that keeps its position as a number (PositionTable.keepPos), the
 * same for every object and table: the getter finds the table by the object's key. Assigning `pos`
 * makes it a plain property again.
 */
export const KEPT_POS: PropertyDescriptor = Object.freeze({
  get(this: Record<symbol, number>): SourcePos | undefined {
    for (const key of Object.getOwnPropertySymbols(this)) {
      const table = keptTables.get(key);
      if (table) return table.pos(this[key]!);
    }
    return undefined;
  },
  set(this: object, value: unknown): void {
    Object.defineProperty(this, "pos", {
      value,
      writable: true,
      enumerable: true,
      configurable: true,
    });
  },
  enumerable: true,
  configurable: true,
});

/** The class of `table`'s positions: a TablePos whose prototype holds the table. */
function positionClass(table: PositionTable): new (code: number) => TablePos {
  const Base = TablePos;
  const Pos = class TablePos extends Base {
    constructor(code: number) {
      super(table, code);
    }
  };
  Object.defineProperty(Pos.prototype, "table", { value: table });
  return Pos;
}

/** `pos` as a plain object, which `{ ...pos, col }` can copy whatever kind of position it is. */
export function plainPos(pos: SourcePos): SourcePos {
  const { line, col } = pos instanceof TablePos ? pos.table.lineCol(pos.code) : pos;
  return { file: pos.file, line, col, path: pos.path };
}

function lineStartsOf(text: string): Int32Array {
  const starts = [0];
  for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) starts.push(i + 1);
  return Int32Array.from(starts);
}
