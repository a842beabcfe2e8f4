// Writes a compiled policy (ClassifierImage) into the kernel atomically: every table goes into
// a fresh inner map, the inner maps go into the idle slot of their two-slot array-of-maps, the
// idle slot's meta is written, then one write flips `state.active`. Each packet reads `active`
// once and uses that slot's tables and meta only, so it is judged by the old or the new policy,
// never a mix (docs/classifier.md, "Atomic reload").
import {
  Action,
  Mode,
  meta as metaCodec,
  rule as ruleCodec,
  ruleStats as ruleStatsCodec,
  state as stateCodec,
} from "./abi.ts";
import { native } from "./addon.ts";
import type { BpfMap, BpfObject } from "./native.d.ts";
import {
  PORT_CLASS_SIZE,
  SPORT_CLASS_SIZE,
  type ClassifierImage,
  type LpmEntry,
} from "../policy/compile/image.ts";
import type { Dir4 } from "../policy/compile/dir4.ts";

const MAP_HASH = 1;
const MAP_ARRAY = 2;
const MAP_LPM_TRIE = 11;
const BPF_F_NO_PREALLOC = 1;
const BPF_F_INNER_MAP = 0x1000;

/**
 * The outer maps (tbl_NAME) and the tables they hold, in table order: table t of slot s is at
 * index t * 2 + s (bpf/include/maps.h).
 */
const OUTERS = {
  dir4: ["remote4", "local4"],
  lpm6: ["remote6", "local6"],
  u32: ["port_class", "sport_class", "lx", "px", "any_remote", "remote_only"],
  remote_y: ["remote_y"],
  rules: ["rules"],
  rule_stats: ["rule_stats"],
} as const;

/** rule_stats rows are capped so a huge policy on a many-core machine stays within this. */
const RULE_STATS_BUDGET = 64 << 20;
/**
 * A program run (microseconds, not preemptible) that read `active` before a flip is over long
 * before this; a reload sooner than this after the previous one waits for a grace period.
 */
const GRACE_MS = 50;

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

interface Generation {
  generation: number;
  slot: number;
  names: string[];
  ruleStats: BpfMap;
  rows: number;
}

const zeroKey = Buffer.alloc(4);

function u32Key(i: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(i);
  return b;
}

function createMap(
  name: string,
  type: number,
  keySize: number,
  valueSize: number,
  maxEntries: number,
  flags: number,
): BpfMap {
  return native().BpfMap.create({
    type,
    keySize,
    valueSize,
    maxEntries: Math.max(1, maxEntries),
    flags,
    name,
  });
}

function fill(map: BpfMap, keys: Buffer, values: Buffer, count: number): void {
  if (count === 0) return;
  const done = map.updateBatch(keys, values, count);
  if (done !== count) throw new Error(`map ${map.name}: ${done} of ${count} entries written`);
}

/** An IPv4 directory (src/policy/compile/dir4.ts): an array of u64, every entry written. */
function dir4Map(name: string, dir: Dir4): BpfMap {
  const map = createMap(name, MAP_ARRAY, 4, 8, dir.length, BPF_F_INNER_MAP);
  const keys = Buffer.alloc(4 * dir.length);
  for (let i = 0; i < dir.length; i++) keys.writeUInt32LE(i, 4 * i);
  // [low, high] word pairs are the u64 values' little-endian bytes
  const values = Buffer.from(dir.words.buffer, dir.words.byteOffset, 8 * dir.length);
  fill(map, keys, values, dir.length);
  return map;
}

function lpm6Map(name: string, entries: LpmEntry[]): BpfMap {
  const bytes = 16;
  const keySize = 4 + bytes;
  const map = createMap(name, MAP_LPM_TRIE, keySize, 4, entries.length, BPF_F_NO_PREALLOC);
  const keys = Buffer.alloc(keySize * entries.length);
  const values = Buffer.alloc(4 * entries.length);
  entries.forEach((e, i) => {
    if (e.addr.length !== bytes) throw new Error(`${name}: address of ${e.addr.length} bytes`);
    keys.writeUInt32LE(e.prefixlen, i * keySize);
    keys.set(e.addr, i * keySize + 4);
    values.writeUInt32LE(e.cls, i * 4);
  });
  fill(map, keys, values, entries.length);
  return map;
}

/** An array of u32 sized `size`; only non-zero entries are written (arrays start zeroed). */
function u32Array(name: string, data: Uint32Array, size = data.length): BpfMap {
  if (data.length !== size) throw new Error(`${name}: ${data.length} entries, expected ${size}`);
  const map = createMap(name, MAP_ARRAY, 4, 4, size, BPF_F_INNER_MAP);
  let n = 0;
  for (const v of data) if (v !== 0) n++;
  const keys = Buffer.alloc(4 * n);
  const values = Buffer.alloc(4 * n);
  let at = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i] ?? 0;
    if (v === 0) continue;
    keys.writeUInt32LE(i, at);
    values.writeUInt32LE(v, at);
    at += 4;
  }
  fill(map, keys, values, n);
  return map;
}

function remoteYMap(image: ClassifierImage): BpfMap {
  const { r, y, rule } = image.remoteY;
  const n = r.length;
  const map = createMap("moat_remote_y", MAP_HASH, 8, 4, n, 0);
  const keys = Buffer.alloc(8 * n);
  const values = Buffer.alloc(4 * n);
  for (let i = 0; i < n; i++) {
    keys.writeUInt32LE(r[i] ?? 0, i * 8);
    keys.writeUInt32LE(y[i] ?? 0, i * 8 + 4);
    values.writeUInt32LE(rule[i] ?? 0, i * 4);
  }
  fill(map, keys, values, n);
  return map;
}

function rulesMap(image: ClassifierImage): BpfMap {
  const n = image.rules.length;
  const map = createMap("moat_rules", MAP_ARRAY, 4, ruleCodec.size, n, BPF_F_INNER_MAP);
  const keys = Buffer.alloc(4 * n);
  const values = Buffer.alloc(ruleCodec.size * n);
  image.rules.forEach((r, i) => {
    keys.writeUInt32LE(i, i * 4);
    ruleCodec.encode(
      {
        action: Action[r.action],
        mode: Mode[r.mode],
        log: r.log ? 1 : 0,
        max_duration_s: Math.min(r.maxDurationSeconds, 0xffffffff),
      },
      values,
      i * ruleCodec.size,
    );
  });
  fill(map, keys, values, n);
  return map;
}

function checkImage(image: ClassifierImage): void {
  const expect = (what: string, got: number, want: number) => {
    if (got !== want) throw new Error(`classifier image: ${what} has ${got} entries, not ${want}`);
  };
  expect("rules", image.rules.length, image.ruleCount + 2);
  expect("lx", image.lx.length, image.nl * image.ns);
  expect("px", image.px.length, image.np * image.nx);
  expect("anyRemote", image.anyRemote.length, image.ny);
  expect("remoteOnly", image.remoteOnly.length, image.nr * 2);
  for (const d of ["ingress", "egress"] as const) {
    const i = image.defaultRule[d];
    if (!image.rules[i]) throw new Error(`classifier image: default ${d} rule ${i} missing`);
  }
}

/** The policy tables of a loaded moat.bpf.o: apply(), and the live generation's rule counters. */
export class PolicyMaps {
  private readonly state: BpfMap;
  private readonly outers: Record<keyof typeof OUTERS, BpfMap>;
  private readonly generations: (Generation | undefined)[] = [undefined, undefined];
  private lastFlip = 0;

  constructor(object: BpfObject) {
    this.state = object.map("state");
    this.outers = Object.fromEntries(
      Object.keys(OUTERS).map((n) => [n, object.map(`tbl_${n}`)]),
    ) as Record<keyof typeof OUTERS, BpfMap>;
  }

  private readState() {
    const raw = this.state.lookup(zeroKey) ?? Buffer.alloc(stateCodec.size);
    const s = stateCodec.decode(raw);
    const metas = [0, 1].map((i) => metaCodec.decode(s.meta, i * metaCodec.size));
    return { raw, active: s.active & 1, metas };
  }

  /** The live generation (0 before the first apply). */
  get generation(): number {
    const { active, metas } = this.readState();
    return metas[active]?.generation ?? 0;
  }

  /** Writes `image` into the idle slot and makes it live; the previous policy stays in the other. */
  apply(image: ClassifierImage): ApplyResult {
    const start = performance.now();
    checkImage(image);
    const { raw, active, metas } = this.readState();
    const generation = Math.max(metas[0]?.generation ?? 0, metas[1]?.generation ?? 0) + 1;
    const idle = active ^ 1;
    const previous = this.generations[idle];
    if (previous && performance.now() - this.lastFlip < GRACE_MS) {
      // a program run that read `active` before the last flip may still be using the idle
      // slot: a map-in-map update returns only after an rcu grace period, when it is done
      this.outers.rule_stats.setInner(u32Key(idle), previous.ruleStats);
    }

    const stride = image.rules.length;
    const cpus = native().numPossibleCpus();
    const rows = Math.max(
      1,
      Math.min(cpus, Math.floor(RULE_STATS_BUDGET / (stride * ruleStatsCodec.size))),
    );
    const inners: Record<string, BpfMap> = {};
    try {
      inners.remote4 = dir4Map("moat_remote4", image.remote4);
      inners.remote6 = lpm6Map("moat_remote6", image.remote6);
      inners.local4 = dir4Map("moat_local4", image.local4);
      inners.local6 = lpm6Map("moat_local6", image.local6);
      inners.port_class = u32Array("moat_port_class", image.portClass, PORT_CLASS_SIZE);
      inners.sport_class = u32Array("moat_sport_cls", image.sportClass, SPORT_CLASS_SIZE);
      inners.lx = u32Array("moat_lx", image.lx);
      inners.px = u32Array("moat_px", image.px);
      inners.remote_y = remoteYMap(image);
      inners.any_remote = u32Array("moat_any_remote", image.anyRemote);
      inners.remote_only = u32Array("moat_rem_only", image.remoteOnly);
      inners.rules = rulesMap(image);
      inners.rule_stats = createMap(
        "moat_rule_stats",
        MAP_ARRAY,
        4,
        ruleStatsCodec.size,
        rows * stride,
        BPF_F_INNER_MAP,
      );

      // the tables into the idle slot (one batch per outer map), then its meta, then the flip
      for (const [outer, tables] of Object.entries(OUTERS)) {
        const keys = Buffer.alloc(4 * tables.length);
        const values = Buffer.alloc(4 * tables.length);
        tables.forEach((name, t) => {
          const inner = inners[name];
          if (!inner) throw new Error(`no inner map for ${name}`);
          keys.writeUInt32LE(t * 2 + idle, 4 * t);
          values.writeUInt32LE(inner.fd, 4 * t);
        });
        fill(this.outers[outer as keyof typeof OUTERS], keys, values, tables.length);
      }
      const next = Buffer.from(raw);
      const defaultRule = Buffer.alloc(8);
      defaultRule.writeUInt32LE(image.defaultRule.ingress, 0);
      defaultRule.writeUInt32LE(image.defaultRule.egress, 4);
      const prevent = (i: number) => (image.rules[i]?.mode === "prevent" ? 1 : 0);
      metaCodec.encode(
        {
          generation,
          ns: image.ns,
          nx: image.nx,
          rule_count: image.ruleCount,
          default_rule: defaultRule,
          stats_rows: rows,
          drop_malformed: Buffer.from([
            prevent(image.defaultRule.ingress),
            prevent(image.defaultRule.egress),
          ]),
          stats_atomic: rows < cpus ? 1 : 0,
          first_local_rule: image.firstLocalRule,
        },
        next,
        8 + idle * metaCodec.size,
      );
      this.state.update(zeroKey, next);
      next.writeUInt32LE(idle, 0);
      this.state.update(zeroKey, next);
      this.lastFlip = performance.now();
    } catch (err) {
      for (const m of Object.values(inners)) m.close();
      throw err;
    }

    // the outer maps hold the inner maps now; keep only the rule counters' handle
    for (const [name, m] of Object.entries(inners)) if (name !== "rule_stats") m.close();
    this.generations[idle]?.ruleStats.close();
    this.generations[idle] = {
      generation,
      slot: idle,
      names: image.rules.map((r) => r.name),
      ruleStats: inners.rule_stats as BpfMap,
      rows,
    };
    return { generation, ms: performance.now() - start };
  }

  /** Rule name of `index` in `generation` (the live or the previous one), else null. */
  ruleName(index: number, generation: number): string | null {
    const g = this.generations.find((x) => x?.generation === generation);
    return g?.names[index] ?? null;
  }

  /** Counters of every rule of the live generation (default pseudo-rules last). */
  ruleCounters(): { generation: number; rules: RuleCounter[] } {
    const { active } = this.readState();
    const g = this.generations[active];
    if (!g) return { generation: 0, rules: [] };
    const stride = g.names.length;
    const rules: RuleCounter[] = g.names.map((name, index) => ({
      index,
      name,
      packets: 0n,
      bytes: 0n,
      connections: 0n,
    }));
    let cursor: Buffer | null = null;
    do {
      const batch = g.ruleStats.lookupBatch(cursor, 4096);
      for (let i = 0; i < batch.count; i++) {
        const index = batch.keys.readUInt32LE(i * 4) % stride;
        const s = ruleStatsCodec.decode(batch.values, i * ruleStatsCodec.size);
        const r = rules[index];
        if (!r) continue;
        r.packets += s.packets;
        r.bytes += s.bytes;
        r.connections += s.connections;
      }
      cursor = batch.next;
    } while (cursor);
    return { generation: g.generation, rules };
  }

  close(): void {
    for (const g of this.generations) g?.ruleStats.close();
    this.generations.fill(undefined);
  }
}
