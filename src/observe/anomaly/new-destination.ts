// New destinations: a registrable domain or address prefix, with port and protocol, that an
// identity had not used within the baseline window. An identity that goes somewhere new every day
// (a browser) tells nothing by doing it again: past `noveltyPerDay` new destinations on a usual
// day (the median of its past days), its new destinations are not reported.
import { median } from "./robust.ts";
import { sampleOf, type Finding, type Observation } from "./finding.ts";
import type { SeriesKeys } from "./series-key.ts";

const DAY = 86_400_000;
/** Destinations remembered per identity; past it, the least recently used quarter goes. */
export const MAX_DESTINATIONS = 4096;
/** Days of novelty counts kept. */
const NOVELTY_DAYS = 14;
export const NOVELTY_PER_DAY = 3;

export interface NewDestinationState {
  /** key -> last used (ms). */
  known: Map<string, number>;
  /** New destinations per day, oldest first; the last is today's. */
  novelty: { day: number; count: number }[];
}

export function newDestinationState(): NewDestinationState {
  return { known: new Map(), novelty: [] };
}

/** Records the use; a finding when the destination is new to the identity. */
export function observeDestination(
  s: NewDestinationState,
  o: Observation,
  /** The record's keys; null unless an egress connection's first record. */
  keys: SeriesKeys | null,
  baselineMs: number,
  /** Count this new destination in the identity's novelty rate (not in its first moments,
   * when everything is new). */
  countNovelty: boolean,
): Finding | null {
  if (!o.egress || !o.first || !keys) return null;
  const key = keys.destinationKey;
  const last = s.known.get(key);
  s.known.set(key, o.timeMs);
  if (s.known.size > MAX_DESTINATIONS) forgetOldest(s.known, MAX_DESTINATIONS / 4);
  if (last !== undefined && o.timeMs - last <= baselineMs) return null;
  const day = Math.floor(o.timeMs / DAY);
  if (countNovelty) {
    let today = s.novelty.at(-1);
    if (today?.day !== day) {
      s.novelty.push((today = { day, count: 0 }));
      if (s.novelty.length > NOVELTY_DAYS) s.novelty.shift();
    }
    today.count++;
  }
  const past = s.novelty.filter((d) => d.day < day).map((d) => d.count);
  // days with nothing new are days too
  const firstDay = s.novelty[0]?.day ?? day;
  while (past.length < Math.min(NOVELTY_DAYS, day - firstDay)) past.push(0);
  const usual = past.length ? median(past) : 0;
  if (usual > NOVELTY_PER_DAY) return null;
  return {
    kind: "new_destination",
    key,
    summary: `first connection to ${o.name ?? o.remote} (${key}): not used by this identity in the baseline window`,
    metric: "connections to this destination in the baseline window",
    value: 0,
    threshold: 1,
    baseline: {
      knownDestinations: s.known.size - 1,
      newDestinationsPerDay: usual,
      windowDays: Math.round(baselineMs / DAY),
    },
    samples: [sampleOf(o)],
  };
}

/**
 * A new-destination state from stored use (the roll-ups): each destination key with when it was
 * first and last used; the ones first used from `countFromMs` on count in the novelty of their
 * day, as they would have when they happened.
 */
export function seedDestinations(
  uses: Map<string, { firstMs: number; lastMs: number }>,
  countFromMs: number,
): NewDestinationState {
  const s = newDestinationState();
  const recent = [...uses].sort((a, b) => a[1].lastMs - b[1].lastMs).slice(-MAX_DESTINATIONS);
  for (const [key, use] of recent) s.known.set(key, use.lastMs);
  const perDay = new Map<number, number>();
  for (const use of uses.values()) {
    if (use.firstMs < countFromMs) continue;
    const day = Math.floor(use.firstMs / DAY);
    perDay.set(day, (perDay.get(day) ?? 0) + 1);
  }
  s.novelty = [...perDay]
    .sort((a, b) => a[0] - b[0])
    .slice(-NOVELTY_DAYS)
    .map(([day, count]) => ({ day, count }));
  return s;
}

/**
 * Which of `times` are among the `count` oldest: those before `cut`, and the first `ties` of
 * those at `cut` (in the order given), so exactly `count` go whatever the ties (a scan's
 * records share a timestamp).
 */
export function oldestCut(times: Float64Array, count: number): { cut: number; ties: number } {
  const n = Math.min(Math.floor(count), times.length);
  if (n <= 0) return { cut: -Infinity, ties: 0 };
  // a typed array sorts by number without a comparator call per step
  const sorted = times.slice().sort();
  const cut = sorted[n - 1]!;
  let before = n - 1;
  while (before > 0 && sorted[before - 1] === cut) before--;
  return { cut, ties: n - before };
}

/** Removes exactly the `count` least recently used entries (values are last-use times). */
export function forgetOldest<K>(m: Map<K, number>, count: number): void {
  const times = new Float64Array(m.size);
  let i = 0;
  for (const t of m.values()) times[i++] = t;
  const { cut, ties: atCut } = oldestCut(times, count);
  let ties = atCut;
  for (const [k, t] of m)
    if (t < cut) m.delete(k);
    else if (t === cut && ties > 0) {
      m.delete(k);
      ties--;
    }
}
