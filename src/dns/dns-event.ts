// The events of one DNS query: always one of type "dns" (the query and its answer); a blocked or
// detected query also as a blocked/detected event with layer7 {dns: {name}} and the deciding rule.
import type { ProcessFacts } from "../attribution/index.ts";
import type { DnsExchange, MoatEvent } from "../datapath/index.ts";
import type { QueryVerdict } from "./query-judge.ts";

export interface QueryRecord {
  protocol: "udp" | "tcp";
  client: { ip: string; port: number };
  server: { ip: string; port: number };
  process: ProcessFacts | null;
  verdict: QueryVerdict;
  /** The name the verdict is on when it is not the query's: one of its answer's CNAME chain. */
  name?: string;
  exchange: DnsExchange;
  generation: number;
  time?: Date;
}

export function queryEvents(r: QueryRecord): MoatEvent[] {
  const base: MoatEvent = {
    time: r.time ? r.time.toISOString() : nowIso(),
    type: "dns",
    mode: r.verdict.mode,
    rule: r.verdict.rule,
    direction: "egress",
    protocol: r.protocol,
    local: { ip: r.client.ip, port: r.client.port },
    remote: { ip: r.server.ip, port: r.server.port },
    interface: null,
    process: r.process,
    layer7: null,
    connection: null,
    reason: "new",
    verdict: r.verdict.verdict,
    hook: "dns_proxy",
    generation: r.generation,
    dns: r.exchange,
  };
  if (r.verdict.verdict === "allowed") return [base];
  const judged: MoatEvent = {
    ...base,
    type: r.verdict.verdict,
    layer7: { dns: { name: r.name ?? r.exchange.query } },
  };
  delete judged.dns; // the query's own event says what was asked and answered
  return [base, judged];
}

/** Now as ISO 8601 text, made once per millisecond (a proxy answers several queries in one). */
let isoMs = -1;
let iso = "";
function nowIso(): string {
  const ms = Date.now();
  if (ms !== isoMs) {
    isoMs = ms;
    iso = new Date(ms).toISOString();
  }
  return iso;
}
