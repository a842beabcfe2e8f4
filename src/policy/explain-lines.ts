// What `moat explain` prints for a connection, as lines: the connection as understood, the
// verdict, the deciding rule and why. The web playground's explain panel shows the same lines.
import type { PolicyModel } from "../config/model.ts";
import { evaluate, type Decision } from "./evaluator.ts";
import type { ConnectionFacts } from "./facts.ts";
import { formatProcess } from "./process-text.ts";
import { floodLines } from "./flood-lines.ts";
import { idsLines } from "./ids-lines.ts";

function endpoint(e: { ip: string; port?: number }, family: 4 | 6): string {
  const ip = family === 6 && e.port !== undefined ? `[${e.ip}]` : e.ip;
  return e.port === undefined ? ip : `${ip}:${e.port}`;
}

/** The line about the layer7 facts, if there are any. */
export function describeLayer7(facts: ConnectionFacts): string | undefined {
  const l7 = facts.layer7;
  if (l7?.http)
    return `http: ${l7.http.method} ${l7.http.host} ${l7.http.path} (HTTP/${l7.http.version})`;
  if (l7?.tls) return `tls: sni ${l7.tls.sni ?? "(none)"} (TLS ${l7.tls.version})`;
  if (l7?.ssh)
    return `ssh: host key ${l7.ssh.host_key ?? "(unknown)"}${l7.ssh.version ? ` (${l7.ssh.version})` : ""}`;
  return undefined;
}

function formatInterface(i: NonNullable<ConnectionFacts["interface"]>): string {
  const tunnel = i.tunnel === undefined ? "" : i.tunnel ? "tunnel" : "not a tunnel";
  return [i.name, tunnel].filter(Boolean).join(", ");
}

function decisionLines(d: Decision): string[] {
  const lines = [`verdict: ${d.verdict}`, `action: ${d.action}`, `rule: ${d.rule}`];
  lines.push(`mode: ${d.mode}`);
  if (d.redirect) lines.push(`redirect: ${d.redirect.name} -> ${d.redirect.to}`);
  lines.push(`reason: ${d.reason}`);
  if (d.rateLimit) lines.push(`rate limit: ${d.rateLimit}`);
  return lines;
}

/**
 * The explanation of `facts` under `model`. `defaulted`: the direction was not given (ingress
 * assumed), which the first line says. Throws FactsError for facts that are not a connection.
 */
export function explanationLines(
  model: PolicyModel,
  facts: ConnectionFacts,
  defaulted = false,
): string[] {
  const ingress = facts.direction === "ingress";
  const [client, server] = ingress ? [facts.remote, facts.local] : [facts.local, facts.remote];
  const roles = ingress ? "remote -> local" : "local -> remote";
  const icmp = facts.icmp ? ` type ${facts.icmp.type} code ${facts.icmp.code}` : "";
  const how = defaulted ? " (default; --direction egress if the left side is this host)" : "";
  const out = [
    `connection: ${facts.direction}${how} ${String(facts.protocol)} ` +
      `${endpoint(client, facts.family)} -> ${endpoint(server, facts.family)}${icmp} (${roles})`,
  ];
  if (facts.process) out.push(`process: ${formatProcess(facts.process)}`);
  else if (facts.process === null) out.push("process: none (no process on this host owns it)");
  if (facts.interface) out.push(`interface: ${formatInterface(facts.interface)}`);
  if (facts.remote.names) out.push(`remote names: ${facts.remote.names.join(", ")}`);
  if (facts.layer7?.dns) out.push(`dns query: ${facts.layer7.dns.name}`);
  const l7 = describeLayer7(facts);
  if (l7) out.push(l7);
  const result = evaluate(model, facts);
  if (result.verdict !== "deferred")
    return [
      ...out,
      ...decisionLines(result),
      ...floodLines(model, facts),
      ...idsLines(model, facts),
    ];
  out.push("verdict: deferred", `rule: ${result.rule}`);
  out.push(`needs: ${result.needs.join(", ")}`, `reason: ${result.reason}`);
  for (const d of result.possible) out.push(`possible: ${d.verdict} by ${d.rule} (${d.reason})`);
  return [...out, ...floodLines(model, facts), ...idsLines(model, facts)];
}
