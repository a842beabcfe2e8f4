// A rule's address list -> the addresses it matches, per family, as disjoint intervals, with the
// list semantics of src/policy/match-address.ts: (the positive entries, or everything if there are
// none) minus the negative entries; a set is the same with "no entries" meaning nothing. A list of
// only negative entries therefore matches every address of the other family too.
//
// IPv4 addresses are numbers 0..2^32. IPv6 addresses are replaced by their rank among every IPv6
// bound the policy names (rank k stands for [points[k], points[k+1])), so all interval work is on
// numbers; lpm.ts maps ranks back to addresses.

import type { AddressEntry, AddressList, IntervalEntry } from "../../config/model.ts";
import { EMPTY, interval, unionOf, subtract, whole, type Flat } from "./intervals.ts";

export const SIZE4 = 2 ** 32;
const END6 = 1n << 128n;

export interface AddressSpaces {
  /** Every IPv6 bound (interval start, end + 1), ascending, from 0 to 2^128. */
  points6: bigint[];
  rank6: Map<bigint, number>;
  /** The number of IPv6 ranks: points6.length - 1. */
  size6: number;
}

/** Per-family matched addresses: IPv4 values, IPv6 ranks. */
export interface Region {
  v4: Flat;
  v6: Flat;
}

/**
 * Collects the IPv6 bounds of address lists (each set walked once) for their rank space, and
 * finds each list's first hostname entry on the way (one walk of the entries for both).
 */
export class AddressSpaceBuilder {
  private readonly bounds = new Set<bigint>([0n, END6]);
  /** The sets walked, with their first hostname entry. */
  private readonly sets = new Map<AddressEntry[], AddressEntry | undefined>();

  /** Adds a list's IPv6 bounds; returns its first hostname entry (sets expanded), if any. */
  add(list: AddressList): AddressEntry | undefined {
    return this.walk(list.entries);
  }

  private walk(entries: AddressEntry[]): AddressEntry | undefined {
    let first: AddressEntry | undefined;
    for (const e of entries) {
      if (e.kind === "interval") {
        if (e.family === 6) {
          this.bounds.add(e.start);
          this.bounds.add(e.end + 1n);
        }
      } else if (e.kind === "set") {
        let inner: AddressEntry | undefined;
        if (this.sets.has(e.entries)) inner = this.sets.get(e.entries);
        else {
          // noted before the walk: a set met again inside itself is not walked again
          this.sets.set(e.entries, undefined);
          inner = this.walk(e.entries);
          this.sets.set(e.entries, inner);
        }
        first ??= inner;
      } else if (e.kind === "hostname") first ??= e;
    }
    return first;
  }

  finish(): AddressSpaces {
    const points6 = [...this.bounds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const rank6 = new Map<bigint, number>();
    points6.forEach((p, i) => rank6.set(p, i));
    return { points6, rank6, size6: points6.length - 1 };
  }
}

/** Walks every interval entry of the lists (each set once) to build the IPv6 rank space. */
export function addressSpaces(lists: Iterable<AddressList>): AddressSpaces {
  const builder = new AddressSpaceBuilder();
  for (const list of lists) builder.add(list);
  return builder.finish();
}

/**
 * The one entry of a list of one IPv4 range, not negated (most rules of a big file): its region is
 * that range alone, [start, end + 1) of IPv4 and no IPv6 rank. undefined for any other list.
 */
export function onlyV4(list: AddressList | undefined): IntervalEntry | undefined {
  if (list?.entries.length !== 1) return undefined;
  const entry = list.entries[0]!;
  return entry.kind === "interval" && entry.family === 4 && !entry.negate ? entry : undefined;
}

/** Computes regions of address lists; a set's region is computed once however often it is used. */
export class Regions {
  readonly spaces: AddressSpaces;
  readonly all: Region;
  private readonly sets = new WeakMap<AddressEntry[], Region>();

  constructor(spaces: AddressSpaces) {
    this.spaces = spaces;
    this.all = { v4: whole(SIZE4), v6: whole(spaces.size6) };
  }

  /** An empty or absent list matches anything. */
  list(list: AddressList | undefined): Region {
    if (!list || list.entries.length === 0) return this.all;
    return this.entries(list.entries);
  }

  private entries(entries: AddressEntry[]): Region {
    let negated = 0;
    for (const e of entries) if (e.negate) negated++;
    // no negative entry (the common list): the positives are the entries themselves
    if (negated === 0 && entries.length > 0) return this.union(entries);
    const positives = entries.filter((e) => !e.negate);
    const negatives = entries.filter((e) => e.negate);
    const included = positives.length === 0 ? this.all : this.union(positives);
    const excluded = this.union(negatives);
    return { v4: subtract(included.v4, excluded.v4), v6: subtract(included.v6, excluded.v6) };
  }

  /** The members of a set: like a list, except that no entries means nothing. */
  private set(entries: AddressEntry[]): Region {
    let region = this.sets.get(entries);
    if (!region) {
      region = entries.length === 0 ? { v4: EMPTY, v6: EMPTY } : this.entries(entries);
      this.sets.set(entries, region);
    }
    return region;
  }

  private union(entries: AddressEntry[]): Region {
    const only = entries.length === 1 ? entries[0] : undefined;
    if (only?.kind === "interval") return this.interval(only.family, only.start, only.end);
    const parts: Region[] = [];
    let n4 = 0;
    let n6 = 0;
    for (const e of entries) {
      if (e.kind === "interval") {
        if (e.family === 4) n4++;
        else n6++;
      } else if (e.kind === "set") {
        const r = this.set(e.entries);
        parts.push(r);
        n4 += r.v4.length / 2;
        n6 += r.v6.length / 2;
      } else throw new Error(`hostname entry '${e.text}' cannot be compiled to address tables`);
    }
    const s4 = new Float64Array(n4);
    const e4 = new Float64Array(n4);
    const s6 = new Float64Array(n6);
    const e6 = new Float64Array(n6);
    let k4 = 0;
    let k6 = 0;
    const { rank6 } = this.spaces;
    for (const e of entries) {
      if (e.kind !== "interval") continue;
      if (e.family === 4) {
        s4[k4] = Number(e.start);
        e4[k4++] = Number(e.end) + 1;
      } else {
        s6[k6] = rank6.get(e.start)!;
        e6[k6++] = rank6.get(e.end + 1n)!;
      }
    }
    for (const r of parts) {
      for (let i = 0; i < r.v4.length; i += 2) {
        s4[k4] = r.v4[i]!;
        e4[k4++] = r.v4[i + 1]!;
      }
      for (let i = 0; i < r.v6.length; i += 2) {
        s6[k6] = r.v6[i]!;
        e6[k6++] = r.v6[i + 1]!;
      }
    }
    return { v4: unionOf(s4, e4), v6: unionOf(s6, e6) };
  }

  private interval(family: 4 | 6, start: bigint, end: bigint): Region {
    if (family === 4) return { v4: interval(Number(start), Number(end) + 1), v6: EMPTY };
    const { rank6 } = this.spaces;
    return { v4: EMPTY, v6: interval(rank6.get(start)!, rank6.get(end + 1n)!) };
  }
}
