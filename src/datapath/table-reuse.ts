// Tables a reload did not change are not built again. Building a policy's maps is most of a swap
// (an IPv4 directory alone is 65,536 entries written one by one), and most reloads change a few
// tables or none (a SIGHUP, a set file that was touched). The policy's tables are read-only to the
// kernel, so one map can sit in both slots: a table whose content equals one the live or the idle
// slot holds is handed out again (a new handle on the same map) instead of being created and filled.
import { createHash } from "node:crypto";
import { native } from "./addon.ts";
import type { BpfMap } from "./native.d.ts";
import { freshMap, isSequential, type MapContent, type MapMaker } from "./table-maps.ts";

/** What makes two tables equal: shape and entries (not the name). */
function contentKey(c: MapContent): string {
  // SHA-1 is twice SHA-256's speed here, and whoever could pick colliding tables writes the policy
  const h = createHash("sha1");
  h.update(`${c.type}/${c.keySize}/${c.valueSize}/${c.maxEntries}/${c.flags}/${c.count}/`);
  h.update(isSequential(c.keys) ? "0..n" : c.keys.subarray(0, c.count * c.keySize));
  h.update(c.values.subarray(0, c.count * c.valueSize));
  return h.digest("base64");
}

export class TableReuse {
  /** This object's own handle on every table the two slots hold, by content. */
  private readonly held = new Map<string, BpfMap>();
  /** The contents the live slot, the idle slot and the swap being built use. */
  private live = new Set<string>();
  private idle = new Set<string>();
  private building = new Set<string>();
  /** Tables handed out again instead of built, since start (for tests and status). */
  reused = 0;

  /**
   * Tables made ahead of their swap (a policy's tables while the rest of it is still handed back
   * from the accept worker): held until the next swap goes live or is abandoned, which takes them
   * if its content is theirs.
   */
  private ahead = new Set<string>();
  /** A MapMaker for the swap being built. */
  readonly make: MapMaker = (content) => this.made(content, this.building);
  /** A MapMaker for tables made ahead of their swap. */
  readonly makeAhead: MapMaker = (content) => this.made(content, this.ahead);

  private *made(content: MapContent, into: Set<string>): Generator<void, BpfMap> {
    const key = contentKey(content);
    into.add(key);
    const have = this.held.get(key);
    if (have) {
      this.reused++;
      return native().BpfMap.openById(have.id());
    }
    const map = yield* freshMap(content);
    // made meanwhile by the other maker, between this one's turns: that one is kept
    const made = this.held.get(key);
    if (made) {
      map.close();
      return native().BpfMap.openById(made.id());
    }
    try {
      this.held.set(key, native().BpfMap.openById(map.id()));
    } catch (err) {
      map.close();
      throw err;
    }
    return map;
  }

  /** The swap went live: its tables are the live slot's, the live slot's are now the idle one's. */
  settle(): void {
    this.idle = this.live;
    this.live = this.building;
    this.building = new Set();
    this.ahead = new Set();
    this.release();
  }

  /** The swap was abandoned: what only it made is let go. */
  abandon(): void {
    this.building = new Set();
    this.ahead = new Set();
    this.release();
  }

  /** Tables made ahead that no swap took (by now) are let go. */
  dropAhead(): void {
    this.ahead = new Set();
    this.release();
  }

  close(): void {
    for (const map of this.held.values()) map.close();
    this.held.clear();
  }

  private release(): void {
    for (const [key, map] of this.held) {
      if (this.live.has(key) || this.idle.has(key) || this.building.has(key)) continue;
      if (this.ahead.has(key)) continue;
      map.close();
      this.held.delete(key);
    }
  }
}
