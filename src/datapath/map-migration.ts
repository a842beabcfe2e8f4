// Carrying a pinned map group across a layout change (docs/datapath.md, "When a layout
// changed"): a converter registered for (group, from version, to version) says, map by map, how
// an entry of the old layout becomes one of this build's. The new maps are created and filled
// before load (the copy), the new programs take them over when their links are updated (the
// swap), then what the old programs wrote meanwhile is carried too (the delta).
import { native } from "./addon.ts";
import type { BpfMap, MapInfo } from "./native.d.ts";

/** One entry in the new layout; null drops it. */
export type Converted = { key: Buffer; value: Buffer } | null;

/** How one map of a group moves to this build's layout. */
export type MapPlan =
  /** Same layout: shared as it is when its shape matches this build's, else copied unchanged. */
  | { keep: true }
  | {
      /** One entry of the old layout (a per-CPU map's value holds every CPU's). */
      convert: (key: Buffer, value: Buffer) => Converted;
      /**
       * An entry the old programs changed after the copy whose new-layout entry the new programs
       * changed too: the value to keep (without it, the new programs' entry stays).
       */
      merge?: (carried: Buffer, live: Buffer) => Buffer;
    };

/** How a group's entries move from one layout version to another. */
export interface GroupConverter {
  group: string;
  from: number;
  to: number;
  /** A map of the group not named here starts empty. */
  maps: Record<string, MapPlan>;
  /** What the conversion does not carry, said in the log. */
  note?: string;
}

const converters = new Map<string, GroupConverter>();

const converterKey = (group: string, from: number, to: number) => `${group}:${from}:${to}`;

/** Registers (or replaces) the converter of `group` from layout `from` to layout `to`. */
export function registerConverter(converter: GroupConverter): void {
  converters.set(converterKey(converter.group, converter.from, converter.to), converter);
}

export function converterFor(group: string, from: number, to: number): GroupConverter | null {
  return converters.get(converterKey(group, from, to)) ?? null;
}

/** Map types whose entries user space can walk and write (hash, array, their per-CPU and lru kinds). */
const COPYABLE = new Set([1, 2, 5, 6, 9, 10]);

/** Every (key, value) of a map, values as lookup() gives them. */
function* entries(map: BpfMap): Generator<[Buffer, Buffer]> {
  for (let k = map.nextKey(null); k; k = map.nextKey(k)) {
    const v = map.lookup(k);
    if (v) yield [k, v];
  }
}

/** One map carried from an old pinned map into a new one. */
class MapCopy {
  /** By old key: the old value the copy read and what it wrote (new key and value). */
  private readonly copied = new Map<string, { old: Buffer; written: Converted }>();

  readonly name: string;
  readonly target: BpfMap;
  private readonly old: BpfMap;
  private readonly plan: MapPlan;

  constructor(name: string, old: BpfMap, target: BpfMap, plan: MapPlan) {
    this.name = name;
    this.old = old;
    this.target = target;
    this.plan = plan;
  }

  private convert(key: Buffer, value: Buffer): Converted {
    return "convert" in this.plan ? this.plan.convert(key, value) : { key, value };
  }

  /** The first copy: every entry, converted. Returns how many were written. */
  copy(): number {
    let n = 0;
    for (const [key, value] of entries(this.old)) {
      const out = this.convert(key, value);
      this.copied.set(key.toString("hex"), { old: value, written: out });
      if (!out) continue;
      this.target.update(out.key, out.value);
      n++;
    }
    return n;
  }

  /**
   * The delta: entries the old programs created, changed or removed since copy(). The new
   * programs' own changes to an entry win, unless the plan merges.
   */
  delta(): number {
    let n = 0;
    const seen = new Set<string>();
    for (const [key, value] of entries(this.old)) {
      const id = key.toString("hex");
      seen.add(id);
      const before = this.copied.get(id);
      if (before?.old.equals(value)) continue;
      const out = this.convert(key, value);
      if (!out) continue;
      const live = this.target.lookup(out.key);
      const untouched = !live || (before?.written && live.equals(before.written.value));
      if (untouched) this.target.update(out.key, out.value);
      else if ("merge" in this.plan && this.plan.merge)
        this.target.update(out.key, this.plan.merge(out.value, live));
      else continue;
      n++;
    }
    for (const [id, { written }] of this.copied) {
      if (seen.has(id) || !written) continue;
      // gone from the old map (closed, evicted): gone from the new one unless the new programs
      // wrote it since
      if (this.target.lookup(written.key)?.equals(written.value)) {
        this.target.delete(written.key);
        n++;
      }
    }
    return n;
  }

  close(): void {
    this.old.close();
  }
}

const sameShape = (a: MapInfo, b: BpfMap) =>
  a.type === b.type &&
  a.keySize === b.keySize &&
  a.valueSize === b.valueSize &&
  a.maxEntries === b.maxEntries;

/** A group being carried from its pinned maps (`old`, by name; absent: not pinned). */
export class GroupMigration {
  /** Maps shared as they are (adopted into the new object). */
  readonly shared = new Map<string, BpfMap>();
  /** Maps created for this build and filled from the old ones. */
  private readonly copies: MapCopy[] = [];
  /** Entries the first copy wrote. */
  copied = 0;

  readonly converter: GroupConverter;
  private readonly old: Map<string, BpfMap>;

  constructor(converter: GroupConverter, old: Map<string, BpfMap>) {
    this.converter = converter;
    this.old = old;
  }

  /**
   * The first copy, before load: a new map for each converted map, filled from the old one.
   * Throws (having closed what it made) when a converter throws or a map cannot be carried.
   */
  copy(infos: Map<string, MapInfo>): void {
    try {
      for (const [name, plan] of Object.entries(this.converter.maps)) {
        const old = this.old.get(name);
        const info = infos.get(name);
        if (!old || !info) continue;
        this.old.delete(name);
        if ("keep" in plan && sameShape(info, old)) {
          this.shared.set(name, old);
          continue;
        }
        if (!COPYABLE.has(old.type) || !COPYABLE.has(info.type))
          throw new Error(`${name}: entries of map type ${old.type} cannot be walked`);
        if ("keep" in plan && (old.keySize !== info.keySize || old.valueSize !== info.valueSize))
          throw new Error(`${name}: kept, but its key or value size changed`);
        const target = native().BpfMap.create({
          type: info.type,
          keySize: info.keySize,
          valueSize: info.valueSize,
          maxEntries: info.maxEntries,
          flags: info.flags,
          name: name.slice(0, 15),
        });
        const copy = new MapCopy(name, old, target, plan);
        this.copies.push(copy);
        try {
          this.copied += copy.copy();
        } catch (err) {
          throw new Error(`${name}: ${(err as Error).message}`, { cause: err });
        }
      }
    } catch (err) {
      this.close();
      throw err;
    }
  }

  /** Whether any map is copied (and so has a delta to carry after the swap). */
  get copying(): boolean {
    return this.copies.length > 0;
  }

  /** The new maps by name, for reuse before load (shared and copied alike). */
  maps(): [string, BpfMap][] {
    return [...this.shared, ...this.copies.map((c): [string, BpfMap] => [c.name, c.target])];
  }

  /** After the links are updated: the delta; then the old maps are let go. */
  finish(): number {
    let n = 0;
    try {
      for (const c of this.copies) n += c.delta();
    } finally {
      this.close();
    }
    return n;
  }

  /** Closes every handle this migration holds (the object holds its own of the new maps). */
  close(): void {
    for (const c of this.copies.splice(0)) {
      c.close();
      c.target.close();
    }
    for (const m of this.shared.values()) m.close();
    this.shared.clear();
    for (const m of this.old.values()) m.close();
    this.old.clear();
  }
}
