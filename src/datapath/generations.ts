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
    this.kept.set(generation, contents);
    for (const g of this.kept.keys()) if (g <= generation - this.keep) this.kept.delete(g);
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
