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

/**
 * Open-addressing hash map from a set key (h1, h2, size) to a uint32 value. A slot's four words
 * (h1, h2, size, value + 1; 0 = free) are side by side: a probe reads one cache line.
 */
export class KeyMap {
  private mask = 0;
  private used = 0;
  private slots = new Int32Array(0);

  constructor(capacity = 1024) {
    this.alloc(Math.max(16, 2 ** Math.ceil(Math.log2(capacity * 2))));
  }

  get size(): number {
    return this.used;
  }

  /** The value stored for the key, or -1. */
  get(h1: number, h2: number, size: number): number {
    const { mask, slots } = this;
    let i = slot(h1, size) & mask;
    for (;;) {
      const at = i << 2;
      const value = slots[at + 3]!;
      if (value === 0) return -1;
      if (slots[at] === h1 && slots[at + 1] === h2 && slots[at + 2] === (size | 0))
        return (value >>> 0) - 1;
      i = (i + 1) & mask;
    }
  }

  /** Forgets every key (the room stays, for the next user). */
  clear(): void {
    if (this.used === 0) return;
    this.slots.fill(0);
    this.used = 0;
  }

  /** Makes room for `more` keys beyond those stored, at once (fewer growths). */
  reserve(more: number): void {
    const want = this.used + more;
    if (want * 2 <= this.mask + 1) return;
    const old = this.slots;
    this.alloc(2 ** Math.ceil(Math.log2(want * 2)));
    for (let at = 0; at < old.length; at += 4)
      if (old[at + 3] !== 0)
        this.place(old[at]!, old[at + 1]!, old[at + 2]! >>> 0, old[at + 3]! >>> 0);
  }

  /** Stores a value for a key that is not in the map. */
  set(h1: number, h2: number, size: number, value: number): void {
    if ((this.used + 1) * 2 > this.mask + 1) this.grow();
    this.place(h1, h2, size, value + 1);
    this.used++;
  }

  private place(h1: number, h2: number, size: number, stored: number): void {
    const { mask, slots } = this;
    let i = slot(h1, size) & mask;
    while (slots[(i << 2) + 3] !== 0) i = (i + 1) & mask;
    const at = i << 2;
    slots[at] = h1;
    slots[at + 1] = h2;
    slots[at + 2] = size;
    slots[at + 3] = stored;
  }

  private alloc(capacity: number): void {
    this.mask = capacity - 1;
    this.slots = new Int32Array(4 * capacity);
  }

  private grow(): void {
    const old = this.slots;
    this.alloc((this.mask + 1) * 2);
    for (let at = 0; at < old.length; at += 4)
      if (old[at + 3] !== 0)
        this.place(old[at]!, old[at + 1]!, old[at + 2]! >>> 0, old[at + 3]! >>> 0);
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
  private readonly index: KeyMap;
  private readonly z: Zobrist;
  private readonly terminal: Uint8Array | null;
  /** off[0..count]: class c's rules are rules[off[c]..off[c + 1]). */
  private off = new Uint32Array(1024);
  private classes = 0;
  private rules = new Uint32Array(1024);
  private length = 0;

  /**
   * `index`: a map to use (cleared), whose previous store is done with it: the stores of one
   * compile, made one after the other, share one map's room.
   */
  constructor(z: Zobrist, terminal: Uint8Array | null, index?: KeyMap) {
    this.z = z;
    this.terminal = terminal;
    index?.clear();
    this.index = index ?? new KeyMap();
  }

  get count(): number {
    return this.classes;
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
    return this.create(members, from, end, h1, h2);
  }

  /**
   * classOf for a list whose key (h1, h2, to - from) known() does not know: that key is noted
   * too. Only a list cut by a terminal rule is hashed again (its cut's key).
   */
  add(members: ArrayLike<number>, from: number, to: number, h1: number, h2: number): number {
    const terminal = this.terminal;
    let end = to;
    if (terminal !== null)
      for (let i = from; i < to; i++)
        if (terminal[members[i]!] === 1) {
          end = i + 1;
          break;
        }
    // not cut: a set never met
    if (end === to) return this.create(members, from, to, h1, h2);
    const { z1, z2 } = this.z;
    let c1 = 0;
    let c2 = 0;
    for (let i = from; i < end; i++) {
      c1 ^= z1[members[i]!]!;
      c2 ^= z2[members[i]!]!;
    }
    let cls = this.index.get(c1, c2, end - from);
    if (cls < 0) cls = this.create(members, from, end, c1, c2);
    this.index.set(h1, h2, to - from, cls);
    return cls;
  }

  /** A new class: members[from..end), whose key (h1, h2, end - from) is not in the index. */
  private create(
    members: ArrayLike<number>,
    from: number,
    end: number,
    h1: number,
    h2: number,
  ): number {
    const size = end - from;
    const cls = this.classes++;
    this.index.set(h1, h2, size, cls);
    this.ensure(this.length + size);
    const rules = this.rules;
    let length = this.length;
    for (let i = from; i < end; i++) rules[length++] = members[i]!;
    this.length = length;
    if (this.classes === this.off.length) {
      const bigger = new Uint32Array(this.off.length * 2);
      bigger.set(this.off);
      this.off = bigger;
    }
    this.off[this.classes] = length;
    return cls;
  }

  /**
   * The class of a set met before, by its key (h1, h2, size) before any cut; -1 if not known. A
   * set and its cut share the class, so both keys live in the one index.
   */
  known(h1: number, h2: number, size: number): number {
    return this.index.get(h1, h2, size);
  }

  /**
   * A hint: about `more` sets are coming (their keys are given room at once). A hint only: the
   * store grows past it as needed.
   */
  expect(more: number): void {
    this.index.reserve(more);
  }

  finish(): ClassSets {
    return {
      count: this.count,
      // views: the store only ever appends past them
      off: this.off.subarray(0, this.classes + 1),
      rules: this.rules.subarray(0, this.length),
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
