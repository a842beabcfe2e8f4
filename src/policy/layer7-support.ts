// Which L7 rules (layer7.http, tls, ssh) moat's relay can enforce (docs/l7.md), checked at load
// so a rule is never silently left unenforced. The relay judges the TCP connections this host
// opens, of processes under attach.cgroup: the socket hooks send them to it at connect(), which
// knows neither the local address nor the source port. SSH rules for incoming logins (by client
// key) are judged by `moat ssh-authkeys`, not the relay, and are checked apart.
import { diagnostic, type Diagnostic } from "../config/diagnostics.ts";
import { PROTOCOL_NUMBERS, type Rule } from "../config/model.ts";
import { protocolName } from "./match-layer4.ts";

type RelayProtocol = "http" | "tls" | "ssh";

/** The SSH fields judged on incoming logins, not by the relay. */
const SSH_LOGIN_FIELDS = new Set(["client_key", "user"]);

/** Whether the rule's ssh section is judged by the relay (server side: host_key, version). */
function relaySsh(rule: Rule): boolean {
  const ssh = rule.layer7?.ssh;
  if (!ssh) return false;
  const fields = Object.keys(ssh).filter((k) => k !== "pos");
  return fields.length === 0 || fields.some((k) => !SSH_LOGIN_FIELDS.has(k));
}

/** The protocols of the rule's layer7 that moat's relay judges. */
export function relayProtocols(rule: Rule): RelayProtocol[] {
  const out: RelayProtocol[] = [];
  if (rule.layer7?.http) out.push("http");
  if (rule.layer7?.tls) out.push("tls");
  if (relaySsh(rule)) out.push("ssh");
  return out;
}

/** A rule whose connections moat's relay judges. */
export const relayRule = (rule: Rule): boolean => relayProtocols(rule).length > 0;

export function layer7RuleProblems(model: {
  rules: readonly Rule[];
  attach: { cgroup?: unknown };
}): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const rule of model.rules) {
    const protocols = relayProtocols(rule);
    const first = protocols[0];
    if (!first || !rule.layer7) continue;
    const at = (p: RelayProtocol) => rule.layer7?.[p]?.pos ?? rule.layer7!.pos;
    const refuse = (pos: Parameters<typeof diagnostic>[0], message: string) =>
      out.push(diagnostic(pos, `rule '${rule.name}': ${message}`));
    if (rule.direction !== "egress") {
      for (const p of protocols)
        refuse(
          at(p),
          `layer7.${p} judges connections this host opens (moat's relay); use 'direction: egress'`,
        );
      continue;
    }
    const protocol = rule.layer4?.protocol ?? null;
    if (protocol !== null && protocol !== PROTOCOL_NUMBERS.tcp && rule.layer4) {
      const name = protocolName(protocol);
      refuse(
        rule.layer4.pos,
        `layer7.${first} with ${name.startsWith("protocol") ? name : `protocol ${name}`}: moat's relay judges TCP connections`,
      );
    }
    const local = rule.layer3?.local
      ? { pos: rule.layer3.local.pos, what: "a local address", field: "local" }
      : rule.layer4?.sourcePorts
        ? { pos: rule.layer4.pos, what: "a source port", field: "source_port" }
        : undefined;
    if (local)
      refuse(
        local.pos,
        `layer7.${first} with ${local.what}: connections go to moat's relay at connect(), which knows neither the local address nor the source port; leave '${local.field}' out of this rule`,
      );
    if (rule.layer7.dns)
      refuse(
        rule.layer7.pos,
        `layer7.dns with layer7.${first} in one rule: DNS queries and relayed connections are judged apart; write them as rules of their own`,
      );
    if (!model.attach.cgroup)
      refuse(
        at(first),
        `layer7.${first} is judged by moat's relay, for processes under attach.cgroup: set attach.cgroup (e.g. "/")`,
      );
  }
  return out;
}
