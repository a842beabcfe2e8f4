// The reference evaluator: the meaning of a policy, as a pure function (no Node APIs; it runs in the
// browser too). The kernel datapath is tested against it; `moat explain` and the playground use it.
//
// First match wins; no match -> defaults.<direction> (rule "default"). In detect mode a block is
// reported as "detected" and nothing is dropped; a rule's own mode overrides the policy's.
//
// Unknown facts: a rule whose process, interface or layer7 section (or a hostname entry) cannot be
// judged from the facts given "maybe" matches. The evaluator never guesses: if a "maybe" rule comes
// before the first rule that surely matches, the result is { verdict: "deferred" } with the facts
// that would decide and every possible decision, in order. A packet hook that meets such a
// connection hands it to the later hook that has those facts.

import { parseIp, unmapIpv4 } from "../config/ip.ts";
import { formatDuration } from "../config/duration.ts";
import { describeLifetime } from "../config/decision.ts";
import {
  PROTOCOL_NUMBERS,
  type Action,
  type Mode,
  type PolicyModel,
  type Rule,
} from "../config/model.ts";
import {
  FactsError,
  type ConnectionFacts,
  type EndpointFacts,
  type ProtocolFact,
} from "./facts.ts";
import { protocolName } from "./match-layer4.ts";
import { matchRule, type PreparedFacts } from "./match-rule.ts";
import { describeRateLimit } from "./rate-limit.ts";
import { candidateRules } from "./rule-candidates.ts";
import { withImplicitRules } from "./implicit-rules.ts";
import { unjudgedBasics } from "./network-basics.ts";
import type { Outcome } from "./tri.ts";

export { FactsError, type ConnectionFacts } from "./facts.ts";

export interface Decision {
  verdict: "allowed" | "blocked" | "detected";
  action: Action;
  /** The rule's name, or "default". */
  rule: string;
  mode: Mode;
  /** In words, e.g. "rule ssh-from-corp (line 12): remote 10.1.2.3 in set:corp, tcp port 22". */
  reason: string;
  /** Line of the deciding rule in the policy file (absent for the defaults). */
  line?: number;
  /** Whether an event is reported: always for blocked/detected; for allowed only with `log: true`. */
  report: boolean;
  /** An allowed TCP connection older than this is reset (the rule's max_duration). */
  maxDurationSeconds?: number;
  /**
   * The rule's rate limit in words: the connection is allowed, and each packet its remote sends is
   * counted against the limit of its source (src/policy/rate-limit.ts models the algorithms).
   */
  rateLimit?: string;
  /** An egress connection let through is sent to this redirect's target (docs/redirect.md). */
  redirect?: { name: string; to: string; proxyProtocol?: "v1" | "v2"; line: number };
}

export interface Deferred {
  verdict: "deferred";
  /** The first rule that could not be judged. */
  rule: string;
  reason: string;
  /** The unknown facts that would decide, e.g. ["process"]. */
  needs: string[];
  /** What the decision can be, in rule order; the last one is certain to apply if none before it does. */
  possible: Decision[];
}

export type Evaluation = Decision | Deferred;

export interface EvaluateOptions {
  /**
   * false: a decision's reason is left empty, and its line, rate limit and redirect are left out,
   * for a caller that reads the verdict, the rule and the mode alone, per query (the DNS proxy's
   * judge). A rule's line is read from the policy's position table, which a first read makes
   * (docs/performance.md, B8). Default true.
   */
  words?: boolean;
}

export function evaluate(
  written: PolicyModel,
  facts: ConnectionFacts,
  options?: EvaluateOptions,
): Evaluation {
  // moat's own rules first (dns:doh), as the compiler puts them
  const policy = withImplicitRules(written);
  const prepared = prepareFacts(facts);
  const basic = basicNetworking(policy, prepared, facts);
  if (basic) return basic;
  const words = options?.words ?? true;
  const result = evaluateRules(policy, prepared, facts, words);
  if (result.verdict === "deferred" || !words) return result;
  return withRedirect(policy, prepared, result);
}

/**
 * Redirects apply to what the rules let through at connect() (egress, tcp or udp): the first
 * that surely matches sends the connection to its target. One that may match (its process or
 * interface is not in the facts) stops the search, noted in the reason: the kernel knows.
 */
function withRedirect(policy: PolicyModel, facts: PreparedFacts, d: Decision): Decision {
  const { protocol } = facts.transport;
  if (d.verdict === "blocked" || facts.direction !== "egress") return d;
  if (protocol !== PROTOCOL_NUMBERS.tcp && protocol !== PROTOCOL_NUMBERS.udp) return d;
  for (const r of policy.redirects) {
    const outcome = matchRule(r, facts);
    if (outcome.result === "no") continue;
    const to = r.to.family === 6 ? `[${r.to.ip}]:${r.to.port}` : `${r.to.ip}:${r.to.port}`;
    if (outcome.result === "maybe")
      return {
        ...d,
        reason: `${d.reason}; redirect ${r.name} (line ${r.pos.line}) sends it to ${to} if ${outcome.needs.join(", ")} match`,
      };
    return {
      ...d,
      reason: `${d.reason}; redirected to ${to} by redirect ${r.name} (line ${r.pos.line})`,
      redirect: {
        name: r.name,
        to,
        line: r.pos.line,
        ...(r.proxyProtocol ? { proxyProtocol: r.proxyProtocol } : {}),
      },
    };
  }
  return d;
}

/** The rule name of basic networking's decisions: unlike any rule's (those have no spaces). */
export const BASIC_NETWORKING = "(basic networking)";

/**
 * Basic networking (network-basics.ts) passes unjudged unless a rule names it: allowed, never
 * reported, never redirected.
 */
function basicNetworking(
  policy: PolicyModel,
  facts: PreparedFacts,
  raw: ConnectionFacts,
): Decision | undefined {
  const { protocol, serverPort, clientPort } = facts.transport;
  const ingress = facts.direction === "ingress";
  const c = unjudgedBasics(policy, {
    family: raw.family,
    protocol,
    localPort: ingress ? serverPort : clientPort,
    remotePort: ingress ? clientPort : serverPort,
    icmpType: raw.icmp?.type,
    hopLimit: raw.hopLimit,
  });
  if (!c) return undefined;
  return {
    verdict: "allowed",
    action: "allow",
    rule: BASIC_NETWORKING,
    mode: policy.mode,
    reason: `${c.name}${c.hopLimit ? ` with hop limit ${c.hopLimit}` : ""} is basic networking: it passes unjudged, as no rule names it`,
    report: false,
  };
}

function evaluateRules(
  policy: PolicyModel,
  prepared: PreparedFacts,
  facts: ConnectionFacts,
  words: boolean,
): Evaluation {
  const possible: Decision[] = [];
  const pending: { rule: Rule; needs: string[] }[] = [];
  for (const rule of candidateRules(policy, prepared.direction, prepared.transport)) {
    const outcome = matchRule(rule, prepared);
    if (outcome.result === "no") continue;
    const decision = decide(rule, outcome, facts.direction, words);
    if (outcome.result === "yes") {
      if (pending.length === 0) return decision;
      return defer(pending, [...possible, decision], words);
    }
    pending.push({ rule, needs: outcome.needs });
    possible.push(decision);
  }
  const fallback = byDefault(policy, facts.direction);
  return pending.length === 0 ? fallback : defer(pending, [...possible, fallback], words);
}

function verdictOf(action: Action, mode: Mode): Decision["verdict"] {
  if (action === "allow") return "allowed";
  return mode === "prevent" ? "blocked" : "detected";
}

const DETECT_NOTE = "; detect mode: reported, not dropped";

function decide(rule: Rule, outcome: Outcome, direction: string, words: boolean): Decision {
  const verdict = verdictOf(rule.action, rule.mode);
  if (!words) {
    const bare: Decision = {
      verdict,
      action: rule.action,
      rule: rule.name,
      mode: rule.mode,
      reason: "",
      report: verdict !== "allowed" || rule.log,
    };
    const max = rule.layer4?.maxDuration;
    if (max && rule.action === "allow") bare.maxDurationSeconds = max.seconds;
    return bare;
  }
  const { because, needs } = outcome;
  const known = because.join(", ");
  const what =
    outcome.result === "maybe"
      ? `${known ? `${known}, ` : ""}if ${needs.join(", ")} match`
      : known || describeEmpty(rule, direction);
  const decision: Decision = {
    verdict,
    action: rule.action,
    rule: rule.name,
    mode: rule.mode,
    reason: `${ruleTitle(rule)}: ${what}${verdict === "detected" ? DETECT_NOTE : ""}`,
    ...(rule.decision ? {} : { line: rule.pos.line }),
    report: verdict !== "allowed" || rule.log,
  };
  const max = rule.layer4?.maxDuration;
  if (max && rule.action === "allow") {
    decision.maxDurationSeconds = max.seconds;
    const past = rule.mode === "detect" ? "reported (detect) after" : "reset after";
    decision.reason += `; ${past} ${formatDuration(max.seconds)}`;
  }
  if (rule.rateLimit && rule.action === "allow")
    decision.rateLimit = describeRateLimit(rule.rateLimit, rule.mode);
  return decision;
}

/** "rule ssh (line 12)", or for a local decision "local decision d1 (1h, ..., by ...)". */
function ruleTitle(rule: Rule): string {
  const d = rule.decision;
  if (!d) return `rule ${rule.name} (line ${rule.pos.line})`;
  return `local decision ${d.id} (${rule.name}; ${describeLifetime(d)}; by ${d.by})`;
}

/** A rule with nothing to report matched because it names no condition that could fail. */
function describeEmpty(rule: Rule, direction: string): string {
  return rule.direction === "any"
    ? "matches every connection"
    : `matches every ${direction} connection`;
}

function byDefault(policy: PolicyModel, direction: "ingress" | "egress"): Decision {
  const action = policy.defaults[direction];
  const verdict = verdictOf(action, policy.mode);
  return {
    verdict,
    action,
    rule: "default",
    mode: policy.mode,
    reason: `no rule matched; defaults.${direction} = ${action}${verdict === "detected" ? DETECT_NOTE : ""}`,
    report: verdict !== "allowed",
  };
}

function defer(
  pending: { rule: Rule; needs: string[] }[],
  possible: Decision[],
  words: boolean,
): Deferred {
  const first = pending[0]?.rule;
  const needs = [...new Set(pending.flatMap((p) => p.needs))];
  if (!words)
    return { verdict: "deferred", rule: first?.name ?? "default", reason: "", needs, possible };
  const rules = pending.map((p) => ruleTitle(p.rule).replace(/^rule /, "")).join(", ");
  const outcomes = possible.map((d) => `${d.verdict} by ${d.rule}`).join(", else ");
  return {
    verdict: "deferred",
    rule: first?.name ?? "default",
    reason: `cannot decide without ${needs.join(", ")}: rule ${rules} may match; ${outcomes}`,
    needs,
    possible,
  };
}

const PROTOCOLS: Record<string, number> = PROTOCOL_NUMBERS;

function protocolNumber(protocol: ProtocolFact): number {
  const n = typeof protocol === "number" ? protocol : PROTOCOLS[protocol];
  if (n === undefined || !Number.isInteger(n) || n < 0 || n > 255)
    throw new FactsError(
      `'${String(protocol)}' is not a protocol (tcp, udp, icmp, icmpv6 or 0-255)`,
    );
  return n;
}

function address(endpoint: EndpointFacts, side: string, family: 4 | 6): PreparedFacts["local"] {
  const parsed = parseIp(endpoint.ip);
  if (!parsed.ok) throw new FactsError(`${side} address: ${parsed.error}`);
  if (parsed.value.family !== family)
    throw new FactsError(`${side} address ${endpoint.ip} is not IPv${family}`);
  // "::ffff:a.b.c.d" is IPv4 on the wire, and is judged as such
  const result: PreparedFacts["local"] = { address: unmapIpv4(parsed.value), text: endpoint.ip };
  if (endpoint.names) result.names = endpoint.names;
  return result;
}

function port(endpoint: EndpointFacts, side: string, protocol: number): number | undefined {
  if (endpoint.port === undefined) {
    if (protocol === PROTOCOL_NUMBERS.tcp || protocol === PROTOCOL_NUMBERS.udp)
      throw new FactsError(`${side} port is missing (${protocolName(protocol)} has ports)`);
    return undefined;
  }
  if (!Number.isInteger(endpoint.port) || endpoint.port < 0 || endpoint.port > 65535)
    throw new FactsError(`${side} port ${endpoint.port} is out of range 0-65535`);
  return endpoint.port;
}

/** The facts with their text parsed; throws FactsError for facts that are not a connection. */
export function prepareFacts(facts: ConnectionFacts): PreparedFacts {
  if (facts.direction !== "ingress" && facts.direction !== "egress")
    throw new FactsError(`direction must be ingress or egress, got '${String(facts.direction)}'`);
  const protocol = protocolNumber(facts.protocol);
  const localPort = port(facts.local, "local", protocol);
  const remotePort = port(facts.remote, "remote", protocol);
  const ingress = facts.direction === "ingress";
  return {
    direction: facts.direction,
    local: address(facts.local, "local", facts.family),
    remote: address(facts.remote, "remote", facts.family),
    transport: {
      protocol,
      // the server side is this host for ingress, the peer for egress
      serverPort: ingress ? localPort : remotePort,
      clientPort: ingress ? remotePort : localPort,
      ...(facts.icmp ? { icmp: facts.icmp } : {}),
    },
    raw: facts,
  };
}
