// A big policy's rules as the generation record keeps them: a name each and one byte for the rest.
// Nearly every rule of the kernel's image is its name, action, mode and log (no duration, no
// limit, no reason); an object each (64 bytes) was ~6 MB at 100k rules, kept for the daemon's
// life to name events and counters. A rule is made when it is read (an event, a counter's name).
import type { ImageRule } from "../policy/compile/image.ts";

/** A generation's rules, read by index in table order (an array of them is one too). */
export interface RuleList extends Iterable<ImageRule> {
  readonly length: number;
  at(index: number): ImageRule | undefined;
}

/** A rule's byte: bit 0 block, bit 1 prevent, bit 2 log; RICH: kept as its object. */
const BLOCK = 1;
const PREVENT = 2;
const LOG = 4;
const RICH = 255;

/** The byte of a rule that is its name, action, mode and log only (keys in this order), or RICH. */
function plainKind(r: ImageRule): number {
  let keys = 0;
  for (const k in r) {
    const expected = PLAIN_KEYS[keys++];
    if (k !== expected) return RICH;
  }
  if (keys !== PLAIN_KEYS.length || r.maxDurationSeconds !== 0) return RICH;
  if (typeof r.name !== "string" || typeof r.log !== "boolean") return RICH;
  if (r.action !== "allow" && r.action !== "block") return RICH;
  if (r.mode !== "detect" && r.mode !== "prevent") return RICH;
  return (
    (r.action === "block" ? BLOCK : 0) | (r.mode === "prevent" ? PREVENT : 0) | (r.log ? LOG : 0)
  );
}

/** The keys of a plain rule, in the order compile.ts makes them. */
const PLAIN_KEYS = ["name", "action", "mode", "log", "maxDurationSeconds"];

export class KeptRules implements RuleList {
  readonly length: number;
  /** Each rule's name (shared with a later generation's equal names: GenerationRecord). */
  readonly names: string[];
  private readonly kinds: Uint8Array;
  /** The rules that are more than a name, action, mode and log, by index. */
  private readonly rich = new Map<number, ImageRule>();

  constructor(rules: RuleList) {
    this.length = rules.length;
    this.names = new Array<string>(rules.length);
    this.kinds = new Uint8Array(rules.length);
    let i = 0;
    for (const r of rules) {
      const kind = plainKind(r);
      this.kinds[i] = kind;
      this.names[i] = r.name;
      if (kind === RICH) this.rich.set(i, r);
      i++;
    }
  }

  at(index: number): ImageRule | undefined {
    if (!Number.isInteger(index)) return undefined;
    if (index < 0) index += this.length;
    if (index < 0 || index >= this.length) return undefined;
    const kind = this.kinds[index]!;
    if (kind === RICH) return this.rich.get(index);
    return {
      name: this.names[index]!,
      action: kind & BLOCK ? "block" : "allow",
      mode: kind & PREVENT ? "prevent" : "detect",
      log: (kind & LOG) !== 0,
      maxDurationSeconds: 0,
    };
  }

  *[Symbol.iterator](): Iterator<ImageRule> {
    for (let i = 0; i < this.length; i++) yield this.at(i)!;
  }

  /** The rules kept as their objects, with their indexes (the others have no limit, no reason). */
  richRules(): Iterable<[number, ImageRule]> {
    return this.rich;
  }
}

/** Rule `index`'s name, without making the rule. */
export function ruleName(rules: RuleList, index: number): string | undefined {
  return rules instanceof KeptRules ? rules.names[index] : rules.at(index)?.name;
}

/**
 * The rules that may have a limit, a reason or a duration, with their indexes: a kept list's rich
 * ones, every rule of another list.
 */
export function* richRules(rules: RuleList): Iterable<[number, ImageRule]> {
  if (rules instanceof KeptRules) {
    yield* rules.richRules();
    return;
  }
  let i = 0;
  for (const r of rules) yield [i++, r];
}
