// A DNS query judged as the reference evaluator judges a connection: egress, udp or tcp, from
// the client to the server it asked (port 53), by the asking process, with layer7 dns {name}.
import type { ProcessFacts } from "../attribution/index.ts";
import type { PolicyModel } from "../config/index.ts";
import { evaluate, type ConnectionFacts } from "../policy/index.ts";

export interface QueryVerdict {
  verdict: "allowed" | "blocked" | "detected";
  rule: string;
  mode: "detect" | "prevent";
  /** Whether the deciding rule judges the DNS name (`layer7.dns.name`); set when not allowed. */
  byName?: boolean;
}

export type QueryJudge = (facts: ConnectionFacts) => QueryVerdict;

export interface QueryContext {
  protocol: "udp" | "tcp";
  client: { ip: string; port: number };
  server: { ip: string; port: number };
  name: string;
  process: ProcessFacts | null;
  /** The names this identity's lookups gave the server's address (none: no identity). */
  serverNames?: string[] | undefined;
}

const WITHOUT_WORDS = { words: false } as const;

export function queryFacts(q: QueryContext): ConnectionFacts {
  const family = q.server.ip.includes(":") && !q.server.ip.startsWith("::ffff:") ? 6 : 4;
  // built field by field (per query; no spreads), in the order the evaluator always saw
  const remote: ConnectionFacts["remote"] = { ip: q.server.ip, port: q.server.port };
  if (q.serverNames) remote.names = q.serverNames;
  const facts: ConnectionFacts = {
    direction: "egress",
    protocol: q.protocol,
    family,
    local: { ip: q.client.ip, port: q.client.port },
    remote,
  };
  if (q.process) facts.process = q.process;
  facts.layer7 = { dns: { name: q.name, over_tls: false } };
  return facts;
}

/**
 * The running policy's judge. A rule the proxy cannot decide (it names an interface, which the
 * proxy does not know) is taken as matching: the first decision it may lead to stands. Judged
 * without words: no query's event says why, and a reason reads its rule's line.
 */
export function policyJudge(model: () => PolicyModel): QueryJudge {
  return (facts) => {
    const m = model();
    const e = evaluate(m, facts, WITHOUT_WORDS);
    const d = e.verdict === "deferred" ? e.possible[0] : e;
    if (!d) return { verdict: "allowed", rule: "default", mode: m.mode };
    const verdict: QueryVerdict = { verdict: d.verdict, rule: d.rule, mode: d.mode };
    if (d.verdict !== "allowed") verdict.byName = judgesName(m, d.rule);
    return verdict;
  };
}

/** Whether the rule named `rule` has `layer7.dns.name` (the defaults and moat's own have not). */
function judgesName(model: PolicyModel, rule: string): boolean {
  for (const r of model.rules) if (r.name === rule) return r.layer7?.dns?.name !== undefined;
  return false;
}
