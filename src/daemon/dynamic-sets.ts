// Dynamic sets (`sets: { NAME: { dynamic: true } }`): entries added and removed at run time
// (`moat set add|del`, POST /v1/sets/add|del), each with its own expiry, kept in the set store
// (NAME.dynamic, read by the policy loader like a set file) so they survive a restart. A change
// or an expiry writes the file and compiles the running policy again when the entries in force
// change: the datapath swaps its tables atomically, as for any reload.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { SetChange, SetChangeOutcome, SetView } from "../api/index.ts";
import {
  formatDynamicSetFile,
  liveEntries,
  parseAddressEntry,
  parseDynamicSetFile,
  printable,
  timeoutTooLong,
  type DynamicEntry,
  type PolicyModel,
  type PolicySet,
} from "../config/index.ts";
import { writeTrustedFileAtomic } from "../host/index.ts";

export interface DynamicSetOptions {
  /** The set store (NAME.dynamic files). */
  dir: string;
  model: () => PolicyModel;
  /** Compiles the running policy again (its sets re-read); resolves once applied. */
  refresh: (reason: string) => Promise<void>;
  generation: () => number;
  /** A line for the audit log and the daemon's output. */
  audit: (line: string) => void;
  log: (line: string) => void;
  now?: () => number;
}

/**
 * A change's answer; an add taken in another form than written (a CIDR with host bits as its
 * network, an IPv4-mapped address as its IPv4 address) names the entry stored and says why.
 */
export type SetChangeAnswer =
  | (Extract<SetChangeOutcome, { ok: true }> & { entry?: string; warnings?: string[] })
  | Extract<SetChangeOutcome, { ok: false }>;

export interface DynamicSets {
  list(): SetView[];
  change(change: SetChange, who: string): Promise<SetChangeAnswer>;
  /**
   * Many changes to set `name` at once, one re-apply (a bouncer's poll): `replace` starts from
   * no entries; adds past max_entries are dropped and counted in the answer. With `renew` (a
   * quarantine's match) an add never shortens an entry already there: a permanent entry, or one
   * that expires later, stays as it is.
   */
  bulk(
    name: string,
    change: { adds: DynamicEntry[]; dels: string[]; replace: boolean; renew?: boolean },
    reason: string,
  ): Promise<{ entries: number; dropped: number }>;
  /** The running policy changed: expiries are scheduled for its dynamic sets. */
  applied(): void;
  close(): void;
}

/** Whether `a` expires no sooner than `b` (no expiry: never). */
const outlasts = (a: DynamicEntry, b: DynamicEntry) =>
  a.expires === null || (b.expires !== null && a.expires >= b.expires);

/** Whether `a` and `b` name the same entries, whatever their order: a policy loads the same. */
function sameEntries(a: readonly string[], b: readonly string[]): boolean {
  const held = new Set(a);
  const other = new Set(b);
  return held.size === other.size && [...other].every((e) => held.has(e));
}

const written = (entries: readonly DynamicEntry[]) => entries.map((e) => e.entry);

/** The entries set `set` holds in a compiled policy, as written. */
function inForce(set: PolicySet | undefined): string[] {
  const texts: string[] = [];
  for (const e of set?.entries ?? []) texts.push(e.text);
  return texts;
}

/** The addresses of an entry, as parseAddressEntry reads them. */
interface Interval {
  family: 4 | 6;
  start: bigint;
  end: bigint;
  /** A CIDR written with host bits set ("10.1.2.3/8"). */
  hostBitsSet?: boolean;
}

/** The addresses an entry stands for; undefined for one that is not an address interval. */
function intervalOf(text: string): Interval | undefined {
  const parsed = parseAddressEntry(text);
  if (!parsed.ok || parsed.value.negate || parsed.value.target.kind !== "interval") return;
  return parsed.value.target;
}

/** Whether two entries name the same addresses, whatever their form (case, zeros, "/32"). */
const sameAddresses = (a: Interval, b: Interval) =>
  a.family === b.family && a.start === b.start && a.end === b.end;

const MAPPED_PREFIX = 0xffffn << 32n;
const isMapped = (value: bigint) => value >> 32n === 0xffffn;

/**
 * An interval inside ::ffff:0:0/96 as the IPv4 addresses it carries: moat judges a connection
 * to an IPv4-mapped address as IPv4 (that is what is on the wire), so the mapped form never
 * matches. Any other interval as it is.
 */
function unmapped(i: Interval): Interval {
  if (i.family !== 6 || !isMapped(i.start) || !isMapped(i.end)) return i;
  return { family: 4, start: i.start - MAPPED_PREFIX, end: i.end - MAPPED_PREFIX };
}

function addressText(family: 4 | 6, value: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join(".");
  const groups = [112n, 96n, 80n, 64n, 48n, 32n, 16n, 0n].map((s) =>
    ((value >> s) & 0xffffn).toString(16),
  );
  // the URL parser writes an IPv6 host in its canonical form (RFC 5952: "::", lower case)
  return new URL(`http://[${groups.join(":")}]/`).hostname.slice(1, -1);
}

/** An interval as an entry: an address, a CIDR, or a range "a-b". */
function intervalText({ family, start, end }: Interval): string {
  if (start === end) return addressText(family, start);
  const size = end - start + 1n;
  const hostBits = size.toString(2).length - 1;
  return size === 1n << BigInt(hostBits) && start % size === 0n
    ? `${addressText(family, start)}/${(family === 4 ? 32 : 128) - hostBits}`
    : `${addressText(family, start)}-${addressText(family, end)}`;
}

/**
 * The entry an add stores for `text` and what it says about it: a CIDR with host bits is its
 * network (as a set file's is read, with the same warning), an IPv4-mapped address the IPv4
 * address it carries; any other entry is stored as written.
 */
export function storedForm(text: string, written: Interval): { entry: string; warnings: string[] } {
  const warnings: string[] = [];
  if (written.hostBitsSet)
    warnings.push(`'${text}' has host bits set: it means ${intervalText(written)}`);
  const carried = unmapped(written);
  if (carried !== written)
    warnings.push(
      `'${text}' is IPv4-mapped: a connection to it is judged as IPv4, so ${intervalText(carried)} is added`,
    );
  return { entry: warnings.length > 0 ? intervalText(carried) : text, warnings };
}

/** Why `text` is not an entry of a dynamic set: said once, escaped (a line break shows as \n). */
function badEntry(text: string, why: string): string {
  return printable(why.startsWith(`'${text}' `) ? why : `'${text}': ${why}`);
}

/**
 * The longest the expiry timer waits before it looks at the wall clock again: a timer runs on
 * the monotonic clock, and an entry expires by the wall clock, which may step (NTP, a resume).
 */
const RECHECK_MS = 10_000;
/** After an expiry whose file could not be written: the wait before it is tried again. */
const RETRY_MS = 60_000;
/** Expired entries an audit line names; more are counted. */
const LISTED = 10;

/** The audit line of `gone`, the entries of set `name` that expired. */
function expiryLine(name: string, gone: readonly DynamicEntry[]): string {
  const entries = written(gone);
  if (entries.length <= LISTED) return `set ${name}: expired ${entries.join(", ")}`;
  const named = entries.slice(0, LISTED).join(", ");
  return `set ${name}: expired ${entries.length} entries (${named} and ${entries.length - LISTED} more)`;
}

/** A set's entries as stored, split at `now` into those still live and those that expired. */
function splitExpired(all: DynamicEntry[], now: number) {
  const live = liveEntries(all, now);
  return { live, gone: all.filter((e) => !live.includes(e)) };
}

export function dynamicSets(options: DynamicSetOptions): DynamicSets {
  const { dir, model, log } = options;
  const now = options.now ?? Date.now;
  let timer: NodeJS.Timeout | undefined;
  /** When (wall clock, ms) the next entry expires. */
  let due = Infinity;
  let closed = false;

  const fileOf = (name: string) => join(dir, `${name}.dynamic`);
  function read(name: string): DynamicEntry[] {
    try {
      return parseDynamicSetFile(readFileSync(fileOf(name), "utf8"));
    } catch {
      return [];
    }
  }
  function write(name: string, entries: DynamicEntry[]): void {
    // the store is made (0700) when first written: a policy with no dynamic set never needs it
    writeTrustedFileAtomic(fileOf(name), formatDynamicSetFile(entries), {
      what: "dynamic set file",
    });
  }
  const dynamicNames = () =>
    [...model().sets.values()].filter((s) => s.origin?.kind === "dynamic").map((s) => s.name);

  /**
   * Drops expired entries from every dynamic set file, auditing them (one line a set); says
   * whether the policy in force holds entries that are not live, and which files could not be
   * written.
   */
  function prune(): { stale: boolean; failed: string[] } {
    let stale = false;
    const failed: string[] = [];
    for (const name of dynamicNames()) {
      const { live, gone } = splitExpired(read(name), now());
      if (gone.length === 0) continue;
      if (!sameEntries(inForce(model().sets.get(name)), written(live))) stale = true;
      try {
        write(name, live);
      } catch (err) {
        failed.push((err as Error).message);
        continue;
      }
      options.audit(expiryLine(name, gone));
    }
    return { stale, failed };
  }

  function schedule(): void {
    clearTimeout(timer);
    if (closed) return;
    due = Infinity;
    for (const name of dynamicNames())
      for (const e of read(name)) if (e.expires !== null) due = Math.min(due, e.expires);
    if (due !== Infinity) arm();
  }

  /** Waits for `due` by the wall clock, looking at it again at least every RECHECK_MS. */
  function arm(): void {
    // a little after the expiry: the loader, reading at that time, leaves the entry out
    const wait = Math.min(Math.max(due - now() + 50, 0), RECHECK_MS);
    timer = setTimeout(() => (now() >= due ? void expire() : arm()), wait);
    timer.unref();
  }

  async function expire(): Promise<void> {
    const { stale, failed } = prune();
    // an expired entry the policy in force still holds goes now, written to its file or not:
    // the loader leaves it out all the same. One the policy already leaves out (it expired
    // while no daemon ran) needs no compile
    if (stale) {
      await options.refresh("dynamic set entries expired").catch((err: unknown) => {
        log(`dynamic sets: expired entries not applied: ${(err as Error).message}`);
      });
    }
    if (failed.length > 0) {
      // the state folder cannot be written (full, read-only): tried again later, not in a loop
      log(
        `dynamic sets: expired entries could not be removed (${failed.join("; ")}); trying again in ${RETRY_MS / 1000} s`,
      );
      clearTimeout(timer);
      if (closed) return;
      timer = setTimeout(() => void expire(), RETRY_MS);
      timer.unref();
      return;
    }
    schedule();
  }

  function refusal(status: number, code: string, message: string): SetChangeAnswer {
    return { ok: false, status, code, message };
  }

  return {
    list() {
      const views: SetView[] = [];
      for (const set of model().sets.values()) {
        if (set.origin?.kind !== "dynamic") continue;
        const entries = liveEntries(read(set.name), now());
        views.push({
          name: set.name,
          kind: "dynamic",
          count: set.entries.length,
          entries: entries.map((e) => ({
            entry: e.entry,
            expires: e.expires === null ? null : new Date(e.expires).toISOString(),
          })),
          ...(set.origin.timeoutSeconds !== undefined
            ? { timeout: set.origin.timeoutSeconds }
            : {}),
          ...(set.origin.maxEntries !== undefined ? { maxEntries: set.origin.maxEntries } : {}),
        });
      }
      return views;
    },

    async change(change, who) {
      const set = model().sets.get(change.set);
      if (!set || set.origin?.kind !== "dynamic")
        return refusal(
          404,
          "ENOSET",
          set
            ? `set '${change.set}' is not dynamic (declare it as { dynamic: true })`
            : `the running policy has no set '${change.set}'`,
        );
      const text = change.entry.trim();
      const parsed = parseAddressEntry(text);
      if (!parsed.ok || parsed.value.negate || parsed.value.target.kind !== "interval")
        return refusal(
          400,
          "EBADENTRY",
          badEntry(
            text,
            parsed.ok ? "a dynamic set holds addresses, CIDRs and ranges" : parsed.error,
          ),
        );
      const written = parsed.value.target;
      const { entry, warnings } =
        change.op === "add" ? storedForm(text, written) : { entry: text, warnings: [] };
      const { live: entries, gone } = splitExpired(read(change.set), now());
      // the entry already there for these addresses, in whatever form it was written
      const wanted = unmapped(written);
      const at = entries.findIndex((e) => {
        const held = intervalOf(e.entry);
        return held !== undefined && sameAddresses(unmapped(held), wanted);
      });
      if (change.op === "del") {
        if (at < 0) return refusal(404, "ENOENTRY", `'${text}' is not in set '${change.set}'`);
        entries.splice(at, 1);
      } else {
        const seconds = change.timeoutSeconds ?? set.origin.timeoutSeconds;
        const tooLong = seconds === undefined ? undefined : timeoutTooLong(seconds);
        if (tooLong)
          return refusal(
            400,
            "EBADTIMEOUT",
            `${tooLong}; leave it out for an entry that does not expire`,
          );
        const expires = seconds === undefined ? null : now() + seconds * 1000;
        if (at >= 0) entries[at] = { entry, expires };
        else if (entries.length >= (set.origin.maxEntries ?? Infinity))
          return refusal(
            409,
            "ESETFULL",
            `set '${change.set}' is full (max_entries ${set.origin.maxEntries}): nothing was evicted`,
          );
        else entries.push({ entry, expires });
      }
      write(change.set, entries);
      if (gone.length > 0) options.audit(expiryLine(change.set, gone));
      options.audit(`set ${change.set}: ${change.op} ${entry} by ${who}`);
      try {
        await options.refresh(`set ${change.set} changed`);
      } catch (err) {
        // the file keeps the change: the next policy that compiles (a fixed set file) takes it
        return refusal(
          500,
          "ENOTAPPLIED",
          `set '${change.set}': the change is stored but not in force: ${(err as Error).message}`,
        );
      } finally {
        schedule();
      }
      const answer = {
        ok: true as const,
        generation: options.generation(),
        entries: entries.length,
      };
      return warnings.length > 0 ? { ...answer, entry, warnings } : answer;
    },

    async bulk(name, { adds, dels, replace, renew = false }, reason) {
      const set = model().sets.get(name);
      const max = set?.origin?.maxEntries ?? Infinity;
      const all = read(name);
      const { live: stored, gone } = splitExpired(all, now());
      const before = replace ? [] : stored;
      const byEntry = new Map(before.map((e) => [e.entry, e]));
      for (const d of dels) byEntry.delete(d);
      let dropped = 0;
      // a renewal that found every entry lasting longer already changes nothing: no re-apply
      let kept = 0;
      for (const a of adds) {
        const had = byEntry.get(a.entry);
        if (!had && byEntry.size >= max) dropped++;
        else if (renew && had && outlasts(had, a)) kept++;
        else byEntry.set(a.entry, a);
      }
      const entries = liveEntries([...byEntry.values()], now());
      const changed = replace || adds.length > kept || dels.length > 0;
      if (!changed) return { entries: entries.length, dropped };
      write(name, entries);
      if (gone.length > 0) options.audit(expiryLine(name, gone));
      try {
        // only the expiries changed (a bouncer's startup poll bringing the bans the store held):
        // a compile would load the entries it loads now, so none is made. Both the file before
        // this write and the policy in force are compared: an entry that expired before its
        // timer ran is gone from the file's live entries, not from the policy; one in the file
        // may be in a compile under way, not yet in force
        const next = written(entries);
        const unchanged = sameEntries(written(all), next) && sameEntries(inForce(set), next);
        if (!unchanged) await options.refresh(reason);
      } finally {
        schedule();
      }
      return { entries: entries.length, dropped };
    },

    applied: schedule,
    close() {
      closed = true;
      clearTimeout(timer);
    },
  };
}

/** Coalesces refreshes: a change asked while none is waiting to start gets one; later asks join it. */
export function joinedRefresh(
  run: (reason: string) => Promise<void>,
): (reason: string) => Promise<void> {
  let previous: Promise<void> = Promise.resolve();
  let waiting: Promise<void> | null = null;
  return (reason) => {
    if (waiting) return waiting;
    const next = previous.then(async () => {
      waiting = null;
      await run(reason);
    });
    waiting = next;
    previous = next.catch(() => {});
    return next;
  };
}
