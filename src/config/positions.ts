// Positions of a policy file read the fast way, kept compact: a position is one number (where its
// path is in the table, and the offset of its first character), and the table holds, for each node
// a position names or is under, its parent and its key or index, in typed arrays. LINE:COL and the
// path's text are worked out only when something reads them (a message, `moat explain`), so a
// 100k-rule file keeps no path string per node, and the table crosses between threads as a few
// buffers (src/host/accept-handback.ts).

import type { SourcePos } from "./diagnostics.ts";

/** Offsets below this fit in a position's number; a longer text gets plain positions. */
export const OFFSET_LIMIT = 2 ** 26;

/** What a table is made of, as it is handed to another thread (the arrays can be transferred). */
export interface PositionTableParts {
  file: string;
  lineStarts: Int32Array;
  /** Per entry: the parent entry (-1: a child of the document's root). */
  parent: Int32Array;
  /** Per entry: a list index (>= 0), or -(k + 1) for the mapping key names[k]. */
  segment: Int32Array;
  names: string[];
}

export class PositionTable {
  readonly file: string;
  private lineStarts: Int32Array;
  private parent: Int32Array;
  private segment: Int32Array;
  private names: string[];
  private count: number;
  private readonly nameIndex = new Map<string, number>();

  constructor(parts: PositionTableParts, count = parts.parent.length) {
    this.file = parts.file;
    this.lineStarts = parts.lineStarts;
    this.parent = parts.parent;
    this.segment = parts.segment;
    this.names = parts.names;
    this.count = count;
    parts.names.forEach((n, i) => this.nameIndex.set(n, i));
  }

  /** A table for `text`, with no entries yet. */
  static of(file: string, text: string): PositionTable {
    const starts = [0];
    for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) starts.push(i + 1);
    const size = 1024;
    return new PositionTable(
      {
        file,
        lineStarts: Int32Array.from(starts),
        parent: new Int32Array(size),
        segment: new Int32Array(size),
        names: [],
      },
      0,
    );
  }

  /** A new entry for the child `seg` of entry `parent` (-1: the root); its number. */
  add(parent: number, seg: string | number): number {
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

  /** The position of `entry`'s path (-1: the root) at `offset`. */
  at(entry: number, offset: number): TablePos {
    return new TablePos(this, (entry + 1) * OFFSET_LIMIT + offset);
  }

  /** The parts, trimmed to the entries in use (fresh arrays: they may be transferred). */
  parts(): PositionTableParts {
    return {
      file: this.file,
      lineStarts: this.lineStarts.slice(),
      parent: this.parent.slice(0, this.count),
      segment: this.segment.slice(0, this.count),
      names: this.names,
    };
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

/** A position in a PositionTable: what it says is read from the table when asked. */
export class TablePos implements SourcePos {
  readonly table: PositionTable;
  /** (entry + 1) * OFFSET_LIMIT + offset. */
  readonly code: number;

  constructor(table: PositionTable, code: number) {
    this.table = table;
    this.code = code;
  }

  get file(): string {
    return this.table.file;
  }

  get line(): number {
    return this.table.linePos(this.code % OFFSET_LIMIT).line;
  }

  get col(): number {
    return this.table.linePos(this.code % OFFSET_LIMIT).col;
  }

  get path(): string {
    return this.table.path(Math.floor(this.code / OFFSET_LIMIT) - 1);
  }

  /** As a plain position (JSON, copies): what `{ ...pos }` would give for a plain one. */
  toJSON(): SourcePos {
    return plainPos(this);
  }
}

/** `pos` as a plain object, which `{ ...pos, col }` can copy whatever kind of position it is. */
export function plainPos(pos: SourcePos): SourcePos {
  const { line, col } = pos instanceof TablePos ? pos.table.linePos(pos.code % OFFSET_LIMIT) : pos;
  return { file: pos.file, line, col, path: pos.path };
}
