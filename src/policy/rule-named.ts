// A policy's rule by its name, as events name it. The daemon looks up the rule of every event
// (its feed, its quarantine): a walk of the rules was one string compare a rule, 100k for each
// event of a 100k-rule policy. The index is built once per policy object, when first asked.
import type { PolicyModel, Rule } from "../config/index.ts";

const indexes = new WeakMap<PolicyModel, Map<string, Rule>>();

function indexOf(model: PolicyModel): Map<string, Rule> {
  let index = indexes.get(model);
  if (index) return index;
  index = new Map();
  // the first of rules with one name, as a walk in order finds it
  for (const r of model.rules) if (!index.has(r.name)) index.set(r.name, r);
  indexes.set(model, index);
  return index;
}

/** The first rule of `model` named `name`, if any. */
export function ruleNamed(model: PolicyModel, name: string): Rule | undefined {
  return indexOf(model).get(name);
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
