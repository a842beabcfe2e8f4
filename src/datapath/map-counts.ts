// How many entries a hash map holds. The kernel keeps that count itself (every insert, delete
// and LRU eviction), and map_count.bpf.o's iterator prints it for every map: reading it costs
// microseconds where a walk of a full 65,536-entry connection table costs ~75 ms of the daemon's
// thread. Where the iterator cannot load (a kernel without bpf_map_sum_elem_count), the map is
// walked, as it always was.
import { fileURLToPath } from "node:url";
import { native } from "./addon.ts";
import type { BpfLink, BpfMap, BpfObject } from "./native.d.ts";

export const MAP_COUNT_OBJECT = fileURLToPath(
  new URL("../../build/bpf/map_count.bpf.o", import.meta.url),
);

export type CountedMap = Pick<BpfMap, "id" | "lookupBatch">;

export class MapCounts {
  #object: BpfObject | null = null;
  #link: BpfLink | null = null;
  #tried = false;
  /** Why the kernel's count is not used (null while it is, or before the first count). */
  unavailable: string | null = null;

  /** The map's entries: the kernel's count, else a walk of the map. */
  count(map: CountedMap): number {
    const link = this.#iterator();
    let text = "";
    try {
      text = link?.readIter() ?? "";
    } catch (err) {
      // a status must not fail for its count: walk from now on, and say why
      this.unavailable = err instanceof Error ? err.message : String(err);
      this.close();
    }
    const id = map.id();
    for (const line of text.split("\n")) {
      const space = line.indexOf(" ");
      if (space > 0 && Number(line.slice(0, space)) === id) return Number(line.slice(space + 1));
    }
    return countByWalk(map);
  }

  close(): void {
    this.#link?.destroy();
    this.#object?.close();
    this.#link = null;
    this.#object = null;
  }

  #iterator(): BpfLink | null {
    if (this.#tried) return this.#link;
    this.#tried = true;
    try {
      this.#object = native().BpfObject.open(MAP_COUNT_OBJECT);
      this.#object.load();
      this.#link = this.#object.program("map_counts").attachIter();
    } catch (err) {
      this.unavailable = err instanceof Error ? err.message : String(err);
      this.close();
    }
    return this.#link;
  }
}

/** Counts a map's entries by reading every one (what the kernel's count replaces). */
export function countByWalk(map: Pick<BpfMap, "lookupBatch">): number {
  let n = 0;
  let cursor: Buffer | null = null;
  do {
    const page = map.lookupBatch(cursor, 4096);
    n += page.count;
    cursor = page.next;
  } while (cursor);
  return n;
}
