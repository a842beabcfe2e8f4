// The name bindings (docs/classifier.md, "Names"): which name class an address has for one
// identity (the process that asked the DNS question: cgroup, executable, uid; all zero for
// everyone, the hosts file), until when. One hash map per policy slot (tbl_names): a reload fills
// the idle slot's from the DNS proxy's store before the flip; the proxy's answers write the live
// one. All synchronous, so an answer's binding can never fall between the fill and the flip.
import { nameBinding as bindingCodec, nameKey as keyCodec, NAME_BINDINGS } from "./abi.ts";
import { formatAddress, mappedAddress } from "./address.ts";
import { native } from "./addon.ts";
import type { BpfMap, BpfObject, MapBatch } from "./native.d.ts";
import { createMap } from "./table-maps.ts";

/** Who asked: the kernel's owner fields. All zero: any identity (the hosts file). */
export interface NameIdentity {
  cgroupId: bigint;
  exeIno: bigint;
  exeDev: number;
  uid: number;
}

export interface NameBinding {
  identity: NameIdentity;
  /** The address the answer gave (IPv4 or IPv6 text). */
  ip: string;
  /** Its names' class (NameClasses.classOf), >= 1. */
  nclass: number;
  /** CLOCK_MONOTONIC ns (Datapath.monotonicNs()) after which the binding is gone. */
  expiresNs: bigint;
}

const MAP_HASH = 1;
const BPF_F_NO_PREALLOC = 1;

/** The map key of an identity's binding of an address (struct moat_name_key). */
export function keyOf(identity: NameIdentity, ip: string): Buffer {
  const key = Buffer.alloc(keyCodec.size);
  keyCodec.encode(
    {
      cgroup_id: identity.cgroupId,
      exe_ino: identity.exeIno,
      exe_dev: identity.exeDev,
      uid: identity.uid,
      addr: mappedAddress(ip),
    },
    key,
  );
  return key;
}

function valueOf(b: NameBinding): Buffer {
  const value = Buffer.alloc(bindingCodec.size);
  bindingCodec.encode({ nclass: b.nclass, expires_ns: b.expiresNs }, value);
  return value;
}

/** Every binding of a map (identity, address, class, expiry). */
/** The identity and address of a struct moat_name_key. */
export function decodeKey(k: Buffer): { identity: NameIdentity; ip: string } {
  const key = keyCodec.decode(k);
  const addr = Buffer.from(key.addr);
  const v4 = addr.subarray(0, 10).every((b) => b === 0) && addr[10] === 0xff && addr[11] === 0xff;
  return {
    identity: {
      cgroupId: key.cgroup_id,
      exeIno: key.exe_ino,
      exeDev: key.exe_dev,
      uid: key.uid,
    },
    ip: formatAddress(addr, v4 ? 4 : 6),
  };
}

/** Every binding of a map (identity, address, class, expiry). */
export function readBindings(map: BpfMap): NameBinding[] {
  const out: NameBinding[] = [];
  for (let k = map.nextKey(null); k; k = map.nextKey(k)) {
    const raw = map.lookup(k);
    if (!raw) continue;
    const value = bindingCodec.decode(raw);
    out.push({ ...decodeKey(k), nclass: value.nclass, expiresNs: value.expires_ns });
  }
  return out;
}

/** A fresh, empty bindings map for one slot (the inner map of tbl_names). */
export function namesMap(entries = NAME_BINDINGS): BpfMap {
  return createMap(
    "moat_names",
    MAP_HASH,
    keyCodec.size,
    bindingCodec.size,
    entries,
    BPF_F_NO_PREALLOC,
  );
}

/** Writes bindings (replacing an entry for the same key); counts those the map had no room for. */
export function writeBindings(
  map: BpfMap,
  bindings: readonly NameBinding[],
): { written: number; full: number } {
  let written = 0;
  let full = 0;
  for (const b of bindings) {
    const key = keyOf(b.identity, b.ip);
    const value = valueOf(b);
    try {
      map.update(key, value);
      written++;
    } catch (err) {
      // E2BIG: no room for a new key (an existing key is always replaced in place)
      if ((err as { code?: string }).code !== "E2BIG") throw err;
      full++;
    }
  }
  return { written, full };
}

export function deleteBindings(
  map: BpfMap,
  keys: readonly { identity: NameIdentity; ip: string }[],
): void {
  for (const k of keys) map.delete(keyOf(k.identity, k.ip));
}

/** The tbl_names outer map and the handle of each slot's bindings this daemon wrote. */
export class NameMaps {
  private readonly outer: BpfMap;
  private readonly slots: (BpfMap | undefined)[] = [undefined, undefined];
  /**
   * The classes each slot's map holds the DNS proxy's bindings for (NameClasses.signature);
   * null: adopted, or filled with other bindings.
   */
  private readonly signatures: (string | null)[] = [null, null];

  constructor(object: BpfObject) {
    this.outer = object.map("tbl_names");
    // a previous daemon's bindings (the policy group adopted): written and read in place until
    // this daemon's first apply replaces them
    for (const slot of [0, 1]) {
      const key = Buffer.alloc(4);
      key.writeUInt32LE(slot);
      const id = this.outer.lookup(key);
      if (id) this.slots[slot] = native().BpfMap.openById(id.readUInt32LE());
    }
  }

  /** A new map for the idle slot, filled; placed by place() just before the flip. */
  prepare(bindings: readonly NameBinding[]): { map: BpfMap; written: number; full: number } {
    const map = namesMap();
    try {
      return { map, ...writeBindings(map, bindings) };
    } catch (err) {
      map.close();
      throw err;
    }
  }

  /**
   * `slot`'s map, a handle of its own, when this daemon filled it for the same classes: a reload
   * that leaves the hostname rules as they were shares it with the other slot, refilling nothing
   * (the DNS proxy's answers write the live map, which is then both slots' map).
   */
  sharable(slot: number, signature: string): BpfMap | null {
    const map = this.slots[slot];
    if (!map || this.signatures[slot] !== signature) return null;
    return native().BpfMap.openById(map.id());
  }

  /**
   * The outer-map write that puts `map` (holding the proxy's bindings for the classes of
   * `signature`, if given) into `slot` (before its meta goes live), and `done`, to call once it
   * has run (or failed): the slot's previous map is dropped and `map` kept.
   */
  placing(
    slot: number,
    map: BpfMap,
    signature: string | null,
  ): { batch: MapBatch; done: () => void } {
    const keys = Buffer.alloc(4);
    keys.writeUInt32LE(slot);
    const values = Buffer.alloc(4);
    values.writeUInt32LE(map.fd);
    const done = () => {
      this.slots[slot]?.close();
      this.slots[slot] = map;
      this.signatures[slot] = signature;
    };
    return { batch: { map: this.outer, keys, values, count: 1 }, done };
  }

  /** Forgets `slot`'s map (its policy names no hosts: the kernel does not read it). */
  drop(slot: number): void {
    this.slots[slot]?.close();
    this.slots[slot] = undefined;
    this.signatures[slot] = null;
  }

  /** The map of `slot`, if it has one (placed by this daemon or adopted). */
  of(slot: number): BpfMap | null {
    return this.slots[slot] ?? null;
  }

  close(): void {
    for (const m of this.slots) m?.close();
    this.outer.close();
    this.slots.fill(undefined);
  }
}
