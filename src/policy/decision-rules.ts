// Local decisions as rules: each becomes one rule named `decision:<id>`, judged in the layer
// withImplicitRules puts before the file's rules, so the evaluator and the compiler see the same
// thing. The name has a colon, which no rule name the file writes can have.
import { parseAddressEntry } from "../config/address-entry.ts";
import { unmapIpv4 } from "../config/ip.ts";
import {
  PROTOCOL_NUMBERS,
  type AddressEntry,
  type LocalDecision,
  type PolicyModel,
  type Rule,
  type SourcePos,
} from "../config/model.ts";

export const DECISION_PREFIX = "decision:";

/** The rule name of decision `id`. */
export const decisionRuleName = (id: string): string => `${DECISION_PREFIX}${id}`;

/** The decision id of a rule name, or null for another rule. */
export function decisionIdOf(rule: string): string | null {
  return rule.startsWith(DECISION_PREFIX) ? rule.slice(DECISION_PREFIX.length) : null;
}

/** The rules of the model's local decisions, in their order (index 0: reindexed by the caller). */
export function decisionRules(model: PolicyModel): Rule[] {
  return (model.decisions ?? []).map((d) => decisionRule(d, model));
}

function remoteEntry(d: LocalDecision, pos: SourcePos): AddressEntry {
  const parsed = parseAddressEntry(d.remote);
  // decisionProblems checked the text before it was stored
  if (!parsed.ok) throw new Error(`decision ${d.id}: ${parsed.error}`);
  const t = parsed.value.target;
  if (t.kind === "interval") {
    // an IPv4-mapped remote (a dual-stack socket's connection) is the IPv4 address it carries,
    // as connections to it are judged
    const start = unmapIpv4({ family: t.family, value: t.start });
    const end = unmapIpv4({ family: t.family, value: t.end });
    const mapped = start.family === 4 && end.family === 4;
    return {
      kind: "interval",
      family: mapped ? 4 : t.family,
      start: mapped ? start.value : t.start,
      end: mapped ? end.value : t.end,
      text: d.remote,
      negate: false,
      pos,
    };
  }
  if (t.kind === "hostname")
    return {
      kind: "hostname",
      name: t.name,
      wildcard: t.wildcard,
      text: d.remote,
      negate: false,
      pos,
    };
  throw new Error(`decision ${d.id}: '${d.remote}' names a set`);
}

function decisionRule(d: LocalDecision, model: PolicyModel): Rule {
  const pos: SourcePos = { file: "(local decisions)", line: 0, col: 0, path: `decisions.${d.id}` };
  const protocol = d.protocol ? PROTOCOL_NUMBERS[d.protocol] : null;
  const layer4 =
    protocol !== null || d.port !== undefined
      ? {
          protocol,
          ...(d.port !== undefined
            ? { ports: [{ lo: d.port, hi: d.port, text: String(d.port), pos }] }
            : {}),
          pos,
        }
      : undefined;
  return {
    index: 0,
    name: decisionRuleName(d.id),
    direction: d.direction,
    action: d.action,
    // a person's block is carried out in detect mode too: it is a decision, not a guess
    mode: d.action === "block" ? "prevent" : model.mode,
    ownMode: d.action === "block",
    // a decision for one connection learns of its use from its event
    log: d.lifetime === "once",
    decision: d,
    pos,
    layer3: { remote: { entries: [remoteEntry(d, pos)], pos }, pos },
    ...(layer4 ? { layer4 } : {}),
    ...(d.process
      ? {
          process: {
            path: [d.process.path],
            // absent: the program whoever runs it (a decision stored before users were named)
            ...(d.process.user !== undefined ? { user: [d.process.user] } : {}),
            pos,
          },
        }
      : {}),
  };
}
