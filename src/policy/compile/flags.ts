// Per rule, which dimensions it leaves open (wildcards), whether it can match at all, and which
// table its remote part goes to. Rules after the first catch-all can never decide: inactive.

import type { RuleDimensions } from "./dimensions.ts";
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

export function ruleFlags(dims: RuleDimensions[]): Flags {
  const n = dims.length;
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
  for (let i = 0; i < n && f.catchAll === RULE_NONE; i++) {
    const d = dims[i]!;
    if (d.empty) continue;
    f.active[i] = 1;
    f.wildRemote[i] = d.remote ? 0 : 1;
    f.wildLocal[i] = d.local ? 0 : 1;
    f.wildPort[i] = d.port ? 0 : 1;
    f.wildSport[i] = d.sport ? 0 : 1;
    f.directions[i] = d.directions;
    if (d.remote && !d.local && !d.sport && d.anyLayer4) f.remoteOnly[i] = 1;
    if (!d.remote && !d.local && !d.port && !d.sport) f.catchAll = i;
  }
  return f;
}

/** 1 where every listed flag array is 1 (and the rule is active). */
export function and(active: Uint8Array, ...flags: Uint8Array[]): Uint8Array {
  return active.map((a, i) => (a === 1 && flags.every((f) => f[i] === 1) ? 1 : 0));
}
