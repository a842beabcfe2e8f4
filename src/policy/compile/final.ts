// The last step: remote class x Y -> first rule. Three tables share the work (docs/classifier.md):
//   remoteOnly[r * 2 + dir]  first rule constraining only the remote address (and direction);
//   anyRemote[y]             first rule without a remote constraint that matches Y;
//   remoteY[(r, y)]          first other rule matching both, stored only where it can win.

import { RULE_NONE } from "./image.ts";
import { DIRECTION_SPACE } from "./ports.ts";
import { classRules, invert, type ClassSets } from "./set-index.ts";

export interface RuleFlags {
  /** 1 = the rule does not constrain the remote address. */
  wildRemote: Uint8Array;
  /** 1 = the rule constrains only the remote address and the direction (it goes to remoteOnly). */
  remoteOnly: Uint8Array;
  /** Directions of each rule: bit 0 ingress, bit 1 egress. */
  directions: Uint8Array;
  /** The first rule matching every Y and every remote address (RULE_NONE if none). */
  firstEverywhere: number;
}

export interface FinalTables {
  remoteY: { r: Uint32Array; y: Uint32Array; rule: Uint32Array };
  anyRemote: Uint32Array;
  remoteOnly: Uint32Array;
}

export function remoteOnlyTable(remote: ClassSets, flags: RuleFlags): Uint32Array {
  const table = new Uint32Array(remote.count * 2).fill(RULE_NONE);
  for (let r = 0; r < remote.count; r++)
    for (const rule of classRules(remote, r)) {
      if (flags.remoteOnly[rule] !== 1) continue;
      const dirs = flags.directions[rule]!;
      if (dirs & 1 && table[r * 2] === RULE_NONE) table[r * 2] = rule;
      if (dirs & 2 && table[r * 2 + 1] === RULE_NONE) table[r * 2 + 1] = rule;
      if (table[r * 2] !== RULE_NONE && table[r * 2 + 1] !== RULE_NONE) break;
    }
  return table;
}

export function anyRemoteTable(y: ClassSets, flags: RuleFlags): Uint32Array {
  const table = new Uint32Array(y.count).fill(flags.firstEverywhere);
  for (let c = 0; c < y.count; c++)
    for (const rule of classRules(y, c))
      if (flags.wildRemote[rule] === 1) {
        if (rule < table[c]!) table[c] = rule;
        break;
      }
  return table;
}

/**
 * Called when remoteY outgrows its budget, with the entries counted so far per rule; `partial`:
 * counting stopped early, so `count` is a lower bound.
 */
export type OverBudget = (count: number, perRule: Uint32Array, partial: boolean) => never;

/**
 * `yDirections[y]`: the directions (bit 0 ingress, bit 1 egress) whose packets can reach Y class y;
 * an entry whose rule comes after the remoteOnly rule of every such direction can never win.
 */
export function remoteYTable(
  remote: ClassSets,
  y: ClassSets,
  flags: RuleFlags,
  anyRemote: Uint32Array,
  remoteOnly: Uint32Array,
  yDirections: Uint8Array,
  budget: number,
  over: OverBudget,
): FinalTables["remoteY"] {
  const ruleCount = flags.wildRemote.length;
  const keep = flags.remoteOnly.map((f) => 1 - f);
  const classesOf = invert(remote, ruleCount, keep);
  const ceiling = (r: number, dirs: number): number =>
    dirs === 1
      ? remoteOnly[r * 2]!
      : dirs === 2
        ? remoteOnly[r * 2 + 1]!
        : Math.max(remoteOnly[r * 2]!, remoteOnly[r * 2 + 1]!);
  const mark = new Uint32Array(remote.count);
  const perRule = new Uint32Array(ruleCount);
  let rs = new Uint32Array(1024);
  let ys = new Uint32Array(1024);
  let rules = new Uint32Array(1024);
  let n = 0;
  for (let cy = 0; cy < y.count; cy++) {
    const limit = anyRemote[cy]!;
    const dirs = yDirections[cy]!;
    for (const rule of classRules(y, cy)) {
      // rules are ascending: from the first remote wildcard on, anyRemote wins
      if (rule >= limit) break;
      for (let k = classesOf.off[rule]!; k < classesOf.off[rule + 1]!; k++) {
        const r = classesOf.classes[k]!;
        if (mark[r] === cy + 1) continue;
        mark[r] = cy + 1;
        if (rule > ceiling(r, dirs)) continue;
        if (n === rs.length) {
          if (n >= budget) over(n, perRule, true);
          [rs, ys, rules] = [grow(rs), grow(ys), grow(rules)];
        }
        rs[n] = r;
        ys[n] = cy;
        rules[n++] = rule;
        perRule[rule]!++;
      }
    }
  }
  if (n > budget) over(n, perRule, false);
  return { r: rs.slice(0, n), y: ys.slice(0, n), rule: rules.slice(0, n) };
}

function grow(a: Uint32Array<ArrayBuffer>): Uint32Array<ArrayBuffer> {
  const bigger = new Uint32Array(a.length * 2);
  bigger.set(a);
  return bigger;
}

/** Per Y class, the directions of the packets that can reach it (bit 0 ingress, bit 1 egress). */
export function yDirections(
  portClass: Uint32Array,
  np: number,
  nx: number,
  px: Uint32Array,
  ny: number,
): Uint8Array {
  const portDirs = new Uint8Array(np);
  for (let i = 0; i < portClass.length; i++)
    portDirs[portClass[i]!]! |= i < DIRECTION_SPACE ? 1 : 2;
  const dirs = new Uint8Array(ny);
  for (let p = 0; p < np; p++) for (let x = 0; x < nx; x++) dirs[px[p * nx + x]!]! |= portDirs[p]!;
  return dirs;
}
