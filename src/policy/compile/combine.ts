// Two dimensions A and B -> their combination C, as a table (a, b) -> c. The rules matching a pair
// are S_A(a) ∩ S_B(b), where S = explicit set ∪ wildcards; C keeps only the explicit part
//   E_C(a, b) = (E_A(a) ∩ W_B) ∪ (W_A ∩ E_B(b)) ∪ (E_A(a) ∩ E_B(b))
// and W_C = W_A ∩ W_B stays implicit. Pairs are deduplicated by the Zobrist key of E_C, built from
// per-class partial keys plus the rules explicit in both, so each pair costs one hash lookup.

import { invert, type ClassSets, type ClassStore, type Zobrist } from "./set-index.ts";

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
  const { off, rules } = sets;
  const { z1, z2 } = z;
  for (let c = 0; c < sets.count; c++) {
    let k1 = 0;
    let k2 = 0;
    let n = 0;
    for (let k = off[c]!; k < off[c + 1]!; k++) {
      const rule = rules[k]!;
      if (otherWild[rule] !== 1) continue;
      k1 ^= z1[rule]!;
      k2 ^= z2[rule]!;
      n++;
    }
    h1[c] = k1;
    h2[c] = k2;
    size[c] = n;
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
  const explicitA = new Uint8Array(wildA.length);
  for (let i = 0; i < wildA.length; i++) explicitA[i] = 1 - wildA[i]!;
  const inverseB = invert(b, ruleCount, explicitA);
  const m1 = new Int32Array(nb);
  const m2 = new Int32Array(nb);
  const mSize = new Uint32Array(nb);
  const touched = new Uint32Array(nb);
  const scratch = new Uint32Array(ruleCount);
  const table = new Uint32Array(a.count * nb);
  // a new class per pair at most, and (mostly) not many more than the classes combined
  store.expect(Math.min(a.count * nb, a.count + nb));

  // the members of pair (ca, cb) into scratch; their number
  const { off: offA, rules: rulesA } = a;
  const { off: offB, rules: rulesB } = b;
  const members = (ca: number, cb: number): number => {
    let i = offA[ca]!;
    const iEnd = offA[ca + 1]!;
    let j = offB[cb]!;
    const jEnd = offB[cb + 1]!;
    let n = 0;
    while (i < iEnd && j < jEnd) {
      const x = rulesA[i]!;
      const y = rulesB[j]!;
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
    for (; i < iEnd; i++) if (wildB[rulesA[i]!] === 1) scratch[n++] = rulesA[i]!;
    for (; j < jEnd; j++) if (wildA[rulesB[j]!] === 1) scratch[n++] = rulesB[j]!;
    return n;
  };

  const { z1, z2 } = z;
  const { h1: b1, h2: b2, size: bSizes } = keysB;
  const { off: invOff, classes: invClasses } = inverseB;
  for (let ca = 0; ca < a.count; ca++) {
    let nTouched = 0;
    for (let k = offA[ca]!; k < offA[ca + 1]!; k++) {
      const rule = rulesA[k]!;
      if (wildB[rule] === 1) continue;
      for (let k = invOff[rule]!; k < invOff[rule + 1]!; k++) {
        const cb = invClasses[k]!;
        if (mSize[cb] === 0) touched[nTouched++] = cb;
        m1[cb]! ^= z1[rule]!;
        m2[cb]! ^= z2[rule]!;
        mSize[cb]!++;
      }
    }
    const a1 = keysA.h1[ca]!;
    const a2 = keysA.h2[ca]!;
    const aSize = keysA.size[ca]!;
    const row = ca * nb;
    for (let cb = 0; cb < nb; cb++) {
      const h1 = a1 ^ b1[cb]! ^ m1[cb]!;
      const h2 = a2 ^ b2[cb]! ^ m2[cb]!;
      const size = aSize + bSizes[cb]! + mSize[cb]!;
      let cls = store.known(h1, h2, size);
      // a key not met: the members' own key is (h1, h2, size), so add() takes it as it is
      if (cls < 0) cls = store.add(scratch, 0, members(ca, cb), h1, h2);
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
