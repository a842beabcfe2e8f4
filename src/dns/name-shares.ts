// The names the binding store holds, counted by the uid whose lookups made them, within a bound:
// each name is memory and sweep time, and a zone that answers every lookup with addresses never
// seen before would otherwise give the store thousands more per answer (with a TTL of a day,
// until the daemon runs out of memory). One uid holds at most a quarter of the bound, and the uids
// other than root together at most the rest less root's quarter: one user's lookups cannot take
// the names of root's with them. /etc/hosts names (every identity's) are not counted.

/** The names the store holds at most: the names journal's size (docs/dns.md). */
export const MAX_NAMES = 524_288;

export class NameShares {
  private readonly byUid = new Map<number, number>();
  private total = 0;
  /** Those of every uid but root's. */
  private others = 0;
  readonly max: number;
  /** The most one uid holds. */
  readonly share: number;

  constructor(max = MAX_NAMES) {
    this.max = max;
    this.share = Math.floor(max / 4);
  }

  /** Whether `uid` may hold `count` more names. */
  room(uid: number, count: number): boolean {
    if (count <= 0) return true;
    if ((this.byUid.get(uid) ?? 0) + count > this.share) return false;
    if (uid !== 0 && this.others + count > this.max - this.share) return false;
    return this.total + count <= this.max;
  }

  /** Counts `delta` names in (or out, negative) for `uid`. */
  add(uid: number, delta: number): void {
    const held = (this.byUid.get(uid) ?? 0) + delta;
    if (held > 0) this.byUid.set(uid, held);
    else this.byUid.delete(uid);
    this.total += delta;
    if (uid !== 0) this.others += delta;
  }
}
