// A rule's reach in words: which connections it can match, read from the checked model (so it
// is what moat understood, not a second reading of the YAML).
import type { AddressList, Layer4, Layer7Match, PortRange, Rule } from "../../src/config/index.ts";

const PROTOCOLS: Record<number, string> = { 6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6" };
const protocol = (n: number | null): string =>
  n === null ? "any protocol" : (PROTOCOLS[n] ?? `protocol ${n}`);

function addresses(list: AddressList | undefined, side: string): string | undefined {
  if (!list || list.entries.length === 0) return undefined;
  const shown = list.entries.slice(0, 4).map((e) => e.text);
  const more = list.entries.length > 4 ? ` and ${list.entries.length - 4} more` : "";
  return `${side} ${shown.join(", ")}${more}`;
}

const ports = (list: PortRange[]): string => list.map((p) => p.text).join(", ");

function layer4(l4: Layer4 | undefined): string {
  if (!l4) return "any protocol and port";
  const parts = [protocol(l4.protocol)];
  if (l4.ports) parts.push(`port ${ports(l4.ports)}`);
  if (l4.sourcePorts) parts.push(`source port ${ports(l4.sourcePorts)}`);
  if (l4.icmp)
    parts.push(`type ${l4.icmp.type}${l4.icmp.code === undefined ? "" : ` code ${l4.icmp.code}`}`);
  return parts.join(" ");
}

function layer7(l7: Layer7Match | undefined): string | undefined {
  if (!l7) return undefined;
  const parts: string[] = [];
  if (l7.http) {
    const h = l7.http;
    const what = [h.method?.join("/"), h.host?.join(", "), h.path?.join(", ")].filter(Boolean);
    parts.push(`HTTP ${what.join(" ") || "any request"}`);
  }
  if (l7.tls) parts.push(`TLS${l7.tls.sni ? ` to ${l7.tls.sni.join(", ")}` : ""}`);
  if (l7.dns) parts.push(`DNS queries${l7.dns.name ? ` for ${l7.dns.name.join(", ")}` : ""}`);
  if (l7.ssh) parts.push("SSH");
  return parts.join(" or ");
}

export function ruleReach(rule: Rule): string {
  const direction =
    rule.direction === "any"
      ? "connections in and out"
      : rule.direction === "ingress"
        ? "incoming connections"
        : "outgoing connections";
  const parts = [`${rule.action === "allow" ? "allows" : "blocks"} ${direction}`];
  const where = [
    addresses(rule.layer3?.remote, "from/to remote"),
    addresses(rule.layer3?.local, "on local"),
  ];
  parts.push(...where.filter((w): w is string => w !== undefined));
  parts.push(layer4(rule.layer4));
  const p = rule.process;
  if (p) {
    const who = [p.path?.join(", "), p.name?.join(", "), p.user && `user ${p.user.join(", ")}`];
    const said = who.filter(Boolean).join(", ");
    parts.push(`by process ${said || "(as its process section says)"}`);
  }
  if (rule.interface?.name) parts.push(`via ${rule.interface.name.join(", ")}`);
  const l7 = layer7(rule.layer7);
  if (l7) parts.push(l7);
  const detect = rule.mode !== "prevent" && rule.action === "block";
  return `${parts.join("; ")}${detect ? " (detect mode: reported, not dropped)" : ""}`;
}
