// What `moat check` says of layer7.http rules: moat reads HTTP only where it is clear text (it
// never decrypts TLS), so http fields on a port that carries HTTPS never match there.
import { diagnostic, type Diagnostic } from "../config/diagnostics.ts";
import type { PolicyModel, PortRange } from "../config/model.ts";

/** Ports whose connections are TLS from the first byte (HTTPS and its usual alternate). */
const TLS_PORTS = [443, 8443];

const tlsPortsIn = (ranges: readonly PortRange[]): number[] =>
  TLS_PORTS.filter((port) => ranges.some((r) => r.lo <= port && port <= r.hi));

export function httpRuleWarnings(model: PolicyModel): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const rule of model.rules) {
    const http = rule.layer7?.http;
    const ports = rule.layer4?.ports;
    if (!http || !ports) continue;
    const tls = tlsPortsIn(ports);
    if (tls.length === 0) continue;
    const where =
      tls.length === 1 ? `port ${tls[0]}, which carries` : `ports ${tls.join(", ")}, which carry`;
    out.push(
      diagnostic(
        http.pos ?? rule.layer7?.pos ?? rule.pos,
        `rule '${rule.name}' judges http on ${where} TLS: moat never decrypts TLS, so layer7.http fields never apply inside it and the rule does not match those connections; judge them with layer7.tls (sni, certificate)`,
        "warning",
      ),
    );
  }
  return out;
}
