// A relayed connection judged as the reference evaluator judges any connection: the whole
// policy, first match, with the layer7 facts the relay saw. A rule the relay cannot decide (it
// needs a fact nobody knows here, e.g. a certificate not seen yet) is taken as matching: the
// first decision it may lead to stands, as for the DNS proxy's queries.
import type { PolicyModel } from "../config/model.ts";
import { evaluate, withImplicitRules } from "../policy/index.ts";
import type { Evaluation } from "../policy/evaluator.ts";
import type { ConnectionFacts, Layer7Facts, TlsFacts } from "../policy/facts.ts";
import type { L7Decision } from "./types.ts";

export function decide(
  model: PolicyModel,
  facts: ConnectionFacts,
  layer7: Layer7Facts,
): L7Decision {
  if (hostKeyUnseen(layer7)) return decideWithoutHostKey(model, facts, layer7);
  return decisionOf(model, evaluate(model, { ...facts, layer7 }));
}

function decisionOf(model: PolicyModel, e: Evaluation, note: string[] = []): L7Decision {
  const d = e.verdict === "deferred" ? e.possible[0] : e;
  const unknown = e.verdict === "deferred" ? [`not known here: ${e.needs.join(", ")}`] : [];
  if (!d)
    return {
      verdict: "allowed",
      rule: "default",
      forward: true,
      explanation: [e.reason, ...unknown, ...note],
      mode: model.mode,
      report: false,
    };
  return {
    verdict: d.verdict,
    rule: d.rule,
    forward: d.verdict !== "blocked",
    explanation: [d.reason, ...unknown, ...note],
    mode: d.mode,
    report: d.report,
  };
}

/** Stands in for a host key moat did not see: no pin names it (pins are "SHA256:..."). */
const UNSEEN_HOST_KEY = "(host key not seen)";
/** Stands in for a version line moat did not see: only a `*` glob matches it. */
const UNSEEN_VERSION = "(version not seen)";
const UNSEEN_NOTE = "host key not seen: no rule pinning host keys allows it";

/** An SSH server's judgement without its host key (a key exchange moat does not read). */
function hostKeyUnseen(layer7: Layer7Facts): boolean {
  const ssh = layer7.ssh;
  return ssh !== undefined && ssh.host_key === undefined && ssh.user === undefined;
}

/**
 * Judged as TLS judges a fact it cannot see with `unknown: block`: a rule naming host keys lets
 * nothing through (the key counts as none it names) and blocks (the key counts as one it names).
 * The rules are walked as the evaluator offers them with the key open: a blocking one before
 * the first rule that decides with the key unmet stands; an allowing one only the key could meet
 * is passed over.
 */
function decideWithoutHostKey(
  model: PolicyModel,
  facts: ConnectionFacts,
  layer7: Layer7Facts,
): L7Decision {
  const open = evaluate(model, { ...facts, layer7 });
  if (open.verdict !== "deferred") return decisionOf(model, open);
  // a version not seen meets no glob but "*" (a connection moat cannot tell is SSH)
  const ssh = { version: UNSEEN_VERSION, ...layer7.ssh, host_key: UNSEEN_HOST_KEY };
  const unmet = evaluate(model, { ...facts, layer7: { ...layer7, ssh } });
  const first = unmet.verdict === "deferred" ? unmet.possible[0] : unmet;
  for (const outcome of open.possible) {
    if (outcome.rule === first?.rule) break;
    if (outcome.verdict !== "allowed") return decisionOf(model, outcome, [UNSEEN_NOTE]);
  }
  return decisionOf(model, unmet, [UNSEEN_NOTE]);
}

/**
 * A decision that lets the connection through and that the facts not known yet may still lead
 * to: the judgement itself when it forwards, else the first such possibility; null when every
 * outcome blocks. What a connection being judged (an SSH server's host key, a TLS probe) may
 * open an upstream for.
 */
export function mayForward(
  model: PolicyModel,
  facts: ConnectionFacts,
  layer7: Layer7Facts,
): L7Decision | null {
  const e = evaluate(model, { ...facts, layer7 });
  const outcomes = e.verdict === "deferred" ? e.possible : [e];
  const d = outcomes.find((o) => o.verdict !== "blocked");
  if (!d) return null;
  return {
    verdict: d.verdict,
    rule: d.rule,
    forward: true,
    explanation: [d.reason],
    mode: d.mode,
    report: d.report,
  };
}

/** Which TLS facts some rule judges that a handshake shows late (the chosen version, the certificate). */
interface LateTlsConditions {
  version: boolean;
  certificate: boolean;
}

const lateConditions = new WeakMap<PolicyModel, LateTlsConditions>();

function lateTlsConditions(model: PolicyModel): LateTlsConditions {
  let known = lateConditions.get(model);
  if (!known) {
    const tls = withImplicitRules(model).rules.map((r) => r.layer7?.tls);
    known = {
      version: tls.some((t) => t?.version !== undefined),
      certificate: tls.some((t) => t?.certificate !== undefined),
    };
    lateConditions.set(model, known);
  }
  return known;
}

/**
 * Whether `pending` can change this policy's judgement of these TLS facts: only a condition on a
 * fact not seen yet reads it (the version before the ServerHello, the certificate before it is
 * seen or known unseen). When it cannot, judging "as if they matched" and "as if they did not"
 * give the same evaluation, and one of them stands for both.
 */
export function pendingMatters(model: PolicyModel, tls: TlsFacts): boolean {
  const late = lateTlsConditions(model);
  if (late.version && tls.version === undefined) return true;
  return late.certificate && !tls.certificate && !tls.unseen?.includes("certificate");
}
