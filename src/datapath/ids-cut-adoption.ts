// The connections an ids cut blocked, marked as such (MOAT_CT_IDS_CUT) when a daemon adopts a
// pinned connection table, before its first policy goes live (docs/datapath.md, "Restart and
// upgrade"). A build that did not set the flag left them blocked without it, and the re-judging
// after the new daemon's first apply would let them through again. The kernel gives an entry the
// verdict of the rule that judged it (verdict_of in bpf/include/classify.h): blocked under an
// allow rule is the work of an ids cut alone (ids-cut.ts). An entry's rules are those of its
// generation, still in one of the adopted policy slots; an entry of a generation neither slot
// holds is left as it is.
import {
  Action,
  ct as ctCodec,
  CtFlag,
  EventType,
  meta as metaCodec,
  rule as ruleCodec,
  state as stateCodec,
} from "./abi.ts";
import { native } from "./addon.ts";
import type { BpfMap, BpfObject } from "./native.d.ts";

export interface IdsCutMarking {
  /** Entries read. */
  entries: number;
  /** Entries marked as an ids cut's. */
  marked: number;
}

/** BPF_EXIST: an entry gone meanwhile is not made again. */
const BPF_EXIST = 2;
const PAGE = 4096;
const V = ctCodec.fields;

const u32Key = (i: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(i);
  return b;
};

/** The rules table of each policy slot, by the generation the slot holds (none: no policy). */
function rulesByGeneration(object: Pick<BpfObject, "map">): Map<number, BpfMap> {
  const out = new Map<number, BpfMap>();
  const stateMap = object.map("state");
  const outer = object.map("tbl_rules");
  try {
    const raw = stateMap.lookup(u32Key(0));
    if (!raw) return out;
    const { meta } = stateCodec.decode(raw);
    for (const slot of [0, 1]) {
      const { generation } = metaCodec.decode(meta, slot * metaCodec.size);
      const id = generation ? outer.lookup(u32Key(slot)) : null;
      if (id) out.set(generation, native().BpfMap.openById(id.readUInt32LE()));
    }
    return out;
  } finally {
    stateMap.close();
    outer.close();
  }
}

/** Whether rule `index` of a slot's rules table is an allow rule (null: no such rule), read once. */
function allowRules(rules: BpfMap): (index: number) => boolean | null {
  const known = new Map<number, boolean | null>();
  return (index) => {
    let allow = known.get(index);
    if (allow === undefined) {
      const r = rules.lookup(u32Key(index));
      allow = r ? ruleCodec.decode(r).action === Action.allow : null;
      known.set(index, allow);
    }
    return allow;
  };
}

/** Sets MOAT_CT_IDS_CUT on the entry at `key` if it is still connection `id`, blocked. */
function markEntry(conntrack: BpfMap, key: Buffer, id: bigint): boolean {
  const value = conntrack.lookup(key);
  if (!value || value.readBigUInt64LE(V.id.offset) !== id) return false;
  if (value.readUInt8(V.verdict.offset) !== EventType.blocked) return false;
  const flags = value.readUInt32LE(V.flags.offset);
  value.writeUInt32LE((flags | CtFlag.idsCut) >>> 0, V.flags.offset);
  try {
    conntrack.update(key, value, BPF_EXIST);
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") return false;
    throw err;
  }
  return true;
}

/**
 * One pass over the adopted connection table: each entry blocked under an allow rule of its
 * generation is marked as an ids cut, so re-judgings keep it blocked (judge.h, rejudge).
 */
export function markIdsCuts(object: Pick<BpfObject, "map">): IdsCutMarking {
  const slots = rulesByGeneration(object);
  const conntrack = object.map("conntrack");
  const result: IdsCutMarking = { entries: 0, marked: 0 };
  try {
    const allow = new Map([...slots].map(([g, rules]) => [g, allowRules(rules)]));
    const keySize = conntrack.keySize;
    const valueSize = ctCodec.size;
    let cursor: Buffer | null = null;
    do {
      const page = conntrack.lookupBatch(cursor, PAGE);
      const { keys, values } = page;
      for (let i = 0; i < page.count; i++) {
        const at = i * valueSize;
        result.entries++;
        if (values.readUInt8(at + V.verdict.offset) !== EventType.blocked) continue;
        if (values.readUInt32LE(at + V.flags.offset) & CtFlag.idsCut) continue;
        const generation = values.readUInt32LE(at + V.generation.offset);
        const rule = values.readUInt32LE(at + V.rule.offset);
        if (allow.get(generation)?.(rule) !== true) continue;
        const key = keys.subarray(i * keySize, (i + 1) * keySize);
        if (markEntry(conntrack, key, values.readBigUInt64LE(at + V.id.offset))) result.marked++;
      }
      cursor = page.next;
    } while (cursor);
  } finally {
    conntrack.close();
    for (const rules of slots.values()) rules.close();
  }
  return result;
}
