// A policy's rule by its name, as events name it. The daemon looks up the rule of every event
// (its feed, its quarantine): a walk of the rules was one string compare a rule, 100k for each
// event of a 100k-rule policy. The index is built once per policy object, when first asked; it
// holds where each rule is, not the rule (a big policy's rules may be let go and made again:
// src/host/kept-rules.ts).
import type { PolicyModel, Rule } from "../config/index.ts";

const indexes = new WeakMap<PolicyModel, Map<string, number>>();

function indexOf(model: PolicyModel): Map<string, number> {
  let index = indexes.get(model);
  if (index) return index;
  index = new Map();
  // the first of rules with one name, as a walk in order finds it
  const rules = model.rules;
  for (let at = 0; at < rules.length; at++)
    if (!index.has(rules[at]!.name)) index.set(rules[at]!.name, at);
  indexes.set(model, index);
  return index;
}

/** The first rule of `model` named `name`, if any. */
export function ruleNamed(model: PolicyModel, name: string): Rule | undefined {
  const at = indexOf(model).get(name);
  return at === undefined ? undefined : model.rules[at];
}

const quarantines = new WeakMap<PolicyModel, boolean>();

/** Whether any rule of `model` has a quarantine (worked out once per policy object). */
export function quarantinesAny(model: PolicyModel): boolean {
  let any = quarantines.get(model);
  if (any === undefined) {
    any = model.rules.some((r) => r.quarantine !== undefined);
    quarantines.set(model, any);
  }
  return any;
}
