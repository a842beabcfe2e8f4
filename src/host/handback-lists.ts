// Long lists of objects in the accept worker's hand-back (a big policy's rules, in its model and in
// its kernel images) cross in parts: the worker serializes each part, and the daemon's thread reads
// one part a turn of its event loop. As one message, 100k rules took that thread 0.4-1.1 s to
// receive in one go, while its API, its events and its timers waited. Identity holds within a part:
// an object shared by items of different parts (a short list of a set that many rules name)
// arrives as one copy per part.
import { deserialize, serialize } from "node:v8";

/** Items in a part; a list longer than this goes in parts. */
export const PART_ITEMS = 4096;

/** One list: its items, PART_ITEMS a part, each part serialized (node:v8). */
export interface ListParts {
  length: number;
  parts: ArrayBuffer[];
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

/** Whether `v` is a list that goes in parts. */
export function isLongList(v: unknown): v is unknown[] {
  return Array.isArray(v) && v.length > PART_ITEMS;
}

/** A buffer of its own (a serialized part may be a view of a bigger one): one that can move. */
function own(bytes: Buffer): ArrayBuffer {
  if (
    bytes.buffer instanceof ArrayBuffer &&
    bytes.byteOffset === 0 &&
    bytes.byteLength === bytes.buffer.byteLength
  )
    return bytes.buffer;
  return new Uint8Array(bytes).buffer;
}

/** Puts long lists in parts on the worker, once everything in them is packed. */
export class ListsWriter {
  readonly lists: ListParts[] = [];
  private readonly found: [Record<string, unknown>, string, unknown[]][] = [];

  /** Notes `obj[key]`, a long list, to go in parts. */
  note(obj: Record<string, unknown>, key: string, list: unknown[]): void {
    this.found.push([obj, key, list]);
  }

  /**
   * Replaces each noted list by its ref; the buffers to move. The walk notes a list inside another
   * list's items after that list when the outer is reached once (the model's and the image's
   * shapes): taken last first, the inner one is a ref in the outer's parts. Otherwise the outer's
   * parts carry their own copy of it: the same items, bigger parts.
   */
  split(): ArrayBuffer[] {
    const refs = new Map<unknown[], ListRef>();
    const buffers: ArrayBuffer[] = [];
    for (let i = this.found.length - 1; i >= 0; i--) {
      const [obj, key, list] = this.found[i]!;
      let ref = refs.get(list);
      if (!ref) {
        const parts: ArrayBuffer[] = [];
        for (let at = 0; at < list.length; at += PART_ITEMS)
          parts.push(own(serialize(list.slice(at, at + PART_ITEMS))));
        buffers.push(...parts);
        ref = { packedList: this.lists.length };
        this.lists.push({ length: list.length, parts });
        refs.set(list, ref);
      }
      obj[key] = ref;
    }
    return buffers;
  }
}

/** Puts lists in parts back on the daemon's thread, a part a turn. */
export class ListsReader {
  private readonly lists: ListParts[];
  private readonly made = new Map<number, unknown[]>();
  private readonly queue: [ListParts, unknown[]][] = [];

  constructor(lists: ListParts[] | undefined) {
    this.lists = lists ?? [];
  }

  /** The list `ref` stands for, empty until fill() reads its parts (one list where it is shared). */
  list(ref: ListRef): unknown[] | undefined {
    let list = this.made.get(ref.packedList);
    const parts = this.lists[ref.packedList];
    if (list || !parts) return list;
    list = new Array<unknown>(parts.length); // sized once: filled a part at a time, it would grow
    this.made.set(ref.packedList, list);
    this.queue.push([parts, list]);
    return list;
  }

  /**
   * Reads the parts of the lists met so far, in order: `each` gets each part's items before they
   * join their list (they may hold refs to more lists), and the part they were read from (a typed
   * array in them is a view into it), then `between` is awaited.
   */
  async fill(
    each: (items: unknown[], part: ArrayBuffer) => void,
    between: () => Promise<void>,
  ): Promise<void> {
    for (let next = this.queue.shift(); next; next = this.queue.shift()) {
      const [{ parts }, list] = next;
      let at = 0;
      // each part let go once read: the list's items are all that stays
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
