// The maps a daemon leaves pinned for the next one (docs/datapath.md, "Restart and upgrade"):
// the policy slots, the connection table, socket records, counters, redirect state, events. A
// new daemon adopts each group whose layout version it shares (bpf_map__reuse_fd before load),
// so its programs and the old ones judge with the same state; a group whose layout changed is
// migrated by its registered converter (map-migration.ts), or created empty when there is none.
// A small record map beside them holds each group's layout version and the last policy
// generation, so generations continue even when the policy group is not adopted.
import { existsSync, readdirSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { native } from "./addon.ts";
import { ensureDir } from "./bpffs.ts";
import { converterFor, GroupMigration } from "./map-migration.ts";
import "./map-converters.ts";
import type { BpfMap, BpfObject, MapInfo } from "./native.d.ts";

/**
 * Maps adopted together, with the version of the layout they hold. Bump a group's version
 * when what one of its maps holds changes: its key or value struct in bpf/include/moat_abi.h,
 * its type or flags, or what an entry means. A group is adopted whole or not at all: the
 * policy state names slots of the outer maps, so they only make sense together.
 */
export const MAP_GROUPS: Record<string, { version: number; maps: string[] }> = {
  policy: {
    // 2: moat_meta holds each table image's class counts by image
    // 3: a fourth table image (names), name bindings (tbl_names), moat_rule.flags
    // 4: rate limits (tbl_limits, MOAT_RULE_LIMITED), scrubbing settings (scrub_config)
    // 5: scrub_config's IP header normalisation (min_ttl, flags)
    // 6: the ids signatures' settings (ids_config)
    // 7: moat_meta.proc_folds: process combination steps folded into the next step's table;
    //    the IPv4 directory's /24 blocks and wide layout (tbl_dir4)
    // 8: ids_config holds when its settings began to choose flows (since_ns)
    // 9: macvlans by lower device and MAC address (tbl_proc_stacked, moat_meta.stacked)
    // 10: the directories', u32 tables' and rules' arrays are BPF_F_MMAPABLE (their templates'
    //     flags, which an inner map must share)
    version: 10,
    maps: [
      "state",
      "tbl_dir4",
      "tbl_lpm6",
      "tbl_u32",
      "tbl_remote_y",
      "tbl_rules",
      "tbl_rule_stats",
      "tbl_proc_exe",
      "tbl_proc_uid",
      "tbl_proc_comm",
      "tbl_proc_cgroup",
      "tbl_proc_route",
      "tbl_proc_iface",
      "tbl_proc_stacked",
      "tbl_redirects",
      "tbl_names",
      "tbl_limits",
      "scrub_config",
      "ids_config",
    ],
  },
  // connection ids come from the created-entries counter: adopted with the table they number
  // 2: counters for rate limits and scrubbing (moat_counters grew)
  // 3: counters for the IP header's scrubbing (ttlRaised, dfCleared, ipIdRandomised)
  // 4: counters for the ids signatures' copies (idsCopied, idsLost); MOAT_CT_IDS_DONE
  // 5: moat_ct holds a rate limit's credit and the ids signatures' copy state (160 bytes)
  // 6: moat_ct holds each side's tcp sequence end (176 bytes); moat_frag the policy generation
  //    that passed a first fragment (a record of before has 0: never followed), frags as many
  //    entries as conntrack
  // 7: conntrack holds one entry more than the connections it is sized for (65,537 by default:
  //    twice the buckets; conntrack-size.ts), frags as many as it is sized for
  conntrack: { version: 7, maps: ["conntrack", "frags", "counters"] },
  sockets: { version: 1, maps: ["socks", "owners", "owner_cookies"] },
  // 2: originals keyed by moat_client (the client's endpoint and, for moat's DNS proxy sockets
  //    in another network namespace, that namespace's cookie)
  redirects: { version: 2, maps: ["redirect_targets", "redirect_exempt", "originals"] },
  // the resolvers that bound port 53 (per process): apart from redirects, so a pin tree from
  // before it still has its redirects adopted
  resolvers: { version: 1, maps: ["resolvers"] },
  events: { version: 1, maps: ["events"] },
  quic: { version: 1, maps: ["quic_initials"] },
  // the ids signatures' copies of flows' first bytes (2: what each flow had copied so far is in
  // its conntrack entry, no ids_flows)
  ids: { version: 2, maps: ["ids_records"] },
  flows: { version: 1, maps: ["flow_records"] },
  daemon: { version: 1, maps: ["heartbeat"] },
  // the DNS proxy's names (identity, address, name, expiry): kept apart from the policy group,
  // whose classes they do not depend on, so a policy layout change does not lose them
  names: { version: 1, maps: ["name_journal"] },
  // rate limit state by stable limit id: kept across restarts like the policy's own reloads
  limits: { version: 1, maps: ["limit_state", "limit_leases"] },
  // each CPU's leases of recent sources (the slots in front of limit_leases): apart from the
  // limits group, so a pin tree from before the cache still has its limits adopted
  // 2: one array of every CPU's part, sets of four 64-byte slots (was a per-CPU array of slots)
  limitCache: { version: 2, maps: ["limit_lease_cache"] },
  // each process's executable as it exec'd (task storage, written at exec and fork): a restart
  // that lost it would judge the processes exec'd before it by their current mapping
  exes: { version: 1, maps: ["exe_ids"] },
};

const RECORD_KEY = 16;
const GENERATION = "generation";
const MAP_HASH = 1;

function recordKey(name: string): Buffer {
  const key = Buffer.alloc(RECORD_KEY);
  key.write(name, 0, RECORD_KEY - 1, "utf8");
  return key;
}

/** What a start found pinned and did with it, for the daemon's log. */
export interface Adoption {
  /** Groups whose pinned maps the new programs share. */
  adopted: string[];
  /** Groups created empty, and why (layout changed, size changed, nothing pinned). */
  fresh: { group: string; reason: string }[];
  /** Groups carried from another layout version by a converter: entries copied before load. */
  migrated: { group: string; from: number; to: number; copied: number; note?: string }[];
}

const sameShape = (a: MapInfo, b: Pick<BpfMap, "type" | "keySize" | "valueSize" | "maxEntries">) =>
  a.type === b.type &&
  a.keySize === b.keySize &&
  a.valueSize === b.valueSize &&
  a.maxEntries === b.maxEntries;

/** The pinned maps under one pin root: adopt them into an object before load, pin after. */
export class PinnedMaps {
  readonly root: string;
  readonly dir: string;
  private readonly record: BpfMap;
  /** The last policy generation a daemon applied with these pins (0: none). */
  readonly generation: number;
  private readonly versions = new Map<string, number>();
  /** Groups being migrated, until finishMigrations() copies their delta. */
  private migrations: { group: string; migration: GroupMigration }[] = [];

  constructor(root: string) {
    this.root = root;
    ensureDir(root);
    this.dir = join(root, "maps");
    ensureDir(this.dir);
    const path = join(root, "abi");
    if (existsSync(path)) {
      this.record = native().BpfMap.openPinned(path);
    } else {
      this.record = native().BpfMap.create({
        type: MAP_HASH,
        keySize: RECORD_KEY,
        valueSize: 8,
        maxEntries: 64,
        name: "moat_abi",
      });
      this.record.pin(path);
    }
    for (const group of Object.keys(MAP_GROUPS)) {
      const v = this.record.lookup(recordKey(group));
      if (v) this.versions.set(group, Number(v.readBigUInt64LE()));
    }
    const g = this.record.lookup(recordKey(GENERATION));
    this.generation = g ? Number(g.readBigUInt64LE()) : 0;
  }

  /** No group is pinned: adopt() gives the object nothing (it may then run after load). */
  get empty(): boolean {
    return this.versions.size === 0;
  }

  /**
   * Before load: every group whose pinned maps have this build's layout version and shape
   * becomes the object's (reuse_fd); a group of another version with a converter gets new maps
   * filled from its pinned ones (the copy); the others are created empty by load().
   */
  adopt(object: BpfObject): Adoption {
    const result: Adoption = { adopted: [], fresh: [], migrated: [] };
    const infos = new Map(object.maps().map((m) => [m.name, m]));
    for (const [group, { version, maps }] of Object.entries(MAP_GROUPS)) {
      const pinned = this.versions.get(group);
      if (pinned === undefined) {
        result.fresh.push({ group, reason: "nothing pinned" });
        continue;
      }
      if (pinned !== version) {
        const reason = this.migrate(object, infos, group, pinned, version, result);
        if (reason) result.fresh.push({ group, reason });
        continue;
      }
      const opened: BpfMap[] = [];
      let reason = "";
      for (const name of maps) {
        const path = join(this.dir, name);
        const info = infos.get(name);
        if (!info || !existsSync(path)) {
          reason = `${name} is not pinned`;
          break;
        }
        const map = native().BpfMap.openPinned(path);
        opened.push(map);
        if (!sameShape(info, map)) {
          reason = `${name} has ${map.maxEntries} entries of ${map.keySize}+${map.valueSize} bytes, this build wants ${info.maxEntries} of ${info.keySize}+${info.valueSize}`;
          break;
        }
      }
      if (reason) result.fresh.push({ group, reason });
      else {
        maps.forEach((name, i) => object.reuseMap(name, opened[i] as BpfMap));
        result.adopted.push(group);
      }
      // the object holds its own duplicate of each adopted fd
      for (const m of opened) m.close();
    }
    return result;
  }

  /**
   * The copy: a group pinned with layout `from` gets new maps filled by its converter, given to
   * the object before load. Returns why the group starts empty instead ("" when migrated).
   */
  private migrate(
    object: BpfObject,
    infos: Map<string, MapInfo>,
    group: string,
    from: number,
    to: number,
    result: Adoption,
  ): string {
    const changed = `layout version ${from}, this build has ${to}`;
    const converter = converterFor(group, from, to);
    if (!converter) return `${changed}; no converter`;
    const old = new Map<string, BpfMap>();
    for (const name of MAP_GROUPS[group]?.maps ?? []) {
      const path = join(this.dir, name);
      if (existsSync(path)) old.set(name, native().BpfMap.openPinned(path));
    }
    const migration = new GroupMigration(converter, old);
    try {
      migration.copy(infos);
    } catch (err) {
      return `${changed}; its converter failed: ${(err as Error).message}`;
    }
    for (const [name, map] of migration.maps()) object.reuseMap(name, map);
    this.migrations.push({ group, migration });
    result.migrated.push({
      group,
      from,
      to,
      copied: migration.copied,
      ...(converter.note ? { note: converter.note } : {}),
    });
    return "";
  }

  /**
   * After the links are updated (the new programs use the new maps): copies what the old
   * programs wrote into migrated groups since the copy, then lets the old maps go. Returns one
   * line per group that copied entries.
   */
  finishMigrations(): string[] {
    const lines: string[] = [];
    for (const { group, migration } of this.migrations.splice(0)) {
      if (!migration.copying) {
        migration.close();
        continue;
      }
      try {
        const n = migration.finish();
        lines.push(`pinned ${group} maps: ${n} entries changed during the restart carried over`);
      } catch (err) {
        lines.push(`pinned ${group} maps: the delta was not carried (${(err as Error).message})`);
      }
    }
    return lines;
  }

  /**
   * After load: pins every group's maps (replacing the pins of a group created empty: the old
   * programs keep their maps until their links are updated) and records the layout versions.
   */
  pin(object: BpfObject, adoption: Adoption): void {
    for (const { group } of [...adoption.fresh, ...adoption.migrated]) {
      for (const name of MAP_GROUPS[group]?.maps ?? []) {
        const path = join(this.dir, name);
        if (existsSync(path)) unlinkSync(path);
        const map = object.map(name);
        try {
          map.pin(path);
        } finally {
          map.close();
        }
      }
    }
    const value = Buffer.alloc(8);
    for (const [group, { version }] of Object.entries(MAP_GROUPS)) {
      value.writeBigUInt64LE(BigInt(version));
      this.record.update(recordKey(group), value);
    }
    // pins of maps this build no longer has
    const known = new Set(Object.values(MAP_GROUPS).flatMap((g) => g.maps));
    for (const name of readdirSync(this.dir))
      if (!known.has(name)) unlinkSync(join(this.dir, name));
  }

  /**
   * Pins again the layout record and the maps of `object` whose pins are gone (removed by hand
   * while the daemon ran); returns their paths.
   */
  restore(object: BpfObject): string[] {
    const restored: string[] = [];
    ensureDir(this.root);
    ensureDir(this.dir);
    const record = join(this.root, "abi");
    if (!existsSync(record)) {
      this.record.pin(record);
      restored.push(record);
    }
    for (const { maps } of Object.values(MAP_GROUPS))
      for (const name of maps) {
        const path = join(this.dir, name);
        if (existsSync(path)) continue;
        const map = object.map(name);
        try {
          map.pin(path);
        } finally {
          map.close();
        }
        restored.push(path);
      }
    return restored;
  }

  /** Remembers the live generation, so a next daemon continues after it. */
  setGeneration(generation: number): void {
    const value = Buffer.alloc(8);
    value.writeBigUInt64LE(BigInt(generation));
    this.record.update(recordKey(GENERATION), value);
  }

  close(): void {
    for (const { migration } of this.migrations.splice(0)) migration.close();
    this.record.close();
  }
}
