// A flow's link to the playground's explain (the deep link the playground reads:
// playground.html#explain=<base64url JSON>&policy=running).
import type { FlowRow } from "../../src/api/flow-aggregator.ts";

const base64url = (text: string): string => {
  let bin = "";
  for (const b of new TextEncoder().encode(text)) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
};

export function explainHref(row: FlowRow): string {
  const link: Record<string, unknown> = {
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
  return `playground.html#explain=${base64url(JSON.stringify(link))}&policy=running`;
}
