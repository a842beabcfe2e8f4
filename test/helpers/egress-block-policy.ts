// The policy the relay tests judge with: prevent mode on the whole host, and rules that each
// block egress that matches them.

export interface EgressBlockRule {
  name: string;
  /** The rule's match lines, e.g. `layer7: { tls: {} }`. */
  match: string[];
}

export function egressBlockPolicy(rules: EgressBlockRule[]): string {
  const lines = rules.flatMap((r) => [
    `  - name: ${r.name}`,
    "    direction: egress",
    "    action: block",
    ...r.match.map((m) => `    ${m}`),
  ]);
  return `version: 1
mode: prevent
attach: { cgroup: / }
defaults: { ingress: block, egress: allow }
rules:
${lines.join("\n")}
`;
}
