// What the daemon asks of a policy again and again (at each install, each host change, each
// query) worked out once per policy object: a model is not changed once accepted, and each answer
// walks every rule (4-6 ms at 100k rules; a big policy's rules are made again to be walked once
// let go, src/host/kept-rules.ts).
import type { PolicyModel, Rule } from "../config/model.ts";

/** `fn`, its answer for a model remembered as long as the model lives. */
export function perModel<T>(fn: (model: PolicyModel) => T): (model: PolicyModel) => T {
  const known = new WeakMap<PolicyModel, { answer: T }>();
  return (model) => {
    let kept = known.get(model);
    if (!kept) known.set(model, (kept = { answer: fn(model) }));
    return kept.answer;
  };
}

/**
 * `fn`, its answer for a model remembered as long as the model and the rules it had when asked
 * live: a big policy's rules are let go when unread and made again, and an answer that holds
 * their parts (a copy of the policy judged) goes with them.
 */
export function perRules<T>(fn: (model: PolicyModel) => T): (model: PolicyModel) => T {
  const known = new WeakMap<PolicyModel, WeakMap<readonly Rule[], { answer: T }>>();
  return (model) => {
    let byRules = known.get(model);
    if (!byRules) known.set(model, (byRules = new WeakMap()));
    const rules = model.rules;
    let kept = byRules.get(rules);
    if (!kept) byRules.set(rules, (kept = { answer: fn(model) }));
    return kept.answer;
  };
}
