// Per rule, which dimensions it leaves open (wildcards), whether it can match at all, and which
// table its remote part goes to. Rules after the first catch-all can never decide: inactive.

import type { Analysis } from "./dimensions.ts";
import { RULE_NONE } from "./image.ts";

export interface Flags {
  active: Uint8Array;
  wildRemote: Uint8Array;
  wildLocal: Uint8Array;
  wildPort: Uint8Array;
  wildSport: Uint8Array;
  remoteOnly: Uint8Array;
  directions: Uint8Array;
  /** The first rule that matches every connection, or RULE_NONE; later rules are inactive. */
  catchAll: number;
}

export function ruleFlags(a: Analysis): Flags {
  const n = a.empty.length;
  const f: Flags = {
    active: new Uint8Array(n),
    wildRemote: new Uint8Array(n),
    wildLocal: new Uint8Array(n),
    wildPort: new Uint8Array(n),
    wildSport: new Uint8Array(n),
    remoteOnly: new Uint8Array(n),
    directions: new Uint8Array(n),
    catchAll: RULE_NONE,
  };
  const remote = a.remote4.wild;
  const local = a.local4.wild;
  const port = a.port.wild;
  const sport = a.sport.wild;
  for (let i = 0; i < n && f.catchAll === RULE_NONE; i++) {
    if (a.empty[i] === 1) continue;
    f.active[i] = 1;
    f.wildRemote[i] = remote[i]!;
    f.wildLocal[i] = local[i]!;
    f.wildPort[i] = port[i]!;
    f.wildSport[i] = sport[i]!;
    f.directions[i] = a.directions[i]!;
    if (remote[i] === 0 && local[i] === 1 && sport[i] === 1 && a.anyLayer4[i] === 1)
      f.remoteOnly[i] = 1;
    if (remote[i] === 1 && local[i] === 1 && port[i] === 1 && sport[i] === 1) f.catchAll = i;
  }
  return f;
}

/** 1 where every listed flag array is 1 (and the rule is active). */
export function and(active: Uint8Array, ...flags: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(active.length);
  for (let i = 0; i < active.length; i++) out[i] = active[i] === 1 ? 1 : 0;
  for (const f of flags) for (let i = 0; i < out.length; i++) if (f[i] !== 1) out[i] = 0;
  return out;
}
