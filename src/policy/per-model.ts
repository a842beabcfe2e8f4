// What the daemon asks of a policy again and again (at each install, each host change, each
// query) worked out once per policy object: a model is not changed once accepted, and each answer
// walks every rule (4-6 ms at 100k rules; a big policy's rules are made again to be walked once
// let go, src/host/kept-rules.ts).
import type { PolicyModel } from "../config/model.ts";

/** `fn`, its answer for a model remembered as long as the model lives. */
export function perModel<T>(fn: (model: PolicyModel) => T): (model: PolicyModel) => T {
  const known = new WeakMap<PolicyModel, { answer: T }>();
  return (model) => {
    let kept = known.get(model);
    if (!kept) known.set(model, (kept = { answer: fn(model) }));
    return kept.answer;
  };
}
