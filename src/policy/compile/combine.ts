// Two dimensions A and B -> their combination C, as a table (a, b) -> c. The rules matching a pair
// are S_A(a) ∩ S_B(b), where S = explicit set ∪ wildcards; C keeps only the explicit part
//   E_C(a, b) = (E_A(a) ∩ W_B) ∪ (W_A ∩ E_B(b)) ∪ (E_A(a) ∩ E_B(b))
// and W_C = W_A ∩ W_B stays implicit. Pairs are deduplicated by the Zobrist key of E_C, built from
// per-class partial keys plus the rules explicit in both, so each pair costs one hash lookup.

import {
  classRules,
  invert,
  KeyMap,
  type ClassSets,
  type ClassStore,
  type Zobrist,
} from "./set-index.ts";

export interface Combined {
  /** a * B.count + b -> class of C. */
  table: Uint32Array;
  sets: ClassSets;
}

interface PartialKeys {
  h1: Int32Array;
  h2: Int32Array;
  size: Uint32Array;
}

/** Per class, the key of its explicit rules that are wildcards of the other dimension. */
function partialKeys(sets: ClassSets, otherWild: Uint8Array, z: Zobrist): PartialKeys {
  const h1 = new Int32Array(sets.count);
  const h2 = new Int32Array(sets.count);
  const size = new Uint32Array(sets.count);
  for (let c = 0; c < sets.count; c++)
    for (const rule of classRules(sets, c))
      if (otherWild[rule] === 1) {
        h1[c]! ^= z.z1[rule]!;
        h2[c]! ^= z.z2[rule]!;
        size[c]!++;
      }
  return { h1, h2, size };
}

export function combine(
  a: ClassSets,
  b: ClassSets,
  wildA: Uint8Array,
  wildB: Uint8Array,
  store: ClassStore,
  z: Zobrist,
): Combined {
  const ruleCount = z.z1.length;
  const nb = b.count;
  const keysA = partialKeys(a, wildB, z);
  const keysB = partialKeys(b, wildA, z);
  const explicitA = wildA.map((w) => 1 - w);
  const inverseB = invert(b, ruleCount, explicitA);
  const m1 = new Int32Array(nb);
  const m2 = new Int32Array(nb);
  const mSize = new Uint32Array(nb);
  const touched = new Uint32Array(nb);
  const seen = new KeyMap();
  const scratch = new Uint32Array(ruleCount);
  const table = new Uint32Array(a.count * nb);

  const members = (ra: Uint32Array, rb: Uint32Array): Uint32Array => {
    let i = 0;
    let j = 0;
    let n = 0;
    while (i < ra.length || j < rb.length) {
      const x = i < ra.length ? ra[i]! : Infinity;
      const y = j < rb.length ? rb[j]! : Infinity;
      if (x === y) {
        scratch[n++] = x;
        i++;
        j++;
      } else if (x < y) {
        if (wildB[x] === 1) scratch[n++] = x;
        i++;
      } else {
        if (wildA[y] === 1) scratch[n++] = y;
        j++;
      }
    }
    return scratch.subarray(0, n);
  };

  for (let ca = 0; ca < a.count; ca++) {
    const ra = classRules(a, ca);
    let nTouched = 0;
    for (const rule of ra) {
      if (wildB[rule] === 1) continue;
      for (let k = inverseB.off[rule]!; k < inverseB.off[rule + 1]!; k++) {
        const cb = inverseB.classes[k]!;
        if (mSize[cb] === 0) touched[nTouched++] = cb;
        m1[cb]! ^= z.z1[rule]!;
        m2[cb]! ^= z.z2[rule]!;
        mSize[cb]!++;
      }
    }
    const a1 = keysA.h1[ca]!;
    const a2 = keysA.h2[ca]!;
    const aSize = keysA.size[ca]!;
    const row = ca * nb;
    for (let cb = 0; cb < nb; cb++) {
      const h1 = a1 ^ keysB.h1[cb]! ^ m1[cb]!;
      const h2 = a2 ^ keysB.h2[cb]! ^ m2[cb]!;
      const size = aSize + keysB.size[cb]! + mSize[cb]!;
      let cls = seen.get(h1, h2, size);
      if (cls < 0) {
        cls = store.classOf(members(ra, classRules(b, cb)));
        seen.set(h1, h2, size, cls);
      }
      table[row + cb] = cls;
    }
    for (let t = 0; t < nTouched; t++) {
      const cb = touched[t]!;
      m1[cb] = 0;
      m2[cb] = 0;
      mSize[cb] = 0;
    }
  }
  return { table, sets: store.finish() };
}
