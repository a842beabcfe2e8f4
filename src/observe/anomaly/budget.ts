// Bounds over all identities together. Each identity's beacon series, destinations and DNS
// window are bounded (beacon.ts, new-destination.ts, dns-oddities.ts), but so many identities at their bounds (a user can make
// identities by the thousand: a cgroup or a copy of a binary each) would hold gigabytes and a
// state file too large to write. Past a total, the identity holding the most gives up its least
// recently used quarter, so the widest spread pays and an identity of a few peers keeps them.
/** Beacon series in all (about 2 KB each at 64 connections: 0.5 GB). */
export const MAX_SERIES_IN_ALL = 262_144;
/** Destinations in all (about 100 bytes each). */
export const MAX_DESTINATIONS_IN_ALL = 1_048_576;
/** Random-looking names in the DNS windows in all (about 100 bytes each). */
export const MAX_DNS_NAMES_IN_ALL = 262_144;

export interface BudgetBounds {
  series: number;
  destinations: number;
  dnsNames: number;
}

export const DEFAULT_BUDGET: BudgetBounds = {
  series: MAX_SERIES_IN_ALL,
  destinations: MAX_DESTINATIONS_IN_ALL,
  dnsNames: MAX_DNS_NAMES_IN_ALL,
};

/** One kind of entry (series, destinations) counted over the profiles (P: a profile). */
export class Budget<P> {
  readonly #max: number;
  readonly #size: (p: P) => number;
  readonly #forget: (p: P, count: number) => void;
  /** The total is counted again (a pass over the profiles) after this many new entries. */
  readonly #every: number;
  #grown = 0;

  constructor(max: number, size: (p: P) => number, forget: (p: P, count: number) => void) {
    this.#max = max;
    this.#size = size;
    this.#forget = forget;
    this.#every = Math.max(1, Math.min(4096, Math.floor(max / 16)));
  }

  /** A profile has `added` entries more (fewer are not counted: the total is counted again
   * before anything is forgotten); past the bound, the largest give some up. */
  grew(added: number, profiles: Map<string, P>): void {
    if (added <= 0) return;
    this.#grown += added;
    if (this.#grown < this.#every) return;
    this.#grown = 0;
    let total = 0;
    for (const p of profiles.values()) total += this.#size(p);
    // down to a margin below the bound, so what grows until the next count stays within it
    while (total > this.#max - this.#every) {
      let largest: P | undefined;
      let most = 0;
      for (const p of profiles.values()) {
        const n = this.#size(p);
        if (n > most) [largest, most] = [p, n];
      }
      if (!largest) return;
      this.#forget(largest, Math.max(1, Math.ceil(most / 4)));
      const gone = most - this.#size(largest);
      if (gone <= 0) return;
      total -= gone;
    }
  }
}
