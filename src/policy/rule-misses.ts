// Why the rules before the deciding one did not match a connection: the first section of each
// that rules it out, in words. `moat explain` and the web playground print these beside the
// verdict, so a reader sees why the rule they expected was passed over.
import type { PolicyModel } from "../config/model.ts";
import type { ConnectionFacts } from "./facts.ts";
import { prepareFacts } from "./evaluator.ts";
import { withImplicitRules } from "./implicit-rules.ts";
import { missedSection } from "./match-rule.ts";

export interface RuleMiss {
  rule: string;
  /** The rule's line in the policy file (0 for moat's own rules, which have none). */
  line: number;
  why: string;
}

/** Every rule up to the first that matches or may match, with why it did not. */
export function ruleMisses(written: PolicyModel, facts: ConnectionFacts): RuleMiss[] {
  const policy = withImplicitRules(written);
  const prepared = prepareFacts(facts);
  const out: RuleMiss[] = [];
  for (const rule of policy.rules) {
    const why = missedSection(rule, prepared);
    if (why === undefined) break;
    out.push({ rule: rule.name, line: rule.pos.line, why });
  }
  return out;
}
