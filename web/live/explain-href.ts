// A flow's link to the playground's explain (the deep link the playground reads:
// playground.html#explain=<base64url JSON>&policy=running), written by the shared encoder. A flow
// has no one client port: the playground fills a placeholder for it and says so.
import type { FlowRow } from "../../src/api/flow-aggregator.ts";
import { processTextValue } from "../../src/policy/process-text.ts";
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
  // each value escaped, so a `,` or `=` in a path or name cannot add a fact of its own
  const facts: string[] = [];
  if (row.path) facts.push(`path=${processTextValue(row.path)}`);
  if (row.process) facts.push(`name=${processTextValue(row.process)}`);
  if (row.container) facts.push(`container.name=${processTextValue(row.container)}`);
  if (facts.length) link.process = facts.join(",");
  return `playground.html#explain=${encodeExplainLink(link)}&policy=running`;
}
