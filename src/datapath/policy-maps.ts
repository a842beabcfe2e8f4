// Writes a compiled policy (PolicyImage) into the kernel atomically: every table goes into
// a fresh inner map, the inner maps go into the idle slot of their two-slot array-of-maps, the
// idle slot's meta is written, then one write flips `state.active`. Each packet reads `active`
// once and uses that slot's tables and meta only, so it is judged by the old or the new policy,
// never a mix (docs/classifier.md, "Atomic reload").
import {
  LEAN_NO_EXE,
  LEAN_RECORD,
  imageMeta,
  meta as metaCodec,
  ruleStats as ruleStatsCodec,
  scrub as scrubCodec,
  ScrubFlag,
  state as stateCodec,
} from "./abi.ts";
import { native } from "./addon.ts";
import { drain, inTurns } from "./in-turns.ts";
import type { BpfMap, BpfObject, MapBatch } from "./native.d.ts";
import { socketLean, type PolicyImage } from "../policy/compile/kernel-image.ts";
import { GenerationRecord } from "./generations.ts";
import { richRules, ruleName } from "./kept-rules.ts";
import type { NameClasses } from "../policy/compile/names.ts";
import {
  NameMaps,
  deleteBindings,
  readBindings,
  writeBindings,
  type NameBinding,
  type NameIdentity,
} from "./name-maps.ts";
import { RedirectMaps, redirectsMap } from "./redirect-maps.ts";
import { TableReuse } from "./table-reuse.ts";
import { idsSettings, idsSettingsBegun } from "./ids-settings.ts";
import { kernelMonotonicNs } from "./kernel-clock.ts";
import { LimitMaps, limitTailRecord, type LimitSweep } from "./limit-maps.ts";
import type { ImageLimit, TableImage } from "../policy/compile/image.ts";
import {
  BPF_F_INNER_MAP,
  MAP_ARRAY,
  checkImage,
  createMap,
  limitsMap,
  processMaps,
  rulesMap,
  tableMaps,
} from "./table-maps.ts";

/**
 * The outer maps (tbl_NAME) and the tables they hold, in table order (enum moat_lpm_table and
 * enum moat_u32_table in bpf/include/moat_abi.h). Per-image tables are at index
 * (image * tables + t) * 2 + slot, the others at slot (outer_index in bpf/include/maps.h).
 */
export const POLICY_TABLES = {
  dir4: ["remote4", "local4"],
  lpm6: ["remote6", "local6"],
  u32: [
    "port_class",
    "sport_class",
    "lx",
    "px",
    "any_remote",
    "remote_only",
    "proc_a",
    "proc_b",
    "proc_p",
    "proc_d",
  ],
  remote_y: ["remote_y"],
  rules: ["rules"],
  rule_stats: ["rule_stats"],
  proc_exe: ["proc_exe"],
  proc_uid: ["proc_uid"],
  proc_comm: ["proc_comm"],
  proc_cgroup: ["proc_cgroup"],
  proc_route: ["proc_route"],
  proc_iface: ["proc_iface"],
  proc_stacked: ["proc_stacked"],
  redirects: ["redirects"],
  limits: ["limits"],
} as const;

/** Outer maps with a table image dimension; the rest are indexed by slot alone. */
const PER_IMAGE = new Set<string>(["dir4", "lpm6", "u32", "remote_y"]);

/** rule_stats rows are capped so a huge policy on a many-core machine stays within this. */
const RULE_STATS_BUDGET = 64 << 20;
/**
 * A program run (microseconds, not preemptible) that read `active` before a flip is over long
 * before this; a reload sooner than this after the previous one waits for a grace period.
 */
const GRACE_MS = 50;
/** How long tables made ahead of their swap wait for it (a refused or abandoned policy's). */
const AHEAD_MS = 30_000;

export interface ApplyResult {
  generation: number;
  /** Wall time of the whole apply: building the maps, filling them, the flip. */
  ms: number;
}

export interface RuleCounter {
  index: number;
  name: string;
  packets: bigint;
  bytes: bigint;
  /** Connections the rule judged (first packets, and re-judgings after a reload). */
  connections: bigint;
}

/** A slot's generation and the handle of its rule counters (its contents are in `contents`). */
interface Slot {
  generation: number;
  ruleStats: BpfMap;
}

/** A policy's tables, built and not yet live; `start` is when building began. */
interface Built {
  start: number;
  images: Record<string, BpfMap>[];
  shared: Record<string, BpfMap>;
}

/** Lets go of this process's handles on the built tables (the outer maps keep the live ones). */
function closeBuilt({ images, shared }: Built): void {
  for (const set of [...images, shared]) for (const m of Object.values(set ?? {})) m.close();
}

const zeroKey = Buffer.alloc(4);

function u32Key(i: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(i);
  return b;
}

/** The policy tables of a loaded moat.bpf.o: apply(), and the live generation's rule counters. */
export class PolicyMaps {
  private readonly state: BpfMap;
  /** Each slot's scrubbing settings (struct moat_scrub), written with its policy. */
  private readonly scrubConfig: BpfMap;
  /** Each slot's ids settings (struct moat_ids), written with its policy. */
  private readonly idsConfig: BpfMap;
  private readonly outers: Record<keyof typeof POLICY_TABLES, BpfMap>;
  private readonly generations: (Slot | undefined)[] = [undefined, undefined];
  private lastFlip = 0;
  /**
   * The accept hook is attached (docs/socket-hooks.md, "The accept side"): XDP leaves new
   * ingress connections to it. Written to each policy's meta by apply().
   */
  accept = false;

  readonly redirects: RedirectMaps;
  /** Each slot's name bindings (docs/classifier.md, "Names"). */
  private readonly names: NameMaps;
  /** The tables the two slots hold, handed out again when a swap did not change them. */
  private readonly tables = new TableReuse();
  /** Tables a swap took unchanged from a slot instead of building them again, since start. */
  get tablesReused(): number {
    return this.tables.reused;
  }
  /** The rate limits' state (limit-maps.ts). */
  private readonly limits: LimitMaps;
  /** The packets of a rate limit's lease, forced (tests); else sized by the CPUs (rate-limit.ts). */
  limitLease: number | undefined = undefined;
  /** Limits whose overflow bucket found no room in limit_state (docs/policy.md, "rate_limit"). */
  limitsWithoutOverflow = 0;
  /** Bindings that found no room (counter namesFull). */
  namesFull = 0;
  /** The rules and redirects of the recent generations, by generation. */
  readonly contents = new GenerationRecord();

  /** The last generation a previous daemon applied: generations continue after it. */
  private readonly generationFloor: number;

  constructor(object: BpfObject, generationFloor = 0) {
    this.generationFloor = generationFloor;
    this.state = object.map("state");
    this.scrubConfig = object.map("scrub_config");
    this.idsConfig = object.map("ids_config");
    this.redirects = new RedirectMaps(object);
    this.names = new NameMaps(object);
    this.limits = new LimitMaps(object);
    // an adopted slot whose policy names no hosts: its old bindings are not the kernel's
    this.readState().metas.forEach((m, slot) => {
      if (!m?.names) this.names.drop(slot);
    });
    this.outers = Object.fromEntries(
      Object.keys(POLICY_TABLES).map((n) => [n, object.map(`tbl_${n}`)]),
    ) as Record<keyof typeof POLICY_TABLES, BpfMap>;
  }

  /**
   * The state map (active slot, each slot's meta), read from the kernel once and then kept: only
   * apply() writes it (the programs only read it), and it forgets the copy when it does. The DNS
   * proxy reads it several times per query.
   */
  private readState(): {
    raw: Buffer;
    active: number;
    metas: ReturnType<typeof metaCodec.decode>[];
  } {
    if (this.stateCopy) return this.stateCopy;
    const raw = this.state.lookup(zeroKey) ?? Buffer.alloc(stateCodec.size);
    const s = stateCodec.decode(raw);
    const metas = [0, 1].map((i) => metaCodec.decode(s.meta, i * metaCodec.size));
    this.stateCopy = { raw: Buffer.from(raw), active: s.active & 1, metas };
    return { ...this.stateCopy, raw };
  }

  private stateCopy: {
    raw: Buffer;
    active: number;
    metas: ReturnType<typeof metaCodec.decode>[];
  } | null = null;

  /** The live generation (0 before the first apply). */
  get generation(): number {
    const { active, metas } = this.readState();
    return metas[active]?.generation ?? 0;
  }

  /**
   * Writes `policy` into the idle slot and makes it live; the previous one stays in the other.
   * When the policy names hosts, the idle slot gets a fresh bindings map filled with
   * `bindings(classes)` (the DNS proxy's store, in the new policy's classes) before the flip;
   * or, when the live slot's map was filled that way for the same classes and has taken every
   * binding since, that map itself, and `bindings` is not asked.
   */
  apply(policy: PolicyImage, bindings?: (classes: NameClasses) => NameBinding[]): ApplyResult {
    return this.flip(policy, drain(this.build(policy)), bindings);
  }

  /**
   * Makes the packet tables of a policy that is still on its way (`tables`: its image 0's), so
   * that its swap finds them made (TableReuse); kept until the next swap goes live or is
   * abandoned, or let go after AHEAD_MS without one (at once when they could not all be made).
   */
  async buildAhead(tables: TableImage, between: () => Promise<void>): Promise<void> {
    if (this.aheadTimer) clearTimeout(this.aheadTimer);
    let made: Record<string, BpfMap>;
    try {
      made = await inTurns(tableMaps(tables, "", this.tables.makeAhead), between);
    } catch (err) {
      // the timer of those made before is cleared: what was made is let go now (the swap makes
      // its tables itself), not kept until some later swap
      this.tables.dropAhead();
      throw err;
    }
    for (const map of Object.values(made)) map.close(); // the reuse keeps its own handles
    this.aheadTimer = setTimeout(() => this.tables.dropAhead(), AHEAD_MS).unref();
  }

  private aheadTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * apply() with a turn of the event loop (`between`) after each table is built: a 100k-rule
   * policy's tables hold the thread a few hundred milliseconds. The flip, and what must be in place
   * just before it (the name bindings), happen in one go at the end.
   */
  async applyInTurns(
    policy: PolicyImage,
    bindings: ((classes: NameClasses) => NameBinding[]) | undefined,
    between: () => Promise<void>,
    beforeFlip?: () => void,
  ): Promise<ApplyResult> {
    return this.flip(policy, await inTurns(this.build(policy), between), bindings, beforeFlip);
  }

  /**
   * The new policy's tables, each in a fresh inner map (or a live one with the same content),
   * pausing after each. Nothing the kernel reads changes: that is the flip's.
   */
  private *build(policy: PolicyImage): Generator<void, Built> {
    const start = performance.now();
    const image = policy.packet;
    checkImage(image);
    if (policy.socket) checkImage(policy.socket.image);
    if (policy.redirect) checkImage(policy.redirect.image);
    if (policy.names) checkImage(policy.names.image);
    // image 0: the packet hooks' tables; image 1: the socket hooks' when rules name processes;
    // image 2: the redirects'; image 3: the names' (sparse: a missing image leaves its outer
    // entries alone)
    const built: Built = { start, images: [], shared: {} };
    const { images, shared } = built;
    const { make } = this.tables;
    try {
      images[0] = yield* tableMaps(image, "", make);
      if (policy.socket) {
        // in place before the process maps are made: if they fail, discard() closes these too
        const socket = (images[1] = yield* tableMaps(policy.socket.image, "s_", make));
        Object.assign(socket, yield* processMaps(policy.socket.process, make));
      }
      const targets = policy.redirect?.targets ?? [];
      if (policy.redirect) {
        images[2] = yield* tableMaps(policy.redirect.image, "r_", make);
        // the kernel sends connections to the relay when there is one, and checks it listens
        shared.redirects = redirectsMap(
          targets.map((t) => ({
            ...(t.via ?? t),
            unavailable: t.unavailable,
            ...(t.quiet ? { quiet: true } : {}),
            ...(t.layer7Only ? { layer7Only: true } : {}),
            ...(t.everyNetns ? { everyNetns: true } : {}),
          })),
        );
      }
      // image 3: the rules naming hosts, their remote lists as name classes
      if (policy.names) images[3] = yield* tableMaps(policy.names.image, "n_", make);
      shared.rules = yield* rulesMap(image, make);
      return built;
    } catch (err) {
      this.discard(built);
      throw err;
    }
  }

  /** The slot the next policy goes into, its generation, and the rule counters' rows. */
  private nextSlot(stride: number) {
    this.stateCopy = null;
    const { raw, active, metas } = this.readState();
    this.stateCopy = null;
    // continues from the pinned state: entries judged by an older policy never look judged
    // by this one
    const generation =
      Math.max(metas[0]?.generation ?? 0, metas[1]?.generation ?? 0, this.generationFloor) + 1;
    const idle = active ^ 1;
    const previous = this.generations[idle];
    if (previous && performance.now() - this.lastFlip < GRACE_MS) {
      // a program run that read `active` before the last flip may still be using the idle
      // slot: a map-in-map update returns only after an rcu grace period, when it is done
      this.outers.rule_stats.setInner(u32Key(idle), previous.ruleStats);
    }
    const cpus = native().numPossibleCpus();
    const rows = Math.max(
      1,
      Math.min(cpus, Math.floor(RULE_STATS_BUDGET / (stride * ruleStatsCodec.size))),
    );
    return { raw, active, generation, idle, cpus, rows };
  }

  /** Lets go of tables built for a policy that does not go live. */
  private discard(built: Built): void {
    closeBuilt(built);
    this.tables.abandon();
  }

  /** Puts the built tables in the idle slot and makes it live, atomically. */
  private flip(
    policy: PolicyImage,
    built: Built,
    bindings: ((classes: NameClasses) => NameBinding[]) | undefined,
    beforeFlip?: () => void,
  ): ApplyResult {
    const { start, images, shared } = built;
    const image = policy.packet;
    const targets = policy.redirect?.targets ?? [];
    let slot: ReturnType<PolicyMaps["nextSlot"]>;
    try {
      slot = this.nextSlot(image.rules.length);
    } catch (err) {
      this.discard(built);
      throw err;
    }
    const { raw, active, generation, idle, cpus, rows } = slot;
    const stride = image.rules.length;
    try {
      shared.limits = limitsMap(image, cpus, this.limitLease);
      shared.rule_stats = createMap(
        "moat_rule_stats",
        MAP_ARRAY,
        4,
        ruleStatsCodec.size,
        rows * stride,
        BPF_F_INNER_MAP,
      );

      // the tables into the idle slot (one batch per outer map, all at once: each waits for a
      // grace period), then its meta, then the flip
      const batches: MapBatch[] = [];
      for (const [outer, tables] of Object.entries(POLICY_TABLES)) {
        const entries: [number, BpfMap][] = [];
        tables.forEach((name, t) => {
          if (!PER_IMAGE.has(outer)) {
            const inner = shared[name] ?? images[1]?.[name];
            if (inner) entries.push([idle, inner]);
            return;
          }
          images.forEach((maps, i) => {
            const inner = maps[name];
            if (inner) entries.push([(i * tables.length + t) * 2 + idle, inner]);
          });
        });
        const keys = Buffer.alloc(4 * entries.length);
        const values = Buffer.alloc(4 * entries.length);
        entries.forEach(([index, inner], k) => {
          keys.writeUInt32LE(index, 4 * k);
          values.writeUInt32LE(inner.fd, 4 * k);
        });
        const map = this.outers[outer as keyof typeof POLICY_TABLES];
        if (entries.length > 0) batches.push({ map, keys, values, count: entries.length });
      }
      const next = Buffer.from(raw);
      const defaultRule = Buffer.alloc(8);
      defaultRule.writeUInt32LE(image.defaultRule.ingress, 0);
      defaultRule.writeUInt32LE(image.defaultRule.egress, 4);
      const prevent = (i: number) => (image.rules[i]?.mode === "prevent" ? 1 : 0);
      // each table image's class counts, by image: the packet hooks', the socket hooks', the
      // redirects' (0 for an image the policy does not have)
      const imageCounts = Buffer.alloc(metaCodec.fields.image.bytes);
      [image, policy.socket?.image, policy.redirect?.image, policy.names?.image].forEach((im, i) =>
        imageMeta.encode({ ns: im?.ns ?? 0, nx: im?.nx ?? 0 }, imageCounts, i * imageMeta.size),
      );
      const lean = socketLean(policy);
      metaCodec.encode(
        {
          generation,
          rule_count: image.ruleCount,
          default_rule: defaultRule,
          stats_rows: rows,
          image: imageCounts,
          // a frame moat cannot read: dropped where a prevent-mode block could decide it
          drop_malformed: Buffer.from([
            (image.dropUnreadable?.ingress ?? prevent(image.defaultRule.ingress)) ? 1 : 0,
            (image.dropUnreadable?.egress ?? prevent(image.defaultRule.egress)) ? 1 : 0,
          ]),
          default_prevent: prevent(image.defaultRule.ingress),
          stats_atomic: rows < cpus ? 1 : 0,
          daemon_allow: image.daemonFailure === "allow" ? 1 : 0,
          first_local_rule: image.firstLocalRule,
          socket_image: policy.socket ? 1 : 0,
          basics_judged: image.basicsJudged,
          proc_nn: policy.socket?.process.nn ?? 0,
          proc_nu: policy.socket?.process.nu ?? 0,
          proc_nc: policy.socket?.process.nc ?? 0,
          proc_ni: policy.socket?.process.ni ?? 0,
          proc_folds: policy.socket?.process.folds ?? 0,
          stacked: policy.socket?.process.stacked.length ? 1 : 0,
          redirect_count: targets.length,
          post_route: policy.socket?.process.interfaces ? 1 : 0,
          first_ingress_process_rule: image.firstIngressProcessRule,
          first_ingress_sport_rule: image.firstIngressSportRule,
          accept: this.accept ? 1 : 0,
          names: policy.names ? 1 : 0,
          layer7: image.rules.some((r) => r.layer7) ? 1 : 0,
          lean: (lean.skipRecord ? LEAN_RECORD : 0) | (lean.skipExe ? LEAN_NO_EXE : 0),
          ids: image.ids ? 1 : 0,
        },
        next,
        8 + idle * metaCodec.size,
      );
      // the bindings the new policy's classes give, in place before it goes live: the live
      // slot's own map when it holds them for the same classes (a reload that changed no
      // hostname rule: the DNS proxy's store was written there, answer by answer)
      let placed = () => this.names.drop(idle);
      if (policy.names) {
        const { classes } = policy.names;
        let map = bindings ? this.names.sharable(active, classes.signature) : null;
        if (!map) {
          const filled = this.names.prepare(bindings ? bindings(classes) : []);
          this.namesFull += filled.full;
          map = filled.map;
        }
        const placing = this.names.placing(idle, map, bindings ? classes.signature : null);
        batches.push(placing.batch);
        placed = placing.done;
      }
      try {
        native().updateBatches(batches);
      } finally {
        placed();
      }
      this.scrubConfig.update(
        u32Key(idle),
        scrubCodec.encode({
          mss4: image.mss?.v4 ?? 0,
          mss6: image.mss?.v6 ?? 0,
          min_ttl: image.ipScrub?.minTtl ?? 0,
          flags:
            (image.ipScrub?.clearDf ? ScrubFlag.clearDf : 0) |
            (image.ipScrub?.randomIpId ? ScrubFlag.randomIpId : 0),
          pad: 0,
        }),
      );
      const ids = idsSettings(
        { bytes: image.ids?.bytes ?? 0, sample: image.ids?.sample ?? 1 },
        this.idsConfig.lookup(u32Key(active)) ?? undefined,
      );
      this.idsConfig.update(u32Key(idle), ids);
      // each limit's overflow bucket is there before the policy that has it goes live
      this.limitsWithoutOverflow = this.limits.overflowBuckets(liveLimits(image.rules));
      // targets are known before a redirect to them goes live, and forgotten after it is gone
      const dropStale = this.redirects.setTargets(
        targets.flatMap((t) => (t.via ? [t, t.via] : [t])),
      );
      // everything is in the idle slot: what must happen while the old policy is live, now
      beforeFlip?.();
      this.stateCopy = null;
      this.state.update(zeroKey, next);
      next.writeUInt32LE(idle, 0);
      this.state.update(zeroKey, next);
      this.stateCopy = null;
      this.lastFlip = performance.now();
      const begun = idsSettingsBegun(ids, kernelMonotonicNs());
      if (begun) this.idsConfig.update(u32Key(idle), begun);
      dropStale();
    } catch (err) {
      this.discard(built);
      throw err;
    }
    this.tables.settle();

    // the outer maps hold the inner maps now; keep only the rule counters' handle
    const ruleStats = shared.rule_stats as BpfMap;
    delete shared.rule_stats;
    closeBuilt(built);
    this.generations[idle]?.ruleStats.close();
    this.generations[idle] = { generation, ruleStats };
    this.contents.record(generation, {
      rules: image.rules,
      redirects: policy.redirect?.targets ?? [],
    });
    return { generation, ms: performance.now() - start };
  }

  /**
   * Writes bindings into the live slot's map (the DNS proxy's answers): how many were written,
   * how many found no room (counted in namesFull). None without a policy naming hosts.
   */
  bindNames(bindings: readonly NameBinding[]): { written: number; full: number } {
    const map = this.names.of(this.readState().active);
    if (!map) return { written: 0, full: 0 };
    const result = writeBindings(map, bindings);
    this.namesFull += result.full;
    return result;
  }

  /** The live slot's bindings (after a restart: the previous daemon's, until the first apply). */
  liveBindings(): NameBinding[] {
    const map = this.names.of(this.readState().active);
    return map ? readBindings(map) : [];
  }

  /** Removes bindings from the live slot's map (expired ones, by the proxy's sweep). */
  unbindNames(keys: readonly { identity: NameIdentity; ip: string }[]): void {
    const map = this.names.of(this.readState().active);
    if (map) deleteBindings(map, keys);
  }

  /**
   * Removes the rate limit state of idle sources and of limits neither slot's policy has (the
   * previous policy's stay until the next reload: a packet may still be judged by it).
   */
  sweepLimits(nowNs: bigint, report?: (record: Buffer) => void): LimitSweep {
    const live = new Map<number, ImageLimit>();
    // the rule of each limit, for the report of a swept source's last packets over it
    const ruleOf = new Map<number, { index: number; generation: number; prevent: boolean }>();
    for (const g of this.generations) {
      if (!g) continue;
      const rules = this.contents.of(g.generation)?.rules ?? [];
      // (a big policy's plain rules have no limit: only the others are read)
      for (const [index, r] of richRules(rules)) {
        if (!r.limit) continue;
        live.set(r.limit.id, r.limit);
        ruleOf.set(r.limit.id, { index, generation: g.generation, prevent: r.mode === "prevent" });
      }
    }
    return this.limits.sweep(
      live,
      nowNs,
      report &&
        ((tail) => {
          const rule = ruleOf.get(tail.limit.id);
          if (rule) report(limitTailRecord(tail, rule, nowNs));
        }),
    );
  }

  /** Counters of every rule of the live generation (default pseudo-rules last). */
  ruleCounters(): { generation: number; rules: RuleCounter[] } {
    const { active } = this.readState();
    const g = this.generations[active];
    if (!g) return { generation: 0, rules: [] };
    const rules = this.contents.of(g.generation)?.rules ?? [];
    const stride = rules.length;
    // summed as numbers, read in place (exact to 2^53: 9 PB of one rule's bytes); a policy of
    // 100k rules has 100k counters a CPU, read on every status, scrape and console refresh
    const sums = new Float64Array(stride * 3);
    const { packets, bytes, connections } = ruleStatsCodec.fields;
    let cursor: Buffer | null = null;
    do {
      const batch = g.ruleStats.lookupBatch(cursor, 4096);
      const v = batch.values;
      for (let i = 0; i < batch.count; i++) {
        const at = 3 * (batch.keys.readUInt32LE(i * 4) % stride);
        const o = i * ruleStatsCodec.size;
        sums[at]! += u64(v, o + packets.offset);
        sums[at + 1]! += u64(v, o + bytes.offset);
        sums[at + 2]! += u64(v, o + connections.offset);
      }
      cursor = batch.next;
    } while (cursor);
    const counters: RuleCounter[] = [];
    for (let index = 0; index < stride; index++)
      counters.push({
        index,
        name: ruleName(rules, index)!,
        packets: BigInt(sums[3 * index]!),
        bytes: BigInt(sums[3 * index + 1]!),
        connections: BigInt(sums[3 * index + 2]!),
      });
    return { generation: g.generation, rules: counters };
  }

  close(): void {
    if (this.aheadTimer) clearTimeout(this.aheadTimer);
    this.names.close();
    this.tables.close();
    this.limits.close();
    this.scrubConfig.close();
    this.idsConfig.close();
    for (const g of this.generations) g?.ruleStats.close();
    this.generations.fill(undefined);
    this.redirects.close();
    // the generation stays readable (a reload that waited its turn while the daemon stopped)
    try {
      this.readState();
    } catch {
      // nothing to keep: the generation reads as the kernel's did
    }
    this.state.close();
    for (const outer of Object.values(this.outers)) outer.close();
  }
}

/** A little-endian u64 as a number (exact below 2^53). */
const u64 = (b: Buffer, at: number): number =>
  b.readUInt32LE(at) + b.readUInt32LE(at + 4) * 2 ** 32;

const liveLimits = (rules: readonly { limit?: ImageLimit }[]): ImageLimit[] =>
  rules.flatMap((r) => (r.limit ? [r.limit] : []));
