// Long lists of objects in the accept worker's hand-back (a big policy's rules, in its model and in
// its kernel images) cross in parts of PART_ITEMS, and the daemon's thread reads one part a turn of
// its event loop. As one message, 100k rules took that thread 0.4-1.1 s to receive in one go, while
// its API, its events and its timers waited. A list goes as columns (handback-columns.ts), made
// back from typed arrays; one holding what columns do not carry (a Map, a class's instance) goes
// serialized (node:v8), and identity holds within a part of it: an object shared by items of
// different parts arrives as one copy per part.
import { deserialize, serialize } from "node:v8";
import {
  columnBuffers,
  own,
  type ColumnList,
  type ColumnsReader,
  type ColumnsWriter,
} from "./handback-columns.ts";

/** Items in a part; a list longer than this goes in parts. */
export const PART_ITEMS = 4096;

/** One list serialized: its items, PART_ITEMS a part, each part serialized (node:v8). */
export interface SerializedList {
  length: number;
  parts: ArrayBuffer[];
}

/** One list: as columns or serialized. */
export type ListParts = ColumnList | SerializedList;

function isSerialized(list: ListParts): list is SerializedList {
  return list.parts.length === 0 || list.parts[0] instanceof ArrayBuffer;
}

/** What stands for a list in parts in the message: lists[packedList]. */
export interface ListRef {
  packedList: number;
}

export function isListRef(v: unknown): v is ListRef {
  return (
    typeof v === "object" &&
    v !== null &&
    typeof (v as Partial<ListRef>).packedList === "number" &&
    Object.keys(v).length === 1
  );
}

/** Puts long lists in parts on the worker. */
export class ListsWriter {
  readonly lists: ListParts[] = [];
  private readonly found: [Record<string, unknown>, string, unknown[]][] = [];
  private readonly partItems: number;

  /** `partItems`: the items of a part (fewer in tests, so a small policy's lists go in parts). */
  constructor(partItems = PART_ITEMS) {
    this.partItems = partItems;
  }

  /** Whether `v` is a list that goes in parts. */
  isLong(v: unknown): v is unknown[] {
    return Array.isArray(v) && v.length > this.partItems;
  }

  /** Notes `obj[key]`, a long list, to go in parts. */
  note(obj: Record<string, unknown>, key: string, list: unknown[]): void {
    this.found.push([obj, key, list]);
  }

  /**
   * Puts each noted list in parts and replaces it by its ref; the buffers to move. A list goes as
   * `columns` write it; one they do not carry goes serialized, once `inside` has packed what it
   * holds in place (and noted the long lists in it: they go in parts of their own). Serialized
   * last, once every list is a ref: a long list in a serialized one is a ref in its parts.
   */
  split(columns: ColumnsWriter, inside: (list: unknown[]) => void): ArrayBuffer[] {
    const refs = new Map<unknown[], ListRef>();
    const serialized: [unknown[], SerializedList][] = [];
    const buffers: ArrayBuffer[] = [];
    // the noted lists grow while a serialized one is walked
    for (let i = 0; i < this.found.length; i++) {
      const list = this.found[i]![2];
      if (refs.has(list)) continue;
      refs.set(list, { packedList: this.lists.length });
      const asColumns = columns.list(list, this.partItems);
      if (asColumns) {
        this.lists.push(asColumns);
        buffers.push(...columnBuffers(asColumns));
      } else {
        const parts: SerializedList = { length: list.length, parts: [] };
        this.lists.push(parts);
        serialized.push([list, parts]);
        inside(list);
      }
    }
    for (const [obj, key, list] of this.found) obj[key] = refs.get(list);
    for (const [list, { parts }] of serialized)
      for (let at = 0; at < list.length; at += this.partItems)
        parts.push(own(serialize(list.slice(at, at + this.partItems))));
    for (const [, { parts }] of serialized) buffers.push(...parts);
    return buffers;
  }
}

/**
 * A list as columns whose parts are kept after it was read, to make it again: each make() is a new
 * list, as the first read made it, read at once (no turn between its parts).
 */
export class ListAgain {
  private readonly list: ColumnList;
  /** a reader standing where the first one stood when it started the list (never read from) */
  private readonly from: ColumnsReader;

  constructor(list: ColumnList, from: ColumnsReader) {
    this.list = list;
    this.from = from;
  }

  make(): unknown[] {
    const columns = this.from.fork();
    const out = new Array<unknown>(this.list.length);
    columns.start(this.list);
    let at = 0;
    for (const part of this.list.parts) at = columns.part(part, out, at);
    return out;
  }

  /** make(), `between` awaited after each part (the daemon's thread: a turn of its loop). */
  async makeSoon(between: () => Promise<void>): Promise<unknown[]> {
    const columns = this.from.fork();
    const out = new Array<unknown>(this.list.length);
    columns.start(this.list);
    let at = 0;
    for (const part of this.list.parts) {
      at = columns.part(part, out, at);
      await between();
    }
    return out;
  }
}

/** Puts lists in parts back on the daemon's thread, a part a turn. */
export class ListsReader {
  private readonly lists: ListParts[];
  private readonly made = new Map<number, unknown[]>();
  private readonly queue: [SerializedList, unknown[]][] = [];
  /** lists as columns to be made again: their parts are kept (keep()) */
  private readonly again = new Map<number, ListAgain | null>();

  constructor(lists: ListParts[] | undefined) {
    this.lists = lists ?? [];
  }

  /**
   * Keeps the parts of the list `ref` stands for, if it goes as columns, to make it again; the
   * list's maker once fill() has read it (ready()).
   */
  keep(ref: ListRef): boolean {
    const parts = this.lists[ref.packedList];
    if (!parts || isSerialized(parts)) return false;
    this.again.set(ref.packedList, null);
    return true;
  }

  /** The maker of a list keep() kept, once fill() has read it. */
  ready(ref: ListRef): ListAgain | undefined {
    return this.again.get(ref.packedList) ?? undefined;
  }

  /** The list `ref` stands for, empty until fill() reads its parts (one list where it is shared). */
  list(ref: ListRef): unknown[] | undefined {
    let list = this.made.get(ref.packedList);
    const parts = this.lists[ref.packedList];
    if (list || !parts) return list;
    list = new Array<unknown>(parts.length); // sized once: filled a part at a time, it would grow
    this.made.set(ref.packedList, list);
    if (isSerialized(parts)) this.queue.push([parts, list]);
    return list;
  }

  /**
   * Reads the parts of the lists: those as columns first, in the order written (`columns` makes
   * their items whole); then the serialized ones met so far, in order: `each` gets each part's
   * items before they join their list (they may hold refs to more lists), and the part they were
   * read from (a typed array in them is a view into it). `between` is awaited after each part.
   */
  async fill(
    columns: ColumnsReader,
    each: (items: unknown[], part: ArrayBuffer) => void,
    between: () => Promise<void>,
  ): Promise<void> {
    for (let i = 0; i < this.lists.length; i++) {
      const parts = this.lists[i]!;
      if (isSerialized(parts)) continue;
      const list = this.list({ packedList: i })!;
      let at = 0;
      if (this.again.has(i)) {
        this.again.set(i, new ListAgain(parts, columns.fork()));
        columns.start(parts);
        for (const part of parts.parts) {
          at = columns.part(part, list, at);
          await between();
        }
        continue;
      }
      columns.start(parts);
      // each part let go once read: the list's items are all that stays
      for (let part = parts.parts.shift(); part; part = parts.parts.shift()) {
        at = columns.part(part, list, at);
        await between();
      }
    }
    for (let next = this.queue.shift(); next; next = this.queue.shift()) {
      const [{ parts }, list] = next;
      let at = 0;
      for (let part = parts.shift(); part; part = parts.shift()) {
        const items = deserialize(new Uint8Array(part)) as unknown[];
        each(items, part);
        for (const item of items) list[at++] = item;
        await between();
      }
    }
  }
}

/**
 * Typed arrays read from a part are views into it (node:v8): kept as they are, a list's addresses
 * would keep every part whole. Noted as they are met, then moved into one buffer of their own.
 */
export class PartViews {
  private readonly found: [Record<string, unknown>, string, ArrayBufferView][] = [];
  private part: ArrayBuffer | null = null;

  /** The part whose views are noted from now on. */
  reading(part: ArrayBuffer): void {
    this.part = part;
  }

  /** Notes `obj[key]` if it is a view into the part being read. */
  note(obj: Record<string, unknown>, key: string, v: unknown): void {
    if (this.part !== null && ArrayBuffer.isView(v) && v.buffer === this.part)
      this.found.push([obj, key, v]);
  }

  /** Moves the views noted into one buffer (each at an 8-byte boundary) and forgets the part. */
  settle(): void {
    this.part = null;
    if (this.found.length === 0) return;
    const at = (n: number) => (n + 7) & ~7;
    let size = 0;
    for (const [, , v] of this.found) size = at(size) + v.byteLength;
    const bytes = new Uint8Array(size);
    let offset = 0;
    for (const [obj, key, v] of this.found) {
      offset = at(offset);
      bytes.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), offset);
      const View = v.constructor as new (b: ArrayBuffer, at: number, length: number) => unknown;
      const per = "BYTES_PER_ELEMENT" in v ? (v.BYTES_PER_ELEMENT as number) : 1;
      obj[key] = new View(bytes.buffer, offset, v.byteLength / per);
      offset += v.byteLength;
    }
    this.found.length = 0;
  }
}
