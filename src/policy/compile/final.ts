// The last step: remote class x Y -> first rule. Three tables share the work (docs/classifier.md):
//   remoteOnly[r * 2 + dir]  first rule constraining only the remote address (and direction);
//   anyRemote[y]             first rule without a remote constraint that matches Y;
//   remoteY[(r, y)]          first other rule matching both, stored only where it can win.

import { RULE_NONE } from "./image.ts";
import { DIRECTION_SPACE } from "./ports.ts";
import { invert, type ClassSets } from "./set-index.ts";

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
    for (let i = remote.off[r]!; i < remote.off[r + 1]!; i++) {
      const rule = remote.rules[i]!;
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
    for (let i = y.off[c]!; i < y.off[c + 1]!; i++) {
      const rule = y.rules[i]!;
      if (flags.wildRemote[rule] === 1) {
        if (rule < table[c]!) table[c] = rule;
        break;
      }
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
  const keep = new Uint8Array(ruleCount);
  for (let i = 0; i < ruleCount; i++) keep[i] = 1 - flags.remoteOnly[i]!;
  const classesOf = invert(remote, ruleCount, keep);
  const ceiling = (r: number, dirs: number): number =>
    dirs === 1
      ? remoteOnly[r * 2]!
      : dirs === 2
        ? remoteOnly[r * 2 + 1]!
        : Math.max(remoteOnly[r * 2]!, remoteOnly[r * 2 + 1]!);
  // no remoteOnly rule (a big file's rules often all name ports): no entry is ever above its
  // ceiling, and the table need not be read for each
  let anyCeiling = false;
  for (let i = 0; i < ruleCount && !anyCeiling; i++) anyCeiling = flags.remoteOnly[i] === 1;
  const mark = new Uint32Array(remote.count);
  // the entries in chunks (the arrays are copied once, at their size, at the end)
  const chunks: { r: Uint32Array; y: Uint32Array; rule: Uint32Array }[] = [];
  // the entries per rule so far, counted from the chunks only for the message of a table too big
  // (not counted as they come: one more read of a table in a random order of rules each)
  const perRule = (count: number): Uint32Array => {
    const out = new Uint32Array(ruleCount);
    let left = count;
    for (const chunk of chunks)
      for (let i = 0; i < chunk.rule.length && left > 0; i++, left--) out[chunk.rule[i]!]!++;
    return out;
  };
  let rs = new Uint32Array(0);
  let ys = rs;
  let rules = rs;
  let at = 0;
  let n = 0;
  // the budget is checked as a doubling array's growth would check it: at 1024, 2048, ...
  let check = 1024;
  for (let cy = 0; cy < y.count; cy++) {
    const limit = anyRemote[cy]!;
    const dirs = yDirections[cy]!;
    for (let i = y.off[cy]!; i < y.off[cy + 1]!; i++) {
      const rule = y.rules[i]!;
      // rules are ascending: from the first remote wildcard on, anyRemote wins
      if (rule >= limit) break;
      for (let k = classesOf.off[rule]!; k < classesOf.off[rule + 1]!; k++) {
        const r = classesOf.classes[k]!;
        if (mark[r] === cy + 1) continue;
        mark[r] = cy + 1;
        if (anyCeiling && rule > ceiling(r, dirs)) continue;
        if (n === check) {
          if (n >= budget) over(n, perRule(n), true);
          check *= 2;
        }
        if (at === rs.length) {
          const size = Math.min(CHUNK, Math.max(1024, n));
          chunks.push({
            r: (rs = new Uint32Array(size)),
            y: (ys = new Uint32Array(size)),
            rule: (rules = new Uint32Array(size)),
          });
          at = 0;
        }
        rs[at] = r;
        ys[at] = cy;
        rules[at++] = rule;
        n++;
      }
    }
  }
  if (n > budget) over(n, perRule(n), false);
  const out = { r: new Uint32Array(n), y: new Uint32Array(n), rule: new Uint32Array(n) };
  let to = 0;
  for (const chunk of chunks) {
    const length = Math.min(chunk.r.length, n - to);
    out.r.set(chunk.r.subarray(0, length), to);
    out.y.set(chunk.y.subarray(0, length), to);
    out.rule.set(chunk.rule.subarray(0, length), to);
    to += length;
  }
  return out;
}

/** The largest chunk of remoteY entries. */
const CHUNK = 1 << 16;

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
