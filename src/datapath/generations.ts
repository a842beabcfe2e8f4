// The one record of what each recent policy generation contains: its rules (in table order, the
// two default pseudo-rules last) and its redirects. Kernel events and counters carry indexes and
// a generation; this names them, for the live policy and the few before it, so an event that
// was judged just before a reload still names the rule and the redirect that decided it.
import type { ImageRule } from "../policy/compile/image.ts";
import type { RedirectTarget } from "../policy/compile/redirect.ts";

export interface GenerationContents {
  rules: readonly ImageRule[];
  redirects: readonly RedirectTarget[];
}

/** How many generations are kept: the live one, the one in the idle slot, and two more. */
export const KEPT_GENERATIONS = 4;

export class GenerationRecord {
  private readonly kept = new Map<number, GenerationContents>();
  private readonly keep: number;

  constructor(keep = KEPT_GENERATIONS) {
    this.keep = keep;
  }

  /** Records `generation`'s contents and forgets the generations too old to keep. */
  record(generation: number, contents: GenerationContents): void {
    for (const g of this.kept.keys()) if (g <= generation - this.keep) this.kept.delete(g);
    this.share(contents.rules);
    this.kept.set(generation, contents);
  }

  /**
   * Each kept generation's rule that `rules` has an equal of (by name) becomes that one: a reload
   * that keeps most of a big policy's rules keeps one object a rule, not one a generation. The
   * newest objects are the ones kept: an older generation's rule would hold what its own policy
   * was read from (a name read on this thread points into that policy's text).
   */
  private share(rules: readonly ImageRule[]): void {
    if (this.kept.size === 0) return;
    const byName = new Map<string, ImageRule>();
    for (const r of rules) byName.set(r.name, r);
    for (const [g, c] of this.kept) {
      const shared = c.rules.map((r) => {
        const now = byName.get(r.name);
        return now && sameFields(now, r) ? now : r;
      });
      this.kept.set(g, { rules: shared, redirects: c.redirects });
    }
  }

  /** What `generation` contains, if it is recent enough to be kept. */
  of(generation: number): GenerationContents | null {
    return this.kept.get(generation) ?? null;
  }

  /** Rule `index` of `generation`, or null. */
  rule(index: number, generation: number): ImageRule | null {
    return this.kept.get(generation)?.rules[index] ?? null;
  }

  /** Redirect `index` of `generation`, or null. */
  redirect(index: number, generation: number): RedirectTarget | null {
    return this.kept.get(generation)?.redirects[index] ?? null;
  }
}

/** Whether `a` and `b` have the same fields with the same values (one level of objects deep). */
function sameFields(a: object, b: object, depth = 1): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  const va = a as Record<string, unknown>;
  const vb = b as Record<string, unknown>;
  return ka.every((k) => {
    const x = va[k];
    const y = vb[k];
    if (x === y) return true;
    const objects = typeof x === "object" && x !== null && typeof y === "object" && y !== null;
    return objects && depth > 0 && sameFields(x, y, depth - 1);
  });
}
