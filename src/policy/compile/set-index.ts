// Deduplication of rule sets by incremental (Zobrist) hashing: every rule gets two random 32-bit
// words; a set's key is the XOR of its rules' words plus its size, so adding or removing a rule
// updates the key in O(1). Two sets are taken as equal when both words and the size agree (a
// false match needs a 64-bit collision between two sets of the same size).

/** Per-rule random words (deterministic: the same policy always compiles to the same tables). */
export interface Zobrist {
  z1: Int32Array;
  z2: Int32Array;
}

export function zobrist(count: number, seed = 0x6d6f6174): Zobrist {
  const z1 = new Int32Array(count);
  const z2 = new Int32Array(count);
  let s = seed | 0;
  // mulberry32
  const next = (): number => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return t ^ (t >>> 14);
  };
  for (let i = 0; i < count; i++) {
    z1[i] = next();
    z2[i] = next();
  }
  return { z1, z2 };
}

/** Open-addressing hash map from a set key (h1, h2, size) to a uint32 value. */
export class KeyMap {
  private mask = 0;
  private used = 0;
  private k1 = new Int32Array(0);
  private k2 = new Int32Array(0);
  private ks = new Uint32Array(0);
  /** value + 1; 0 = free slot. */
  private v = new Uint32Array(0);

  constructor(capacity = 1024) {
    this.alloc(Math.max(16, 2 ** Math.ceil(Math.log2(capacity * 2))));
  }

  get size(): number {
    return this.used;
  }

  /** The value stored for the key, or -1. */
  get(h1: number, h2: number, size: number): number {
    const { mask, k1, k2, ks, v } = this;
    let i = slot(h1, size) & mask;
    for (;;) {
      const value = v[i]!;
      if (value === 0) return -1;
      if (k1[i] === h1 && k2[i] === h2 && ks[i] === size) return value - 1;
      i = (i + 1) & mask;
    }
  }

  /** Stores a value for a key that is not in the map. */
  set(h1: number, h2: number, size: number, value: number): void {
    if ((this.used + 1) * 2 > this.mask + 1) this.grow();
    this.place(h1, h2, size, value + 1);
    this.used++;
  }

  private place(h1: number, h2: number, size: number, stored: number): void {
    const { mask, v } = this;
    let i = slot(h1, size) & mask;
    while (v[i] !== 0) i = (i + 1) & mask;
    this.k1[i] = h1;
    this.k2[i] = h2;
    this.ks[i] = size;
    v[i] = stored;
  }

  private alloc(capacity: number): void {
    this.mask = capacity - 1;
    this.k1 = new Int32Array(capacity);
    this.k2 = new Int32Array(capacity);
    this.ks = new Uint32Array(capacity);
    this.v = new Uint32Array(capacity);
  }

  private grow(): void {
    const { k1, k2, ks, v } = this;
    this.alloc((this.mask + 1) * 2);
    for (let i = 0; i < v.length; i++) if (v[i] !== 0) this.place(k1[i]!, k2[i]!, ks[i]!, v[i]!);
  }
}

const slot = (h1: number, size: number): number => h1 ^ Math.imul(size, 0x9e3779b1);

/** Classes of a dimension: class c's explicit rules are rules[off[c]..off[c+1]), ascending. */
export interface ClassSets {
  count: number;
  off: Uint32Array;
  rules: Uint32Array;
}

export function classRules(sets: ClassSets, c: number): Uint32Array {
  return sets.rules.subarray(sets.off[c], sets.off[c + 1]);
}

/**
 * Collects the distinct explicit rule sets of a dimension and numbers them. A set is cut after its
 * first *terminal* rule (one that matches every value of every other dimension still to be
 * combined): rules after it can never be the first match, and dropping them merges classes.
 */
export class ClassStore {
  private readonly index = new KeyMap();
  private readonly z: Zobrist;
  private readonly terminal: Uint8Array | null;
  private off: number[] = [0];
  private rules = new Uint32Array(1024);
  private length = 0;

  constructor(z: Zobrist, terminal: Uint8Array | null) {
    this.z = z;
    this.terminal = terminal;
  }

  get count(): number {
    return this.off.length - 1;
  }

  /** The class of an ascending rule list (the list is copied). */
  classOf(members: ArrayLike<number>, from = 0, to = members.length): number {
    const { z1, z2 } = this.z;
    const terminal = this.terminal;
    let h1 = 0;
    let h2 = 0;
    let end = from;
    while (end < to) {
      const rule = members[end++]!;
      h1 ^= z1[rule]!;
      h2 ^= z2[rule]!;
      if (terminal !== null && terminal[rule] === 1) break;
    }
    const size = end - from;
    const known = this.index.get(h1, h2, size);
    if (known >= 0) return known;
    const cls = this.count;
    this.index.set(h1, h2, size, cls);
    this.ensure(this.length + size);
    for (let i = from; i < end; i++) this.rules[this.length++] = members[i]!;
    this.off.push(this.length);
    return cls;
  }

  finish(): ClassSets {
    return {
      count: this.count,
      off: Uint32Array.from(this.off),
      rules: this.rules.slice(0, this.length),
    };
  }

  private ensure(capacity: number): void {
    if (capacity <= this.rules.length) return;
    const bigger = new Uint32Array(Math.max(capacity, this.rules.length * 2));
    bigger.set(this.rules.subarray(0, this.length));
    this.rules = bigger;
  }
}

/** rule -> the classes whose explicit set holds it (CSR), for rules with keep[rule] = 1. */
export interface Inverse {
  off: Uint32Array;
  classes: Uint32Array;
}

export function invert(sets: ClassSets, ruleCount: number, keep?: Uint8Array): Inverse {
  const off = new Uint32Array(ruleCount + 1);
  for (const rule of sets.rules) if (!keep || keep[rule] === 1) off[rule + 1]!++;
  for (let i = 0; i < ruleCount; i++) off[i + 1]! += off[i]!;
  const fill = off.slice(0, ruleCount);
  const classes = new Uint32Array(off[ruleCount]!);
  for (let c = 0; c < sets.count; c++)
    for (let k = sets.off[c]!; k < sets.off[c + 1]!; k++) {
      const rule = sets.rules[k]!;
      if (!keep || keep[rule] === 1) classes[fill[rule]!++] = c;
    }
  return { off, classes };
}

/** Per rule, how many classes of a dimension hold it explicitly. */
export function classesPerRule(sets: ClassSets, ruleCount: number): Uint32Array {
  const counts = new Uint32Array(ruleCount);
  for (const rule of sets.rules) counts[rule]!++;
  return counts;
}
