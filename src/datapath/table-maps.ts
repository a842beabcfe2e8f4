// Builders of the inner maps one table image is written to (docs/classifier.md): one BPF map
// per table, created and filled in user space, then placed into the outer maps by PolicyMaps.
import {
  Action,
  LimitAlgorithm,
  Mode,
  RuleFlag,
  exeKey as exeKeyCodec,
  stackedKey as stackedKeyCodec,
  limit as limitCodec,
  rule as ruleCodec,
} from "./abi.ts";
import { native } from "./addon.ts";
import type { BpfMap } from "./native.d.ts";
import {
  PORT_CLASS_SIZE,
  SPORT_CLASS_SIZE,
  type ClassifierImage,
  type Dir4,
  type ImageLimit,
  type LpmEntry,
  type TableImage,
} from "../policy/compile/image.ts";

import type { ProcessImage } from "../policy/compile/process.ts";
import { leaseFor } from "../policy/rate-limit.ts";

const MAP_HASH = 1;
export const MAP_ARRAY = 2;
const MAP_LPM_TRIE = 11;
const BPF_F_NO_PREALLOC = 1;
export const BPF_F_INNER_MAP = 0x1000;
/**
 * An array written through a mapping of its values (BpfMap.writeMapped): ~1.5 ns an entry where
 * the batch update's syscall costs the kernel ~250 (a 100k-rule policy's arrays hold ~1M).
 */
export const BPF_F_MMAPABLE = 0x400;
/** The policy's arrays (bpf/include/maps.h inner_dir4, inner_u32, inner_rules). */
const TABLE_ARRAY_FLAGS = BPF_F_INNER_MAP | BPF_F_MMAPABLE;

export function createMap(
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

export function fill(map: BpfMap, keys: Buffer, values: Buffer, count: number): void {
  if (count === 0) return;
  const done = map.updateBatch(keys, values, count);
  if (done !== count) throw new Error(`map ${map.name}: ${done} of ${count} entries written`);
}

/** A table's whole content before its map exists: what a MapMaker creates and fills. */
export interface MapContent {
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  keys: Buffer;
  values: Buffer;
  count: number;
}

/**
 * Gives a map holding `content`, for the caller to close (a new one, or a handle on an equal one);
 * it may pause (yield) between parts of the filling.
 */
export type MapMaker = (content: MapContent) => Generator<void, BpfMap>;

/** Entries written to a new map in one step: a table of 100k+ entries is filled over several. */
const FILL_STEP = 32768;

/** Creates and fills a new map, pausing after each FILL_STEP entries. */
export function* freshMap(c: MapContent): Generator<void, BpfMap> {
  const map = createMap(c.name, c.type, c.keySize, c.valueSize, c.maxEntries, c.flags);
  try {
    if (c.type === MAP_ARRAY && c.flags & BPF_F_MMAPABLE) {
      // a copy of a few megabytes at most: one step
      if (!isSequential(c.keys))
        throw new Error(`map ${c.name}: an mmapable array is written whole`);
      const done = map.writeMapped(c.values, c.count);
      if (done !== c.count) throw new Error(`map ${c.name}: ${done} of ${c.count} entries written`);
      return map;
    }
    for (let at = 0; at < c.count; at += FILL_STEP) {
      if (at > 0) yield;
      const n = Math.min(FILL_STEP, c.count - at);
      const keys = c.keys.subarray(at * c.keySize, (at + n) * c.keySize);
      fill(map, keys, c.values.subarray(at * c.valueSize, (at + n) * c.valueSize), n);
    }
  } catch (err) {
    map.close();
    throw err;
  }
  return map;
}

/**
 * 0, 1, 2, ... as u32 keys (little-endian, as the machine), shared by every array written whole
 * while a table's content holds them, and let go with it: the daemon kept the longest run for its
 * life (1.2 MB at 100k rules, more for a big set's directory).
 */
let sequence: WeakRef<ArrayBuffer> | undefined;
export function sequentialKeys(n: number): Buffer {
  let keys = sequence?.deref();
  if (!keys || keys.byteLength < 4 * n) {
    const made = new Uint32Array(n);
    for (let i = 0; i < n; i++) made[i] = i;
    keys = made.buffer;
    sequence = new WeakRef(keys);
  }
  return Buffer.from(keys, 0, 4 * n);
}

/** Whether `keys` are sequentialKeys' (0..n from the start). */
export function isSequential(keys: Buffer): boolean {
  return keys.byteOffset === 0 && keys.buffer === sequence?.deref();
}

/** An IPv4 directory (src/policy/compile/dir4.ts): an array of u64, every entry written. */
function* dir4Map(make: MapMaker, name: string, dir: Dir4): Generator<void, BpfMap> {
  const keys = sequentialKeys(dir.length);
  // [low, high] word pairs are the u64 values' little-endian bytes
  const values = Buffer.from(dir.words.buffer, dir.words.byteOffset, 8 * dir.length);
  const [keySize, valueSize, count, flags] = [4, 8, dir.length, TABLE_ARRAY_FLAGS];
  return yield* make({
    name,
    type: MAP_ARRAY,
    keySize,
    valueSize,
    maxEntries: count,
    flags,
    keys,
    values,
    count,
  });
}

function* lpm6Map(make: MapMaker, name: string, entries: LpmEntry[]): Generator<void, BpfMap> {
  const bytes = 16;
  const keySize = 4 + bytes;
  const keys = Buffer.alloc(keySize * entries.length);
  const values = Buffer.alloc(4 * entries.length);
  entries.forEach((e, i) => {
    if (e.addr.length !== bytes) throw new Error(`${name}: address of ${e.addr.length} bytes`);
    keys.writeUInt32LE(e.prefixlen, i * keySize);
    keys.set(e.addr, i * keySize + 4);
    values.writeUInt32LE(e.cls, i * 4);
  });
  const [count, flags] = [entries.length, BPF_F_NO_PREALLOC];
  return yield* make({
    name,
    type: MAP_LPM_TRIE,
    keySize,
    valueSize: 4,
    maxEntries: count,
    flags,
    keys,
    values,
    count,
  });
}

/**
 * A u32 array's content as machine-order bytes, shared with it (no copy): what the kernel reads is
 * in the host's byte order, as the entries' little-endian writes gave on this machine.
 */
const bytesOf = (data: Uint32Array): Buffer =>
  Buffer.from(data.buffer, data.byteOffset, data.byteLength);

/**
 * An array of u32 sized `size`, written whole from `data` itself with the shared 0..n keys: through
 * the array's mapping a zero costs a copy of 4 bytes, less than finding the non-zero entries.
 */
function* u32Array(
  make: MapMaker,
  name: string,
  data: Uint32Array,
  size = data.length,
): Generator<void, BpfMap> {
  if (data.length !== size) throw new Error(`${name}: ${data.length} entries, expected ${size}`);
  return yield* make({
    name,
    type: MAP_ARRAY,
    keySize: 4,
    valueSize: 4,
    maxEntries: size,
    flags: TABLE_ARRAY_FLAGS,
    keys: sequentialKeys(size),
    values: bytesOf(data),
    count: size,
  });
}

function* remoteYMap(make: MapMaker, image: TableImage): Generator<void, BpfMap> {
  const { r, y, rule } = image.remoteY;
  const n = r.length;
  // a key is (remote class, Y class), two u32 in machine order
  const keys = new Uint32Array(2 * n);
  for (let i = 0; i < n; i++) {
    keys[2 * i] = r[i]!;
    keys[2 * i + 1] = y[i]!;
  }
  const values = rule.length === n ? rule : rule.slice(0, n);
  const name = "moat_remote_y";
  return yield* make({
    name,
    type: MAP_HASH,
    keySize: 8,
    valueSize: 4,
    maxEntries: n,
    flags: 0,
    keys: bytesOf(keys),
    values: bytesOf(values),
    count: n,
  });
}

export function* rulesMap(
  image: ClassifierImage,
  make: MapMaker = freshMap,
): Generator<void, BpfMap> {
  const n = image.rules.length;
  const values = Buffer.alloc(ruleCodec.size * n);
  const { action, mode, log, flags, max_duration_s: max } = ruleCodec.fields;
  for (let i = 0; i < n; i++) {
    // struct moat_rule's bytes, written in place (a rule's encode() walked its fields by name)
    const r = image.rules[i]!;
    const at = i * ruleCodec.size;
    values[at + action.offset] = Action[r.action];
    values[at + mode.offset] = Mode[r.mode];
    values[at + log.offset] = r.log ? 1 : 0;
    values[at + flags.offset] = (r.layer7 ? RuleFlag.layer7 : 0) | (r.limit ? RuleFlag.limited : 0);
    if (r.maxDurationSeconds !== 0)
      values.writeUInt32LE(Math.min(r.maxDurationSeconds, 0xffffffff), at + max.offset);
  }
  const [name, valueSize, mapFlags] = ["moat_rules", ruleCodec.size, TABLE_ARRAY_FLAGS];
  return yield* make({
    name,
    type: MAP_ARRAY,
    keySize: 4,
    valueSize,
    maxEntries: n,
    flags: mapFlags,
    keys: sequentialKeys(n),
    values,
    count: n,
  });
}

const ALGORITHM_CODES = {
  token_bucket: LimitAlgorithm.tokenBucket,
  fixed_window: LimitAlgorithm.fixedWindow,
  sliding_window: LimitAlgorithm.slidingWindow,
  leaky_bucket: LimitAlgorithm.leakyBucket,
} as const;

/**
 * A rate limit as the kernel reads it (struct moat_limit), written into `into` at `at`: the
 * rules' limits and the UDP amplification limit alike. `lease`: packets a CPU admits on its own,
 * for `leaseNs` at most (absent: 0, as the UDP amplification limit has it).
 */
export function encodeLimit(
  l: ImageLimit,
  options: { perPort: boolean; lease: number; leaseNs?: bigint },
  into: Buffer,
  at = 0,
): void {
  limitCodec.encode(
    {
      id: l.id,
      count: l.count,
      period_ns: l.periodNs,
      fill_ns: l.fillNs,
      report_ns: l.reportNs,
      burst: l.burst,
      algorithm: ALGORITHM_CODES[l.algorithm],
      prefix4: l.prefix4,
      prefix6: l.prefix6,
      per_port: options.perPort ? 1 : 0,
      lease: options.lease,
      ...(options.leaseNs !== undefined ? { lease_ns: options.leaseNs } : {}),
    },
    into,
    at,
  );
}

/**
 * The rules' rate limits by rule index (struct moat_limit; id 0 where a rule has none), with the
 * lease each CPU takes at once on a host of `cpus` CPUs (`lease` forces its size: tests).
 */
export function limitsMap(image: ClassifierImage, cpus: number, lease?: number): BpfMap {
  const n = image.rules.length;
  const map = createMap("moat_limits", MAP_ARRAY, 4, limitCodec.size, n, BPF_F_INNER_MAP);
  // an array map starts zeroed (no limit): only the rules with a limit are written (a loop: this
  // runs in the flip's step, and flatMap made an array for each of a big policy's rules)
  const limited: number[] = [];
  for (let i = 0; i < n; i++) if (image.rules[i]!.limit) limited.push(i);
  const keys = Buffer.alloc(4 * limited.length);
  const values = Buffer.alloc(limitCodec.size * limited.length);
  limited.forEach((i, k) => {
    keys.writeUInt32LE(i, k * 4);
    const l = image.rules[i]?.limit;
    if (!l) return;
    const leased = leaseFor(l, cpus, lease);
    encodeLimit(
      l,
      { perPort: l.perPort, lease: leased.packets, leaseNs: leased.ns },
      values,
      k * limitCodec.size,
    );
  });
  fill(map, keys, values, limited.length);
  return map;
}

export function checkImage(image: ClassifierImage): void {
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

/**
 * The inner maps of one table image, by the names PolicyMaps places them under. It pauses (yields)
 * after each: a big policy's tables take the thread hundreds of milliseconds to fill, which the
 * daemon spreads over turns of its event loop.
 */
export function* tableMaps(
  image: TableImage,
  tag: string,
  make: MapMaker = freshMap,
): Generator<void, Record<string, BpfMap>> {
  const out: Record<string, BpfMap> = {};
  const tables: [string, () => Generator<void, BpfMap>][] = [
    ["remote4", () => dir4Map(make, `moat_${tag}remote4`, image.remote4)],
    ["remote6", () => lpm6Map(make, `moat_${tag}remote6`, image.remote6)],
    ["local4", () => dir4Map(make, `moat_${tag}local4`, image.local4)],
    ["local6", () => lpm6Map(make, `moat_${tag}local6`, image.local6)],
    ["port_class", () => u32Array(make, `moat_${tag}port_cls`, image.portClass, PORT_CLASS_SIZE)],
    [
      "sport_class",
      () => u32Array(make, `moat_${tag}sport_cls`, image.sportClass, SPORT_CLASS_SIZE),
    ],
    ["lx", () => u32Array(make, `moat_${tag}lx`, image.lx)],
    ["px", () => u32Array(make, `moat_${tag}px`, image.px)],
    ["remote_y", () => remoteYMap(make, image)],
    ["any_remote", () => u32Array(make, `moat_${tag}any_rem`, image.anyRemote)],
    ["remote_only", () => u32Array(make, `moat_${tag}rem_only`, image.remoteOnly)],
  ];
  try {
    for (const [name, table] of tables) {
      out[name] = yield* table();
      yield;
    }
    return out;
  } catch (err) {
    for (const m of Object.values(out)) m.close();
    throw err;
  }
}

/** A hash of `key -> class` entries; `writeKey` puts entry i's key at `offset`. */
function* classMap<T extends { cls: number }>(
  make: MapMaker,
  name: string,
  keySize: number,
  entries: readonly T[],
  writeKey: (entry: T, keys: Buffer, offset: number) => void,
): Generator<void, BpfMap> {
  const keys = Buffer.alloc(keySize * entries.length);
  const values = Buffer.alloc(4 * entries.length);
  entries.forEach((e, i) => {
    writeKey(e, keys, keySize * i);
    values.writeUInt32LE(e.cls, 4 * i);
  });
  const count = entries.length;
  return yield* make({
    name,
    type: MAP_HASH,
    keySize,
    valueSize: 4,
    maxEntries: count,
    flags: 0,
    keys,
    values,
    count,
  });
}

/** "aa:bb:cc:dd:ee:ff" as its 6 bytes. */
const macBytes = (mac: string): Buffer => Buffer.from(mac.replaceAll(":", ""), "hex");

/** The process classes' key maps and combination tables (src/policy/compile/process.ts). */
export function* processMaps(
  p: ProcessImage,
  make: MapMaker = freshMap,
): Generator<void, Record<string, BpfMap>> {
  const out: Record<string, BpfMap> = {};
  try {
    out.proc_exe = yield* classMap(make, "moat_proc_exe", 16, p.exe, (e, k, at) =>
      exeKeyCodec.encode({ ino: e.ino, dev: e.dev, gen: e.gen }, k, at),
    );
    out.proc_uid = yield* classMap(make, "moat_proc_uid", 4, p.uid, (u, k, at) =>
      k.writeUInt32LE(u.uid, at),
    );
    out.proc_cgroup = yield* classMap(make, "moat_proc_cgroup", 8, p.cgroup, (c, k, at) =>
      k.writeBigUInt64LE(c.id, at),
    );
    out.proc_comm = yield* lpm6Map(make, "moat_proc_comm", p.comm);
    out.proc_route = yield* lpm6Map(make, "moat_proc_route", p.route);
    out.proc_iface = yield* classMap(make, "moat_proc_iface", 4, p.iface, (f, k, at) =>
      k.writeUInt32LE(f.ifindex, at),
    );
    const stacked = p.stacked.map((s) => ({ ...s, cls: s.upper }));
    out.proc_stacked = yield* classMap(make, "moat_proc_stacked", 12, stacked, (s, k, at) =>
      stackedKeyCodec.encode({ ifindex: s.ifindex, mac: macBytes(s.mac) }, k, at),
    );
    out.proc_a = yield* u32Array(make, "moat_proc_a", p.a);
    out.proc_b = yield* u32Array(make, "moat_proc_b", p.b);
    out.proc_p = yield* u32Array(make, "moat_proc_p", p.p);
    out.proc_d = yield* u32Array(make, "moat_proc_d", p.d);
    return out;
  } catch (err) {
    for (const m of Object.values(out)) m.close();
    throw err;
  }
}
