// A flow's link to the playground's explain (the deep link the playground reads:
// playground.html#explain=<base64url JSON>&policy=running), written by the shared encoder.
import type { FlowRow } from "../../src/api/flow-aggregator.ts";
import { encodeExplainLink, type ExplainLink } from "../shared/explain-link.ts";

export function explainHref(row: FlowRow): string {
  const link: ExplainLink = {
    direction: row.direction,
    protocol: row.protocol,
    local: row.local,
    remote: row.remote,
    ports: row.direction === "egress" ? { remote: row.port } : { local: row.port },
  };
  const name = row.names[0];
  if (name) link.name = name;
  if (row.l7name && row.protocol === "tcp" && row.port === 443) link.sni = row.l7name;
  const facts: string[] = [];
  if (row.path) facts.push(`path=${row.path}`);
  if (row.process) facts.push(`name=${row.process}`);
  if (row.container) facts.push(`container.name=${row.container}`);
  if (facts.length) link.process = facts.join(",");
  return `playground.html#explain=${encodeExplainLink(link)}&policy=running`;
}
