// A login to this host's sshd, judged as the evaluator judges a connection: ingress, tcp, from
// the client to sshd's address, with layer7 ssh {user, client_key}, for every public key the
// policy names (or the one key sshd was offered). moat can only print keys the policy names, so a
// key is printed when the deciding rule names it (it has client_key) and lets it through; a key
// decided by a rule without client_key, or by the defaults, is refused. In detect mode nothing is
// refused: a key that prevent mode would refuse is printed and reported as detected. A login the
// facts cannot decide (a rule needs the process or the interface) is refused.
import type { Mode, PolicyModel, SshClientKey } from "../config/model.ts";
import { ruleNamed } from "./rule-named.ts";
import { evaluate } from "./evaluator.ts";
import type { ConnectionFacts } from "./facts.ts";

export interface SshLogin {
  user: string;
  client: { ip: string; port?: number };
  /** sshd's address; absent: port 22 on an address of the client's family, unknown. */
  server?: { ip: string; port: number };
  /** The key sshd was offered ("type base64"); absent: every key the policy names. */
  key?: string;
}

export interface SshKeyVerdict {
  /** The key as the policy writes it, or as offered when the policy does not name it. */
  key: SshClientKey;
  verdict: "allowed" | "blocked" | "detected";
  rule: string;
  mode: Mode;
  reason: string;
  /** Printed for sshd (allowed or detected). */
  printed: boolean;
  /** Reported as an event (always unless allowed by a rule without `log: true`). */
  report: boolean;
}

const sameKey = (a: SshClientKey, b: SshClientKey) => a.type === b.type && a.key === b.key;

/** Every distinct client key of the policy's ingress rules, in rule order. */
export function policyClientKeys(model: PolicyModel): SshClientKey[] {
  const keys: SshClientKey[] = [];
  for (const r of model.rules)
    for (const k of r.layer7?.ssh?.client_key ?? [])
      if (!keys.some((seen) => sameKey(seen, k))) keys.push(k);
  return keys;
}

function offeredKey(text: string, named: SshClientKey[]): SshClientKey {
  const [type = "", key = ""] = text.trim().split(/\s+/);
  return (
    named.find((k) => k.type === type && k.key === key) ?? {
      type,
      key,
      comment: "",
      text: `${type} ${key}`,
    }
  );
}

export function loginFacts(login: SshLogin, key: SshClientKey): ConnectionFacts {
  const family = login.client.ip.includes(":") ? 6 : 4;
  const server = login.server ?? { ip: family === 6 ? "::" : "0.0.0.0", port: 22 };
  return {
    direction: "ingress",
    protocol: "tcp",
    family,
    local: { ip: server.ip, port: server.port },
    remote: { ip: login.client.ip, port: login.client.port ?? 0 },
    layer7: { ssh: { user: login.user, client_key: `${key.type} ${key.key}` } },
  };
}

export function judgeSshLogin(model: PolicyModel, login: SshLogin): SshKeyVerdict[] {
  const named = policyClientKeys(model);
  const keys = login.key === undefined ? named : [offeredKey(login.key, named)];
  return keys.map((key) => judgeKey(model, login, key));
}

function judgeKey(model: PolicyModel, login: SshLogin, key: SshClientKey): SshKeyVerdict {
  const e = evaluate(model, loginFacts(login, key));
  if (e.verdict === "deferred")
    return refused(key, e.rule, model.mode, `${e.reason}; undecided without ${e.needs.join(", ")}`);
  const rule = ruleNamed(model, e.rule);
  if (e.verdict !== "blocked" && rule?.layer7?.ssh?.client_key)
    return {
      key,
      verdict: e.verdict,
      rule: e.rule,
      mode: e.mode,
      reason: e.reason,
      printed: true,
      report: e.report,
    };
  const why = e.verdict === "blocked" ? e.reason : `${e.reason}; the rule names no client key`;
  return refused(key, e.rule, e.mode, why);
}

function refused(key: SshClientKey, rule: string, mode: Mode, reason: string): SshKeyVerdict {
  const detect = mode === "detect";
  return {
    key,
    verdict: detect ? "detected" : "blocked",
    rule,
    mode,
    reason,
    printed: detect,
    report: true,
  };
}
