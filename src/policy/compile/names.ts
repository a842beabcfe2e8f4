// Name classes (docs/classifier.md, "Names"): the hostname patterns of the rules' remote lists,
// and the sets of them some set of DNS names can match. The kernel never sees a name: the DNS
// proxy binds (identity, address) to the class of the names it saw for that address, and the
// names image (policy-image.ts) matches the class as if it were an address.
//
// A name matches a set of patterns decided by its longest suffix that is a pattern's base (or
// an ancestor of one) and how many labels it has below that suffix (one, or more). So the
// patterns' bases, their ancestors, and one name one and two labels below each of them reach
// every set a single name can match. A name set (the names of one address, CNAME merges) matches
// the union of its names' sets: unions are enumerated too, up to a budget.

import { namePattern } from "../../config/address-entry.ts";
import type { AddressEntry, PolicyModel, Rule } from "../../config/model.ts";

/**
 * Unions of classes stop at this many classes (0 matches no pattern). The sets single names match
 * are classes even past it.
 */
export const NAME_CLASS_BUDGET = 4096;

interface Pattern {
  kind: "exact" | "one" | "any";
  base: string;
}

const normal = (name: string): string => name.toLowerCase().replace(/\.$/, "");

function parsePattern(text: string): Pattern {
  const p = normal(text);
  if (p.startsWith("**.")) return { kind: "any", base: p.slice(3) };
  if (p.startsWith("*.")) return { kind: "one", base: p.slice(2) };
  return { kind: "exact", base: p };
}

/** The hostname entries of a list, sets expanded. */
export function hostnameEntries(entries: readonly AddressEntry[]): AddressEntry[] {
  return entries.flatMap((e) =>
    e.kind === "hostname" ? [e] : e.kind === "set" ? hostnameEntries(e.entries) : [],
  );
}

/** The hostname patterns a rule's remote list names (`x`, `*.x`, `**.x`), distinct. */
export function rulePatterns(rule: Rule): string[] {
  const entries = hostnameEntries(rule.layer3?.remote?.entries ?? []);
  return [
    ...new Set(
      entries.map((e) => (e.kind === "hostname" ? normal(namePattern(e)) : "")).filter(Boolean),
    ),
  ];
}

/** Whether the entries hold a hostname entry, sets expanded. */
const hasHostname = (entries: readonly AddressEntry[]): boolean => {
  for (const e of entries)
    if (e.kind === "hostname" || (e.kind === "set" && hasHostname(e.entries))) return true;
  return false;
};

/** Whether a rule names hosts in its remote list (a list without hostname entries never does). */
export const namesHosts = (rule: Rule): boolean => {
  const remote = rule.layer3?.remote;
  return remote != null && hasHostname(remote.entries) && rulePatterns(rule).length > 0;
};

export class NameClasses {
  /** Every distinct pattern, by index. */
  readonly patterns: readonly string[];
  /** Class n (1-based) is classes[n - 1]: sorted pattern indexes. */
  readonly classes: readonly (readonly number[])[];
  /** Unions of classes were cut short by the budget (classOf may then fall back). */
  readonly truncated: boolean;
  /** Name sets whose union was not a class (budget): classOf gave the first name's class. */
  overBudget = 0;
  readonly #ids = new Map<string, number>();
  readonly #exact = new Map<string, number[]>();
  readonly #one = new Map<string, number[]>();
  readonly #any = new Map<string, number[]>();
  #signature: string | undefined;

  constructor(patterns: readonly string[], budget = NAME_CLASS_BUDGET) {
    this.patterns = [...new Set(patterns.map(normal))];
    this.patterns.forEach((text, i) => {
      const p = parsePattern(text);
      const by = p.kind === "exact" ? this.#exact : p.kind === "one" ? this.#one : this.#any;
      by.set(p.base, [...(by.get(p.base) ?? []), i]);
    });
    const classes: number[][] = [];
    let truncated = false;
    /** Adds a new non-empty set; false for a known one, or (`bounded`) past the budget. */
    const add = (set: number[], bounded: boolean): boolean => {
      const key = set.join(",");
      if (set.length === 0 || this.#ids.has(key)) return false;
      if (bounded && classes.length >= budget) {
        truncated = true;
        return false;
      }
      classes.push(set);
      this.#ids.set(key, classes.length);
      return true;
    };
    // every set a single name can match is a class, whatever the budget: a name alone always
    // matches what it should
    const singles: number[][] = [];
    for (const name of this.#representatives()) {
      const set = this.#match(name);
      if (add(set, false)) singles.push(set);
    }
    // union closure, smallest unions first (a union of k classes is one more single away from a
    // union of k - 1), within the budget
    for (let at = 0; at < classes.length && !truncated; at++)
      for (const s of singles) add(union(classes[at]!, s), true);
    this.classes = classes;
    this.truncated = truncated;
  }

  /**
   * Equal for two policies whose hostname patterns make the same classes: then classOf gives
   * every set of names the same class in both, and bindings made for one hold for the other.
   */
  get signature(): string {
    this.#signature ??= JSON.stringify([this.patterns, this.classes, this.truncated]);
    return this.#signature;
  }

  /** Names reaching every set a single name can match. */
  #representatives(): string[] {
    const bases = new Set<string>();
    for (const p of this.patterns) {
      const labels = parsePattern(p).base.split(".");
      for (let i = 0; i < labels.length; i++) bases.add(labels.slice(i).join("."));
    }
    const labels = new Set([...bases].flatMap((b) => b.split(".")));
    let filler = "zz0";
    for (let i = 1; labels.has(filler); i++) filler = `zz${i}`;
    return [...bases].flatMap((b) => [b, `${filler}.${b}`, `${filler}.${filler}.${b}`]);
  }

  /** The patterns one name matches (sorted indexes). */
  #match(host: string): number[] {
    const name = normal(host);
    const out: number[] = [...(this.#exact.get(name) ?? [])];
    let dot = name.indexOf(".");
    let first = true;
    while (dot >= 0) {
      const suffix = name.slice(dot + 1);
      if (first) out.push(...(this.#one.get(suffix) ?? []));
      out.push(...(this.#any.get(suffix) ?? []));
      first = false;
      dot = name.indexOf(".", dot + 1);
    }
    return [...new Set(out)].sort((a, b) => a - b);
  }

  /** The class of one pattern set; 0 for none or one not enumerated. */
  #classOfSet(set: readonly number[]): number {
    return set.length === 0 ? 0 : (this.#ids.get(set.join(",")) ?? 0);
  }

  /**
   * The class of a set of names (the names one address was given): the union of the patterns
   * each matches. A union past the budget gives the first name's class (counted in overBudget).
   */
  classOf(names: readonly string[]): number {
    let set: number[] = [];
    for (const n of names) set = union(set, this.#match(n));
    const cls = this.#classOfSet(set);
    if (cls !== 0 || set.length === 0) return cls;
    this.overBudget++;
    for (const n of names) {
      const one = this.#classOfSet(this.#match(n));
      if (one !== 0) return one;
    }
    return 0;
  }

  /** The classes whose pattern sets share a pattern with `patterns` (a rule's). */
  classesMatching(patterns: readonly string[]): number[] {
    const want = new Set(patterns.map((p) => this.patterns.indexOf(normal(p))));
    const out: number[] = [];
    this.classes.forEach((set, i) => {
      if (set.some((p) => want.has(p))) out.push(i + 1);
    });
    return out;
  }

  /** Number of classes (the highest class number). */
  get count(): number {
    return this.classes.length;
  }
}

function union(a: readonly number[], b: readonly number[]): number[] {
  const out: number[] = [];
  let i = 0;
  let k = 0;
  while (i < a.length || k < b.length) {
    const x = a[i];
    const y = b[k];
    if (y === undefined || (x !== undefined && x < y)) {
      out.push(x!);
      i++;
    } else if (x === undefined || y < x) {
      out.push(y);
      k++;
    } else {
      out.push(x);
      i++;
      k++;
    }
  }
  return out;
}

/** The name classes of a policy's hostname entries (empty when it has none). */
export function nameClassesOf(model: PolicyModel, budget = NAME_CLASS_BUDGET): NameClasses {
  return new NameClasses(model.rules.flatMap(rulePatterns), budget);
}
