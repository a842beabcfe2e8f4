// The binding store: which names each identity learned for each address from trusted DNS
// answers (and /etc/hosts, for every identity), and until when. It is the source of the kernel's
// bindings: at a reload every binding is written into the new slot with the new image's name
// classes (bindingsFor), a sweep unbinds what expired, and events read an address's names here.
import {
  identityKey,
  ZERO_IDENTITY,
  type ClassesOf,
  type JournaledName,
  type JournalKey,
  type NameBinding,
  type NameIdentity,
  type NameKey,
} from "./ports.ts";
import { dnsName } from "./dns-name.ts";
import { NameShares } from "./name-shares.ts";
import { unmapped } from "./trusted.ts";

/** The expiry of a binding that never expires (/etc/hosts). */
export const NEVER = 0xffff_ffff_ffff_ffffn;
const NS = 1_000_000_000n;
/**
 * A refreshed binding (the same names asked again) is written with this much to spare, and not
 * written again while what the kernel and the journal hold still covers the refresh: a name asked
 * thousands of times a second costs two map writes every few seconds, not two per query. The
 * sweep still unbinds by the store's own expiry; the kernel's is the backstop.
 */
const REFRESH_STEP_NS = 5n * NS;
/**
 * The names one identity keeps for one address. A zone that answers every name with the same
 * address would otherwise give it one more name per lookup, and every answer works out the
 * binding's class from all of them (and every connection event to it lists them all). Past it,
 * the name that expires first goes (never one of the answer bringing the new name).
 */
export const MAX_NAMES_PER_BINDING = 64;

interface Entry {
  identity: NameIdentity;
  ip: string;
  /** name -> expiry (monotonic ns). */
  names: Map<string, bigint>;
  /** The class written into the live slot (0: not written). */
  nclass: number;
  /** The expiry the live slot holds (0: none written). */
  written: bigint;
  /** name -> the expiry the journal holds. */
  journaled: Map<string, bigint>;
  /** The live slot has what `nclass` and `written` say: only a longer expiry needs a write. */
  clean: boolean;
}

export interface LearnedAddress {
  ip: string;
  ttlSeconds: number;
  /** The place of its record's owner in the answer's names: it gets the names up to there. */
  ownerIndex: number;
}

export interface StoreOptions {
  /** Now, on the kernel's clock (bpf_ktime_get_ns). */
  now: () => bigint;
  minTtlSeconds: () => number;
  graceSeconds: () => number;
  /** Whether the identity has a live tracked connection to the address (keeps the binding). */
  liveConnection?: (key: NameKey) => boolean;
  /**
   * The names journal (the kernel's, kept across a restart): each name made, refreshed or
   * extended is recorded, each expired one forgotten. /etc/hosts names are not journaled.
   */
  journal?: {
    record(names: JournaledName[]): void;
    forget(keys: JournalKey[]): void;
  };
  /** The names held at most (default MAX_NAMES), a quarter of them per uid (NameShares). */
  maxNames?: number;
}

/** What a sweep changed in the live slot. */
export interface SweepResult {
  bind: NameBinding[];
  unbind: NameKey[];
}

/**
 * The store's key of an identity's address, made once per identity object and address: the proxy
 * keeps a client's identity object for a while and asks the store with it several times per query
 * (its bigints made text, the address unmapped, all joined, for every ask).
 */
const keysByIdentity = new WeakMap<NameIdentity, { identity: string; byIp: Map<string, string> }>();
/** Addresses remembered per identity object; past it, its keys are made again as asked. */
const KEYS_PER_IDENTITY = 4096;
function keysOf(identity: NameIdentity): { identity: string; byIp: Map<string, string> } {
  let keys = keysByIdentity.get(identity);
  if (!keys)
    keysByIdentity.set(identity, (keys = { identity: identityKey(identity), byIp: new Map() }));
  return keys;
}
function keyOf(identity: NameIdentity, ip: string): string {
  return keyIn(keysOf(identity), ip);
}
function keyIn(keys: { identity: string; byIp: Map<string, string> }, ip: string): string {
  let key = keys.byIp.get(ip);
  if (key === undefined) {
    if (keys.byIp.size >= KEYS_PER_IDENTITY) keys.byIp.clear();
    key = `${keys.identity}|${unmapped(ip).toLowerCase()}`;
    keys.byIp.set(ip, key);
  }
  return key;
}

export class BindingStore {
  private readonly entries = new Map<string, Entry>();
  private readonly options: StoreOptions;
  /** The names held, by the uid whose lookups made them. */
  private readonly shares: NameShares;
  /** sharedClassNames by address, for the classes of `sharedFor`. */
  private readonly sharedByIp = new Map<string, readonly string[]>();
  private sharedFor: ClassesOf | null = null;
  /** The life of the last address learned, by its TTL, floor and grace (most answers repeat them). */
  private life = { ttlSeconds: Number.NaN, floor: Number.NaN, grace: Number.NaN, ns: 0n };

  constructor(options: StoreOptions) {
    this.options = options;
    this.shares = new NameShares(options.maxNames);
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * Whether the store has room for the names `learn` would add for this answer (a name the
   * identity has for the address already, or one that takes the place of another, adds none).
   */
  hasRoom(
    identity: NameIdentity,
    names: readonly string[],
    addresses: readonly LearnedAddress[],
  ): boolean {
    if (isZero(identity)) return true;
    // room for every name on every address: the usual answer, no name looked up
    const most = addresses.length * Math.min(names.length, MAX_NAMES_PER_BINDING);
    if (this.shares.room(identity.uid, most)) return true;
    const keys = keysOf(identity);
    let added = 0;
    for (const a of addresses) {
      const had = this.entries.get(keyIn(keys, a.ip))?.names;
      const last = Math.min(a.ownerIndex, names.length - 1);
      let fresh = 0;
      for (let i = 0; i <= last; i++) if (!had?.has(dnsName(names[i]!))) fresh++;
      added += Math.min(fresh, MAX_NAMES_PER_BINDING - (had?.size ?? 0));
    }
    return this.shares.room(identity.uid, added);
  }

  /**
   * Merges a trusted answer: `names` are the query and its CNAME chain in order; an address gets
   * its record's owner and the names before it (the aliases of the owner), never one after it
   * (an answer's A record for the query's own name is no address of the CNAME's target), living
   * max(ttl, min_ttl) + grace. Returns the bindings to write into the live slot (those whose
   * class is not 0), with `classesOf` of the live image.
   */
  learn(
    identity: NameIdentity,
    names: readonly string[],
    addresses: readonly LearnedAddress[],
    classesOf: ClassesOf,
  ): NameBinding[] {
    const now = this.options.now();
    const floor = this.options.minTtlSeconds();
    const grace = this.options.graceSeconds();
    const out: NameBinding[] = [];
    const journaled: JournaledName[] = [];
    const evicted: JournalKey[] = [];
    for (const a of addresses) {
      const expires = now + this.lifeNs(a.ttlSeconds, floor, grace);
      const entry = this.entryFor(identity, a.ip);
      let added = false;
      let latest = 0n;
      const last = Math.min(a.ownerIndex, names.length - 1);
      for (let i = 0; i <= last; i++) {
        const name = dnsName(names[i]!);
        const had = entry.names.get(name) ?? 0n;
        const next = had === NEVER ? NEVER : expires > had ? expires : had;
        if (next > latest) latest = next;
        if (next === had) continue;
        if (had === 0n) {
          added = true;
          this.counted(entry, 1);
          if (entry.names.size >= MAX_NAMES_PER_BINDING && evictSoonest(entry, names, evicted))
            this.counted(entry, -1);
        }
        entry.names.set(name, next);
        if (next === NEVER) continue;
        // a new name is journaled as it lives; a refresh with a step to spare, once per step
        const kept = entry.journaled.get(name) ?? 0n;
        if (had !== 0n && kept >= next) continue;
        const until = had === 0n ? next : next + REFRESH_STEP_NS;
        entry.journaled.set(name, until);
        journaled.push({ identity, ip: entry.ip, name, expiresNs: until });
      }
      if (!added && entry.clean) {
        // the same names again: the class is the same; a longer life is written a step ahead
        if (entry.nclass === 0 || entry.written >= latest) continue;
        let expiresNs = 0n;
        for (const e of entry.names.values()) if (e > expiresNs) expiresNs = e;
        if (expiresNs !== NEVER) expiresNs += REFRESH_STEP_NS;
        entry.written = expiresNs;
        out.push({ identity: entry.identity, ip: entry.ip, nclass: entry.nclass, expiresNs });
        continue;
      }
      const binding = this.bindingOf(entry, classesOf);
      this.written(entry, binding);
      if (binding.nclass !== 0) out.push(binding);
    }
    if (evicted.length) this.options.journal?.forget(evicted);
    if (journaled.length) this.options.journal?.record(journaled);
    return out;
  }

  /** max(ttl, floor) + grace in ns (the grace rounded up), worked out again when one changes. */
  private lifeNs(ttlSeconds: number, floor: number, grace: number): bigint {
    const l = this.life;
    if (l.ttlSeconds !== ttlSeconds || l.floor !== floor || l.grace !== grace) {
      const ttl = boundedTtl(ttlSeconds);
      const seconds = BigInt(Math.ceil(Math.max(ttl, floor))) + BigInt(Math.ceil(grace));
      this.life = { ttlSeconds, floor, grace, ns: seconds * NS };
    }
    return this.life.ns;
  }

  /**
   * Bindings `learn` returned that the kernel's map did not take (it was full): the next answer
   * for them writes them again.
   */
  unwritten(bindings: readonly NameBinding[]): void {
    for (const b of bindings) {
      const entry = this.entries.get(keyOf(b.identity, b.ip));
      if (entry) entry.clean = false;
    }
  }

  /**
   * Takes in the names a previous daemon journaled (still live): the store knows them before
   * the first policy's bindings are computed. The journal has them already.
   */
  restore(names: readonly JournaledName[]): void {
    const evicted: JournalKey[] = [];
    for (const n of names) {
      if (isZero(n.identity)) continue;
      const entry = this.entryFor(n.identity, n.ip);
      const name = dnsName(n.name);
      const had = entry.names.get(name) ?? 0n;
      if (n.expiresNs > had) {
        if (had === 0n) {
          this.counted(entry, 1);
          if (entry.names.size >= MAX_NAMES_PER_BINDING && evictSoonest(entry, [], evicted))
            this.counted(entry, -1);
        }
        entry.names.set(name, n.expiresNs);
        entry.journaled.set(name, n.expiresNs);
      }
    }
    if (evicted.length) this.options.journal?.forget(evicted);
  }

  /** Replaces the bindings every identity shares (/etc/hosts): name -> addresses. */
  setShared(hosts: ReadonlyMap<string, readonly string[]>, classesOf: ClassesOf): SweepResult {
    this.sharedByIp.clear();
    const before = new Set([...this.entries].filter(([, e]) => isZero(e.identity)).map(([k]) => k));
    const next = new Map<string, Set<string>>();
    for (const [name, ips] of hosts)
      for (const ip of ips) {
        const set = next.get(ip) ?? new Set<string>();
        set.add(dnsName(name));
        next.set(ip, set);
      }
    const result: SweepResult = { bind: [], unbind: [] };
    for (const [ip, names] of next) {
      const entry = this.entryFor(ZERO_IDENTITY, ip);
      before.delete(keyOf(ZERO_IDENTITY, ip));
      entry.names = new Map([...names].map((n) => [n, NEVER]));
      entry.clean = false;
      this.update(entry, classesOf, result);
    }
    const changed = new Set(next.keys());
    for (const key of before) {
      const entry = this.entries.get(key);
      if (!entry) continue;
      this.entries.delete(key);
      changed.add(entry.ip);
      if (entry.nclass !== 0) result.unbind.push({ identity: entry.identity, ip: entry.ip });
    }
    // the identities' own bindings of those addresses carry the shared names
    for (const entry of this.entries.values())
      if (!isZero(entry.identity) && changed.has(entry.ip)) this.update(entry, classesOf, result);
    return result;
  }

  /** Every binding with its class in a new image (for its slot, before the flip). */
  bindingsFor(classesOf: ClassesOf): NameBinding[] {
    const out: NameBinding[] = [];
    for (const entry of this.entries.values()) {
      const binding = this.bindingOf(entry, classesOf);
      this.written(entry, binding);
      if (binding.nclass !== 0) out.push(binding);
    }
    return out;
  }

  /** The live names of an address for an identity, then those every identity shares. */
  namesOf(identity: NameIdentity, ip: string): string[] {
    const keys = keysOf(identity);
    const own = this.entries.get(keyIn(keys, ip));
    const shared =
      keys.identity === ZERO_KEY ? undefined : this.entries.get(keyIn(keysOf(ZERO_IDENTITY), ip));
    if (!own && !shared) return []; // most asks of a server's address: nothing learned for it
    const now = this.options.now();
    const names: string[] = [];
    for (const [name, expires] of own?.names ?? []) if (expires > now) names.push(name);
    // the identity's own live names first, then the shared ones not among them (each name once)
    for (const [name, expires] of shared?.names ?? []) {
      if (expires <= now) continue;
      const mine = own?.names.get(name);
      if (mine === undefined || mine <= now) names.push(name);
    }
    return names;
  }

  /**
   * Drops expired names. A binding about to expire (within `horizonNs`, the time to the next
   * sweep) whose identity still has a live connection to the address is extended first, so the
   * kernel never sees it lapse while the connection lives: its names live to the horizon plus a
   * grace period. A binding left with no names is removed. Returns what the live slot must
   * change.
   */
  sweep(classesOf: ClassesOf, horizonNs = 0n): SweepResult {
    const now = this.options.now();
    const grace = BigInt(Math.ceil(this.options.graceSeconds())) * NS;
    const result: SweepResult = { bind: [], unbind: [] };
    const extended: JournaledName[] = [];
    const expired: JournalKey[] = [];
    for (const [key, entry] of this.entries) {
      let latest = 0n;
      for (const e of entry.names.values()) if (e > latest) latest = e;
      if (latest > now + horizonNs) {
        if (this.dropExpired(entry, now, expired)) this.update(entry, classesOf, result);
        continue;
      }
      const keep = { identity: entry.identity, ip: entry.ip };
      if (this.options.liveConnection?.(keep)) {
        const until = now + horizonNs + grace;
        for (const [n, e] of entry.names)
          if (e < until) {
            entry.names.set(n, until);
            entry.journaled.set(n, until);
            extended.push({ ...keep, name: n, expiresNs: until });
          }
        this.update(entry, classesOf, result);
        continue;
      }
      if (!this.dropExpired(entry, now, expired)) continue;
      if (entry.names.size === 0) {
        this.entries.delete(key);
        if (entry.nclass !== 0) result.unbind.push(keep);
        continue;
      }
      this.update(entry, classesOf, result);
    }
    if (extended.length) this.options.journal?.record(extended);
    if (expired.length) this.options.journal?.forget(expired);
    return result;
  }

  /** Whether any name of the entry had expired (they are gone now, and listed in `gone`). */
  private dropExpired(entry: Entry, now: bigint, gone: JournalKey[]): boolean {
    let dropped = false;
    for (const [n, e] of entry.names)
      if (e <= now) {
        entry.names.delete(n);
        entry.journaled.delete(n);
        if (!isZero(entry.identity)) {
          gone.push({ identity: entry.identity, ip: entry.ip, name: n });
          this.counted(entry, -1);
        }
        dropped = true;
      }
    return dropped;
  }

  /** Counts names the entry gained (or lost: negative) in its uid's share; /etc/hosts' are not. */
  private counted(entry: Entry, delta: number): void {
    if (!isZero(entry.identity)) this.shares.add(entry.identity.uid, delta);
  }

  /** The entry's binding goes into the live slot (or out of it, when its class became 0). */
  private update(entry: Entry, classesOf: ClassesOf, result: SweepResult): void {
    const binding = this.bindingOf(entry, classesOf);
    if (binding.nclass !== 0) result.bind.push(binding);
    else if (entry.nclass !== 0) result.unbind.push({ identity: entry.identity, ip: entry.ip });
    this.written(entry, binding);
  }

  /** What the live slot holds of the entry once `binding` is written (class 0: nothing). */
  private written(entry: Entry, binding: NameBinding): void {
    entry.nclass = binding.nclass;
    entry.written = binding.nclass !== 0 ? binding.expiresNs : 0n;
    entry.clean = true;
  }

  private entryFor(identity: NameIdentity, ip: string): Entry {
    const key = keyOf(identity, ip);
    let entry = this.entries.get(key);
    if (!entry) {
      entry = {
        identity,
        ip: unmapped(ip),
        names: new Map(),
        nclass: 0,
        written: 0n,
        journaled: new Map(),
        clean: false,
      };
      this.entries.set(key, entry);
    }
    return entry;
  }

  /**
   * The names /etc/hosts gives `ip` that a binding's class needs: one per class they have one by
   * one (in the file's order), none of class 0. A set's class is the union of what its names
   * match one by one, so these give any binding of `ip` the class all of them would; a hosts
   * file listing thousands of names for one address (a blocklist's 0.0.0.0) then costs an
   * answer binding that address the few names that match patterns, not all of them. Kept until
   * the hosts file or the classes change.
   */
  private sharedClassNames(ip: string, classesOf: ClassesOf): readonly string[] {
    if (this.sharedFor !== classesOf) {
      this.sharedByIp.clear();
      this.sharedFor = classesOf;
    }
    const known = this.sharedByIp.get(ip);
    if (known) return known;
    // most addresses: none in the hosts file (nothing kept for them)
    const listed = this.entries.get(keyOf(ZERO_IDENTITY, ip));
    if (!listed) return NO_NAMES;
    const seen = new Set<number>();
    const kept: string[] = [];
    for (const name of listed.names.keys()) {
      const nclass = classesOf([name]);
      if (nclass === 0 || seen.has(nclass)) continue;
      seen.add(nclass);
      kept.push(name);
    }
    this.sharedByIp.set(ip, kept);
    return kept;
  }

  /**
   * The kernel reads an identity's own binding first and everyone's (/etc/hosts) only when it
   * has none: an identity's binding carries the address's shared names too.
   */
  private bindingOf(entry: Entry, classesOf: ClassesOf): NameBinding {
    let expiresNs = 0n;
    for (const e of entry.names.values()) if (e > expiresNs) expiresNs = e;
    const shared = isZero(entry.identity) ? [] : this.sharedClassNames(entry.ip, classesOf);
    return {
      identity: entry.identity,
      ip: entry.ip,
      nclass: classesOf([...entry.names.keys(), ...shared]),
      expiresNs,
    };
  }
}

/**
 * Drops the entry's name that expires first, other than `keep` (the names of the answer being
 * learnt: a chain has at most 16, fewer than an entry holds); its journal entry is listed in
 * `gone`.
 */
function evictSoonest(entry: Entry, keep: readonly string[], gone: JournalKey[]): boolean {
  let soonest: string | null = null;
  let at = NEVER;
  for (const [n, e] of entry.names)
    if (e <= at && !keep.includes(n)) {
      soonest = n;
      at = e;
    }
  if (soonest === null) return false;
  entry.names.delete(soonest);
  if (entry.journaled.delete(soonest))
    gone.push({ identity: entry.identity, ip: entry.ip, name: soonest });
  return true;
}

const ZERO_KEY = identityKey(ZERO_IDENTITY);
const NO_NAMES: readonly string[] = [];
const isZero = (i: NameIdentity): boolean => keysOf(i).identity === ZERO_KEY;

/** The longest an answer's TTL binds, like `dns.min_ttl` and `dns.grace`: one day. */
const MAX_TTL_SECONDS = 86_400;

/** An answer's TTL as it binds: one with the top bit set is 0 (RFC 2181 8), at most a day. */
function boundedTtl(ttlSeconds: number): number {
  if (ttlSeconds >= 0x80000000) return 0;
  return Math.min(ttlSeconds, MAX_TTL_SECONDS);
}
