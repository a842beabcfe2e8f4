// The one record of what each recent policy generation contains: its rules (in table order, the
// two default pseudo-rules last) and its redirects. Kernel events and counters carry indexes and
// a generation; this names them, for the live policy and the few before it, so an event that
// was judged just before a reload still names the rule and the redirect that decided it.
import type { ImageRule } from "../policy/compile/image.ts";
import type { RedirectTarget } from "../policy/compile/redirect.ts";
import { KeptRules, type RuleList } from "./kept-rules.ts";

export interface GenerationContents {
  rules: RuleList;
  redirects: readonly RedirectTarget[];
}

/** How many generations are kept: the live one, the one in the idle slot, and two more. */
export const KEPT_GENERATIONS = 4;
/** A policy of more rules than this is kept as names and bytes (kept-rules.ts), not objects. */
export const KEPT_AS_NAMES_FROM = 4096;

export class GenerationRecord {
  private readonly kept = new Map<number, GenerationContents>();
  private readonly keep: number;
  private readonly namesFrom: number;

  constructor(keep = KEPT_GENERATIONS, namesFrom = KEPT_AS_NAMES_FROM) {
    this.keep = keep;
    this.namesFrom = namesFrom;
  }

  /** Records `generation`'s contents and forgets the generations too old to keep. */
  record(generation: number, contents: GenerationContents): void {
    for (const g of this.kept.keys()) if (g <= generation - this.keep) this.kept.delete(g);
    if (contents.rules.length > this.namesFrom && !(contents.rules instanceof KeptRules)) {
      const rules = new KeptRules(contents.rules);
      this.shareNames(rules);
      this.kept.set(generation, { rules, redirects: contents.redirects });
      return;
    }
    if (Array.isArray(contents.rules)) this.share(contents.rules as readonly ImageRule[]);
    this.kept.set(generation, contents);
  }

  /**
   * The names of the kept generations kept as names become `rules`' equal ones: an older name
   * read on this thread would hold what its own policy was read from, as an older rule would.
   */
  private shareNames(rules: KeptRules): void {
    const olders: string[][] = [];
    for (const { rules: older } of this.kept.values())
      if (older instanceof KeptRules) olders.push(older.names);
    if (olders.length === 0) return;
    // by index first; the names that moved are looked for once, as namesMoved() does
    const moved = new Map<string, string | undefined>();
    for (const names of olders)
      for (let i = 0; i < names.length; i++) {
        const now = rules.names[i];
        if (now !== undefined && now === names[i]) names[i] = now;
        else moved.set(names[i]!, undefined);
      }
    if (moved.size === 0) return;
    let left = moved.size;
    for (let i = 0; i < rules.names.length && left > 0; i++) {
      const name = rules.names[i]!;
      if (moved.has(name) && moved.get(name) === undefined) {
        moved.set(name, name);
        left--;
      }
    }
    for (const names of olders)
      for (let i = 0; i < names.length; i++) {
        const now = moved.get(names[i]!);
        if (now !== undefined) names[i] = now;
      }
  }

  /**
   * Each kept generation's rule that `rules` has an equal of becomes that one: a reload that keeps
   * most of a big policy's rules keeps one object a rule, not one a generation. The newest
   * objects are the ones kept: an older generation's rule would hold what its own policy was read
   * from (a name read on this thread points into that policy's text). The newest kept generation
   * is compared rule by rule (by index, then by name where the rules moved); the older ones
   * already share its objects, and follow them.
   */
  private share(rules: readonly ImageRule[]): void {
    let newest: [number, GenerationContents] | undefined;
    for (const entry of this.kept) newest = entry; // a Map iterates in insertion order
    if (!newest || !Array.isArray(newest[1].rules)) return;
    const newestGeneration = newest[0];
    const contents = { rules: newest[1].rules as readonly ImageRule[] };
    const moved = new Map<ImageRule, ImageRule>();
    let byName: Map<string, ImageRule | undefined> | undefined;
    const shared = contents.rules.map((r, i) => {
      let now = rules[i];
      if (now?.name !== r.name) now = (byName ??= namesMoved(contents.rules, rules)).get(r.name);
      if (!now || !sameFields(now, r)) return r;
      moved.set(r, now);
      return now;
    });
    for (const [g, c] of this.kept) {
      if (!Array.isArray(c.rules)) continue;
      const older = c.rules as readonly ImageRule[];
      const next = g === newestGeneration ? shared : older.map((r) => moved.get(r) ?? r);
      this.kept.set(g, { rules: next, redirects: c.redirects });
    }
  }

  /** What `generation` contains, if it is recent enough to be kept. */
  of(generation: number): GenerationContents | null {
    return this.kept.get(generation) ?? null;
  }

  /** Rule `index` of `generation`, or null. */
  rule(index: number, generation: number): ImageRule | null {
    if (!Number.isInteger(index) || index < 0) return null;
    return this.kept.get(generation)?.rules.at(index) ?? null;
  }

  /** Redirect `index` of `generation`, or null. */
  redirect(index: number, generation: number): RedirectTarget | null {
    return this.kept.get(generation)?.redirects[index] ?? null;
  }
}

/**
 * The first rule of `rules` with each name that `kept` has where `rules` has another (the rules
 * that moved), as a walk finds it. Only those names are noted: a small policy replaced by one of
 * 100k rules has a thousand, where a Map of every new name took the daemon's thread ~20 ms.
 */
function namesMoved(
  kept: readonly ImageRule[],
  rules: readonly ImageRule[],
): Map<string, ImageRule | undefined> {
  const index = new Map<string, ImageRule | undefined>();
  for (let i = 0; i < kept.length; i++) {
    const name = kept[i]!.name;
    if (rules[i]?.name !== name) index.set(name, undefined);
  }
  let left = index.size;
  for (let i = 0; i < rules.length && left > 0; i++) {
    const r = rules[i]!;
    if (index.has(r.name) && index.get(r.name) === undefined) {
      index.set(r.name, r);
      left--;
    }
  }
  return index;
}

/** Whether `a` and `b` have the same fields with the same values (one level of objects deep). */
function sameFields(a: object, b: object, depth = 1): boolean {
  const va = a as Record<string, unknown>;
  const vb = b as Record<string, unknown>;
  for (const k in va) {
    const x = va[k];
    const y = vb[k];
    if (x === y) continue;
    const objects = typeof x === "object" && x !== null && typeof y === "object" && y !== null;
    if (!objects || depth === 0 || !sameFields(x, y, depth - 1)) return false;
  }
  // (no allocation: this runs for each rule of a big policy on every reload)
  for (const k in vb) if (!(k in va)) return false;
  return true;
}
