// The event of one decision of moat's L7 relay: what the client asked (local/remote as the
// process meant them), who asked, the layer7 facts judged, and how the relay left the data path.
import type { ProcessFacts } from "../attribution/index.ts";
import type { EventLayer7, MoatEvent } from "../datapath/index.ts";
import type { L7Decision, Layer7Facts, SpliceMode } from "./types.ts";

export interface L7EventInput {
  decision: L7Decision;
  layer7: Layer7Facts;
  client: { ip: string; port: number };
  original: { ip: string; port: number; names?: string[] };
  process: ProcessFacts | null;
  generation: number;
  splice?: SpliceMode;
  time?: Date;
}

/** Longest path an event carries (a path can be as long as a request line). */
const PATH_MAX = 256;

function reported(layer7: Layer7Facts): EventLayer7 {
  const out: EventLayer7 = { ...layer7 } as EventLayer7;
  const http = layer7.http;
  if (http) {
    // never the headers: they carry credentials
    out.http = {
      method: http.method,
      host: http.host,
      path: http.path.slice(0, PATH_MAX),
      version: http.version,
      ...(http.status !== undefined ? { status: http.status } : {}),
    };
  }
  return out;
}

export function l7Event(e: L7EventInput): MoatEvent {
  return {
    time: (e.time ?? new Date()).toISOString(),
    type: e.decision.verdict,
    mode: e.decision.mode ?? "prevent",
    rule: e.decision.rule,
    direction: "egress",
    protocol: "tcp",
    local: { ...e.client },
    remote: { ...e.original },
    interface: null,
    process: e.process,
    layer7: reported(e.layer7),
    connection: null,
    reason: "new",
    verdict: e.decision.verdict,
    hook: "l7_relay",
    generation: e.generation,
    relay: { splice: e.splice ?? "none" },
  };
}
